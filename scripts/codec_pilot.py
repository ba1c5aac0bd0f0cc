"""Short pilot runs that choose between codec options by measurement.

    python scripts/codec_pilot.py --train runs/data/codec_train.jsonl \
        --test runs/pilot/test/test.jsonl --out runs/pilot --threads 1 \
        --plan vae,tok,voc,eval

Steps (each resumable; a finished run is reused):

* ``vae``  -- one VAE run shared by every tokenizer variant;
* ``tok``  -- one tokenizer run per variant in ``VARIANTS`` (same VAE, same seed,
  same crops), each starting from the shared VAE with its latent statistics;
* ``voc``  -- vocoder runs: spectral losses only vs adversarial;
* ``eval`` -- on held-out voices (``--test``, a manifest with ``text``): Whisper
  base word error rate of each variant x decoder (x guidance), level change (dB,
  active-speech RMS) and log-mel L1 against the input; written to
  ``OUT/results.json`` and printed as a table.

Intelligibility is judged by faster-whisper (Whisper base, int8, CPU) with the
offline weights of :func:`soundtok.whisper.whisper_dir`.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

VARIANTS = {
    # name: codec config overrides (on top of CodecConfig() defaults)
    "plain": {"semantic_weight": 0.0, "fm_prior": "none", "fm_residual": False},
    "sem": {"fm_prior": "none", "fm_residual": False},
    "sem_prior": {"fm_prior": "mse", "fm_residual": False},
    "sem_prior_res": {"fm_prior": "mse", "fm_residual": True},
}
VOCODERS = {"spectral": {"voc_adv_weight": 0.0}, "gan": {}}
DIGITS = "zero one two three four five six seven eight nine".split()


def _opts(train, out, stage, steps, crop, threads_seed=0, **kw):
    from soundtok.train.codec_trainer import TrainCodecOptions

    return TrainCodecOptions(train=[train], out=str(out), stage=stage, steps={stage: steps},
                             crop_seconds={stage: crop}, save_every=max(100, steps // 2),
                             seed=threads_seed, resume=True, **kw)


def _done(run: Path) -> bool:
    return (run / "final" / "model.safetensors").is_file()


def make_init(vae_final: Path, overrides: dict, train: str, out: Path) -> Path:
    """A codec with ``overrides`` whose VAE (and latent statistics) come from ``vae_final``."""
    from soundtok.codec.config import CodecConfig
    from soundtok.codec.model import SoundCodec
    from soundtok.train.codec_trainer import measure_latent_stats
    from soundtok.train.data import CropSampler, load_clips

    if (out / "model.safetensors").is_file():
        return out
    vae = SoundCodec.from_pretrained(vae_final)
    base = {**vae.cfg.to_dict(), **overrides}
    codec = SoundCodec(CodecConfig.from_dict(base))
    codec.vae.load_state_dict(vae.vae.state_dict())
    clips, _ = load_clips([train], codec.cfg.sample_rate)
    crop = 20480
    measure_latent_stats(codec, CropSampler(clips, crop, 16, seed=99))
    codec.save_pretrained(out)
    return out


def normalize(text: str) -> list[str]:
    text = text.lower()
    text = re.sub(r"\d", lambda m: f" {DIGITS[int(m.group(0))]} ", text)
    text = re.sub(r"\boh\b", "zero", text)
    return re.sub(r"[^a-z' ]+", " ", text).split()


def level_db(w: np.ndarray) -> float:
    """Active-speech RMS level (dB FS): mean power of 10 ms frames within 50 dB of the loudest."""
    w = np.asarray(w, np.float64)
    fr = w[: len(w) // 160 * 160].reshape(-1, 160)
    e = (fr ** 2).mean(1)
    return float(10 * np.log10(e[e > e.max() * 1e-5].mean() + 1e-20))


def evaluate(out: Path, test: str, voc_name: str, threads: int, guidances=(1.0, 2.0)) -> dict:
    import jiwer
    from faster_whisper import WhisperModel

    from soundtok.audio import load_audio
    from soundtok.codec.model import SoundCodec
    from soundtok.whisper import whisper_dir

    asr = WhisperModel(str(whisper_dir("base")), device="cpu", compute_type="int8",
                       cpu_threads=threads)
    rows = [json.loads(line) for line in Path(test).read_text().splitlines() if line.strip()]
    clips = [(load_audio(r["path"], 16000), r["text"]) for r in rows]

    def transcribe(w: np.ndarray) -> str:
        segs, _ = asr.transcribe(w.astype(np.float32), language="en", beam_size=1,
                                 condition_on_previous_text=False, vad_filter=False)
        return " ".join(s.text for s in segs)

    def score(wavs: list[np.ndarray]) -> dict:
        refs = [" ".join(normalize(t)) for _, t in clips]
        hyps = [" ".join(normalize(transcribe(w))) or "<empty>" for w in wavs]
        lv = [level_db(w) - level_db(x.numpy()) for w, (x, _) in zip(wavs, clips)]
        return {"wer": round(jiwer.wer(refs, hyps), 4), "level_db": round(float(np.mean(lv)), 2)}

    results = {"input": score([x.numpy() for x, _ in clips])}
    voc = SoundCodec.from_pretrained(out / f"voc-{voc_name}" / "final")
    results[f"vocoder-{voc_name}(mel)"] = score(
        [_copy_synthesis(voc, x) for x, _ in clips])
    for name in VARIANTS:
        run = out / f"tok-{name}" / "final"
        if not run.is_dir():
            continue
        codec = SoundCodec.from_pretrained(run)
        codec.vocoder.load_state_dict(voc.vocoder.state_dict())
        codec.precision = "fp32"
        for dec, g in [("mse", None)] + [("flow", g) for g in guidances]:
            wavs, mel_l1 = [], []
            for x, _ in clips:
                codes = codec.encode(x[None])
                y = codec.decode(codes, num_samples=x.shape[0], decoder=dec, guidance=g)[0]
                wavs.append(y.numpy())
                mel_l1.append(_mel_l1(codec, x, y))
            key = f"{name}/{dec}" + (f"-g{g:g}" if g is not None else "")
            results[key] = {**score(wavs), "mel_l1": round(float(np.mean(mel_l1)), 4)}
            print(key, results[key], flush=True)
    return results


@torch.no_grad()
def _copy_synthesis(codec, x: torch.Tensor) -> np.ndarray:
    n = x.shape[0]
    t = codec.num_frames(n)
    pad = F.pad(x[None], (codec.edge, t * codec.cfg.token_hop - n + codec.edge))
    return codec.vocoder(codec.mel(pad))[0, :n].numpy()


@torch.no_grad()
def _mel_l1(codec, x: torch.Tensor, y: torch.Tensor) -> float:
    e = codec.edge
    a, b = codec.mel(F.pad(x[None], (e, e))), codec.mel(F.pad(y[None], (e, e)))
    n = min(a.shape[-1], b.shape[-1])
    return float((a[..., :n] - b[..., :n]).abs().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--out", default="runs/pilot")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plan", default="vae,tok,voc,eval")
    ap.add_argument("--vae-steps", type=int, default=800)
    ap.add_argument("--tok-steps", type=int, default=600)
    ap.add_argument("--voc-steps", type=int, default=600)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--vocoders", default=",".join(VOCODERS))
    ap.add_argument("--eval-vocoder", default="gan")
    ap.add_argument("--config", default="{}", help="JSON overrides for every run")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from soundtok.train.codec_trainer import train_codec

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    base = json.loads(a.config)
    plan = a.plan.split(",")
    log = lambda m: print(time.strftime("%H:%M:%S ") + m, flush=True)  # noqa: E731
    if "vae" in plan and not _done(out / "vae"):
        train_codec(_opts(a.train, out / "vae", "vae", a.vae_steps, 1.28, codec_config=base), echo=log)
    if "tok" in plan:
        for name in a.variants.split(","):
            run = out / f"tok-{name}"
            if _done(run):
                continue
            init = make_init(out / "vae" / "final", {**base, **VARIANTS[name]}, a.train,
                             out / f"init-{name}")
            train_codec(_opts(a.train, run, "tokenizer", a.tok_steps, 1.28, init_from=str(init),
                              teacher_cache=str(out / "teacher-cache")), echo=log)
    if "voc" in plan:
        for name in a.vocoders.split(","):
            run = out / f"voc-{name}"
            if not _done(run):
                train_codec(_opts(a.train, run, "vocoder", a.voc_steps, 0.64,
                                  codec_config={**base, **VOCODERS[name]}), echo=log)
    if "eval" in plan:
        res = evaluate(out, a.test, a.eval_vocoder, a.threads)
        (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
        for k, v in res.items():
            print(f"{k:32s} " + " ".join(f"{m}={x}" for m, x in v.items()))


if __name__ == "__main__":
    main()
