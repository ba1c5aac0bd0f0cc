"""Codec speed and memory benchmark (not a test; run with `make bench`).

For each duration (default 10, 60, 600 s) a speech-like test signal is
synthesised, then tokenized and detokenized in fresh subprocesses with
``torch.set_num_threads(THREADS)`` (default 2). Reported per run: processing
time (excluding interpreter start and model load), x real time, and peak RSS
of the process (``ru_maxrss``); then the targets (tokenize >= 100x and
detokenize >= 30x real time on the 60 s file, when it is measured), peak RSS
growth from the shortest to the longest input, and the load average before and
after (the numbers mean little on a busy machine).

    python bench/bench_codec.py --threads 2 --durations 10,60,600 --json bench/results.json
    python bench/bench_codec.py --durations 60 --decoder mse      # the deterministic decoder
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[3]))
import soundtok
from soundtok.registry import load_codec
t0 = time.perf_counter()
codec = load_codec(sys.argv[4] or None)
load_s = time.perf_counter() - t0
mode, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if mode == "tokenize":
    rep = soundtok.tokenize([path], path + ".tok.jsonl", codec=codec)
else:
    rep = soundtok.detokenize(path + ".tok.jsonl", path + ".dec.wav", codec=codec,
                              decoder=sys.argv[6], steps=int(sys.argv[5]) if sys.argv[5] else None)
el = time.perf_counter() - t0
print(json.dumps({"mode": mode, "seconds": el, "audio_seconds": rep.audio_seconds,
                  "x_realtime": rep.audio_seconds / el, "load_seconds": load_s,
                  "torch_threads": torch.get_num_threads(),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def synth(seconds: float, path: Path, sr: int = 16000) -> None:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sr, 1, "PCM_16") as f:
        for start in range(0, int(seconds * sr), sr * 10):
            n = min(sr * 10, int(seconds * sr) - start)
            t = (start + np.arange(n)) / sr
            f0 = 120 + 40 * np.sin(2 * math.pi * 0.7 * t)
            phase = 2 * math.pi * np.cumsum(f0) / sr
            x = sum(np.sin(k * phase) / k for k in range(1, 8))
            env = 0.5 + 0.5 * np.sin(2 * math.pi * 4 * t) ** 2
            f.write((0.2 * x * env + 0.01 * rng.standard_normal(n)).astype("float32"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--durations", default="10,60,600")
    ap.add_argument("--steps", default="", help="flow steps (default: the codec's)")
    ap.add_argument("--decoder", default="flow", choices=["flow", "mse"])
    ap.add_argument("--json", default=None, help="also write results here")
    a = ap.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for d in [float(x) for x in a.durations.split(",")]:
            path = Path(tmp) / f"bench_{int(d)}s.wav"
            synth(d, path)
            for mode in ("tokenize", "detokenize"):
                out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path), str(a.threads),
                                      a.codec, a.steps, a.decoder], capture_output=True, text=True)
                if out.returncode != 0:
                    sys.exit(f"error: {mode} failed: {out.stderr.strip().splitlines()[-1]}")
                r = {"duration_s": d, "threads": a.threads,
                     **({"decoder": a.decoder} if mode == "detokenize" else {}),
                     **json.loads(out.stdout)}
                rows.append(r)
                print(f"{mode:10s} {d:6.0f} s audio: {r['seconds']:7.2f} s  "
                      f"{r['x_realtime']:7.1f}x real time  peak RSS {r['peak_rss_mb']:7.1f} MB",
                      flush=True)
    load_after = [round(x, 2) for x in os.getloadavg()]
    print(f"\nload average before {load_before}, after {load_after} "
          f"({os.cpu_count()} CPUs, {platform.machine()}); decoder {a.decoder}")
    targets = {"tokenize": 100.0, "detokenize": 30.0}
    for r in rows:
        if r["duration_s"] == 60:
            t = targets[r["mode"]]
            print(f"target {r['mode']} >= {t:g}x real time on 60 s with {a.threads} threads: "
                  f"{r['x_realtime']:.1f}x {'met' if r['x_realtime'] >= t else 'NOT met'}")
    for mode in ("tokenize", "detokenize"):
        rs = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["duration_s"])
        if len(rs) > 1:
            lo, hi = rs[0], rs[-1]
            print(f"peak RSS {mode}: {lo['peak_rss_mb']:.1f} MB at {lo['duration_s']:g} s -> "
                  f"{hi['peak_rss_mb']:.1f} MB at {hi['duration_s']:g} s "
                  f"({hi['peak_rss_mb'] - lo['peak_rss_mb']:+.1f} MB)")
    if a.json:
        Path(a.json).write_text(json.dumps(
            {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
             "load_average_before": load_before, "load_average_after": load_after,
             "codec": a.codec or "default", "threads": a.threads, "rows": rows},
            indent=1) + "\n")


if __name__ == "__main__":
    main()
