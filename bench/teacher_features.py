"""How the Whisper teacher's features depend on how clips are fed to it, and its speed.

    python bench/teacher_features.py --data ../shared/data --threads 2 [--teacher whisper-base]

Reference: each clip alone at the start of a zero-padded 30 s window (how
Whisper was trained). Compared with it (mean per-frame cosine and relative L2
error of the clip's own frames): the clip encoded alone without padding, padded
to 5 s / 10 s, and packed with others into shared 30 s windows
(``soundtok.train.packing``). Speed: 30 s windows through
``WhisperTeacher.features`` (mel + encoder), x real time.
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--teacher", default="whisper-base")
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--compute-type", default="int8")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from soundtok.audio import load_audio
    from soundtok.teacher import TEACHERS
    from soundtok.teacher.whisper import HOP, WhisperTeacher
    from soundtok.train.data import Clip
    from soundtok.train.packing import pack_clips
    from soundtok.whisper import whisper_dir

    t = WhisperTeacher(whisper_dir(TEACHERS[a.teacher][0]), a.teacher, a.threads, a.compute_type)
    random.seed(0)
    files = random.sample(sorted(glob.glob(f"{a.data}/fsdd/recordings/*_[0-4].wav")), a.clips)
    clips = [Clip(f.split("/")[-1], load_audio(f, 16000)) for f in files]

    def own(w: np.ndarray, pad_to: float | None) -> np.ndarray:
        n = len(w)
        if pad_to is None:  # encode exactly the clip (CTranslate2 accepts <= 3000 mel frames)
            x = np.pad(w, (0, (-n) % HOP))
            mel = t.fe(x, padding=0)
            out = np.asarray(t.model.encode(t._ct2.StorageView.from_array(mel[None]), to_cpu=True))[0]
            return out[: -(-n // HOP)].T
        m = max(n, int(pad_to * 16000))
        x = np.pad(w, (0, m - n))
        mel = t.fe(x, padding=0)[:, : 2 * (m // HOP)]
        out = np.asarray(t.model.encode(t._ct2.StorageView.from_array(mel[None]), to_cpu=True))[0]
        return out[: -(-n // HOP)].T

    def score(a_: list[np.ndarray], r_: list[np.ndarray]) -> dict:
        cos, rel = [], []
        for x, r in zip(a_, r_):
            cos.append(float(((x * r).sum(0) / np.linalg.norm(x, axis=0) / np.linalg.norm(r, axis=0)).mean()))
            rel.append(float(np.linalg.norm(x - r) / np.linalg.norm(r)))
        return {"cosine": round(float(np.mean(cos)), 4), "rel_l2": round(float(np.mean(rel)), 4)}

    res: dict = {"teacher": a.teacher, "compute_type": a.compute_type, "threads": a.threads,
                 "clips": len(clips), "seconds": round(sum(c.wav.shape[0] for c in clips) / 16000, 2)}
    ref = [t.encode_window(c.wav.numpy()) for c in clips]
    for label, pad in (("alone_unpadded", None), ("alone_pad5s", 5.0), ("alone_pad10s", 10.0)):
        res[label] = score([own(c.wav.numpy(), pad) for c in clips], ref)
    for gap in (0.1, 0.25, 1.0):
        packed = pack_clips(clips, align=640, gap_seconds=gap)
        got = {}
        for p in packed:
            f = t.features(p.wav.numpy())
            for cid, start, n in p.members:
                got[cid] = f[:, start // HOP: start // HOP + -(-n // HOP)]
        res[f"packed_gap{gap}s"] = {**score([got[c.id] for c in clips], ref), "windows": len(packed)}
    # speed: 30 s windows of real audio (the packed clips, repeated to 120 s)
    audio = np.concatenate([c.wav.numpy() for c in clips])
    audio = np.tile(audio, int(np.ceil(120 * 16000 / len(audio))))[: 120 * 16000]
    t.features(audio[:16000])
    t0 = time.perf_counter()
    t.features(audio)
    dt = time.perf_counter() - t0
    res["speed_x_realtime_30s_windows"] = round(120 / dt * (1 - 0.0), 1)
    res["seconds_per_30s_window"] = round(dt / 4.0, 3)  # 120 s = 4 stitched windows (+overlap: 5)
    print(json.dumps(res, indent=1))
    if a.json:
        open(a.json, "w").write(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
