"""Where does a codec lose level, and does the level loss fix it? (not a test)

    python bench/level_probe.py --codec default --train runs/data/codec_train.jsonl \
        --out runs/level-probe --steps 150 --threads 1

Measures the active-speech level change (dB) of each stage of ``--codec`` on
flite sentences (voices slt, rms, awb): the vocoder on analysed mels, the VAE
reconstruction, the MSE and flow decoders. Then fine-tunes copies of the codec
for ``--steps`` steps -- the VAE with ``level_weight`` 1 and with 0 (control),
and the vocoder with the new spectral losses (``voc_mel_weight`` 45, level
weight 1) and with the old ones (mel weight 0.5, level weight 0) -- and measures
again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SENTENCES = ["Please call Stella. Ask her to bring these things with her from the store.",
             "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."]


def level_db(w) -> float:
    w = np.asarray(w, np.float64)
    e = (w[: len(w) // 160 * 160].reshape(-1, 160) ** 2).mean(1)
    return float(10 * np.log10(e[e > e.max() * 1e-5].mean()))


@torch.no_grad()
def stage_levels(codec, clips) -> dict:
    rows = {"vocoder(mel)": [], "vae": [], "mse": [], "flow": []}
    for x in clips:
        n = x.shape[0]
        t = codec.num_frames(n)
        pad = F.pad(x[None], (codec.edge, t * codec.cfg.token_hop - n + codec.edge))
        mel = codec.mel(pad)
        ref = level_db(x.numpy())
        rows["vocoder(mel)"].append(level_db(codec.vocoder(mel)[0, :n].numpy()) - ref)
        rows["vae"].append(level_db(codec.vocoder(codec.vae.decode(codec.vae.encode(mel)[0]))[0, :n].numpy()) - ref)
        codes = codec.codes_from_padded(pad)
        for dec in ("mse", "flow"):
            y = codec.latent_to_wav(codec.decode_latent(codes, decoder=dec))[0, :n]
            rows[dec].append(level_db(y.numpy()) - ref)
    return {k: round(float(np.mean(v)), 2) for k, v in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="default")
    ap.add_argument("--train", required=True)
    ap.add_argument("--out", default="runs/level-probe")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from soundtok.audio import load_audio
    from soundtok.codec.config import CodecConfig
    from soundtok.codec.model import SoundCodec
    from soundtok.registry import load_codec
    from soundtok.train.codec_trainer import TrainCodecOptions, train_codec

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    clips = []
    for v in ("slt", "rms", "awb"):
        for i, s in enumerate(SENTENCES):
            p = out / f"{v}{i}.wav"
            subprocess.run(["flite", "-voice", v, "-t", s, "-o", str(p)], check=True)
            clips.append(load_audio(p, 16000))
    base = load_codec(a.codec, device="cpu")
    base.precision = "fp32"
    res = {"before": stage_levels(base, clips)}
    print("before", res["before"], flush=True)
    runs = {"vae+level": ("vae", {"level_weight": 1.0}), "vae-control": ("vae", {"level_weight": 0.0}),
            "vocoder+level": ("vocoder", {"level_weight": 1.0, "voc_mel_weight": 45.0, "voc_adv_weight": 0.0}),
            "vocoder-control": ("vocoder", {"level_weight": 0.0, "voc_mel_weight": 0.5, "voc_adv_weight": 0.0})}
    for name, (stage, over) in runs.items():
        init = out / f"init-{name}"
        cfg = base.cfg.to_dict()
        cfg.update(over)
        c = SoundCodec(CodecConfig.from_dict(cfg))
        c.load_state_dict(base.state_dict())
        c.save_pretrained(init)
        final = out / name / "final"
        if not (final / "model.safetensors").is_file():
            train_codec(TrainCodecOptions(train=[a.train], out=str(out / name), stage=stage,
                                          steps={stage: a.steps}, lr=3e-4, warmup=10,
                                          save_every=10 ** 9, init_from=str(init), resume=True))
        tuned = SoundCodec.from_pretrained(final)
        tuned.precision = "fp32"
        res[name] = stage_levels(tuned, clips)
        print(name, res[name], flush=True)
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
