"""Train the default LLM-Codec (the one shipped in soundtok/llmcodec/default).

    python scripts/train_default_llm_codec.py --corpus runs/corpus --out runs/llmcodec-sem \
        [--steps 8000] [--threads 1] [--teacher-cache runs/codec-sem/vt/teacher] [--install]

What it does (rerun it after an interruption: it resumes from the latest checkpoint,
and skips what is done):

1. trains ``LLMCodecConfig()`` -- the defaults: Whisper-base teacher on the word scale,
   lookup in 16 principal directions of each scale's rows, usage loss -- on Gemma 3
   270M's frozen rows, on CORPUS/train.jsonl (which holds the shared data's training
   splits too: FSDD train and ESC-10 folds 1-3; fold 4 and the FSDD test split are never
   seen), validated on CORPUS/val.jsonl: ``--steps`` steps of 16 crops of 2.56 s, ESC-10
   clips drawn ``--esc-weight`` times as often as their duration alone would give (ids
   ``esc10/...`` and ``aug/esc10/...``), in ``OUT/run`` (``metrics.csv``, ``train.log``,
   checkpoints every 250 steps);
2. the vocoder is the built-in codec's (soundtok/codec/default, whatever is shipped when
   training starts), frozen and taken by reference: not stored, its sha256 recorded;
   the llm-codec's mel/vocoder fields are copied from that codec's config;
3. teacher features: computed once into ``OUT/run/teacher`` (about 1.3 h of CPU for
   the corpus), or read from ``--teacher-cache`` when it holds Whisper-base features of
   the same clips packed the same way (the built-in codec's ``vt/teacher`` does: same
   manifest, 0.1 s gaps, 640-sample grid);
4. stores the final codec as float16 in ``OUT/ship`` (weights without the LLM rows and
   the vocoder: a few MB) and, with ``--install``, copies it into
   soundtok/llmcodec/default (the model card there is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LLM = "gemma3-270m"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(ROOT / "runs" / "corpus"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "llmcodec-sem"))
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop-seconds", type=float, default=2.56)
    ap.add_argument("--esc-weight", type=float, default=4.0)
    ap.add_argument("--teacher-cache", default=None, help="An existing teacher cache of the same clips.")
    ap.add_argument("--config", default=None, help="LLMCodecConfig overrides (JSON), e.g. an ablation.")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "1")))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--install", action="store_true", help="Also copy the codec into the package.")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    corpus, out = Path(a.corpus), Path(a.out)
    train, val = corpus / "train.jsonl", corpus / "val.jsonl"
    for p in (train, val):
        if not p.is_file():
            raise SystemExit(f"error: {p} not found (make corpus)")
    run_dir = out / "run"
    if not (run_dir / "final").is_dir():
        train_run(a, train, val, run_dir)
    ship(run_dir / "final", out / "ship")
    if a.install:
        dest = ROOT / "soundtok" / "llmcodec" / "default"
        for f in ("config.json", "model.safetensors"):
            shutil.copy(out / "ship" / f, dest / f)
        print(f"installed into {dest}", flush=True)


def train_run(a, train: Path, val: Path, run_dir: Path) -> None:
    from soundtok.codec import DEFAULT_CODEC_DIR
    from soundtok.llmcodec.config import VOCODER_FIELDS
    from soundtok.train.llmcodec_trainer import TrainLLMCodecOptions, train_llm_codec

    builtin = json.loads((DEFAULT_CODEC_DIR / "config.json").read_text())
    config = {k: builtin[k] for k in VOCODER_FIELDS if k in builtin}
    config.update(json.loads(a.config) if a.config else {})
    opts = TrainLLMCodecOptions(
        train=[str(train)], val=[str(val)], out=str(run_dir), llm=LLM, steps=a.steps, batch=a.batch,
        crop_seconds=a.crop_seconds, save_every=250, log_every=50, val_every=1000, seed=0,
        device=a.device, resume=True, codec_config=config, vocoder_init="default", train_vocoder=False,
        teacher_cache=a.teacher_cache, source_weights={"esc10": a.esc_weight})
    t0 = time.time()
    final = train_llm_codec(opts, echo=lambda m: print(m, flush=True),
                            notice=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"{final} ({(time.time() - t0) / 3600:.2f} h in this session)", flush=True)


def ship(src: Path, dest: Path) -> None:
    """Store ``src`` as float16 in ``dest``."""
    import torch

    from soundtok.llm.loader import load_llm
    from soundtok.llmcodec.model import LLMCodec

    model, _ = load_llm(LLM, dtype="float32")
    codec = LLMCodec.from_pretrained(src, llm=model)
    codec.save_pretrained(dest, dtype=torch.float16)
    size = (dest / "model.safetensors").stat().st_size
    print(f"{dest}: sha256 {codec.sha256}, {size / 1e6:.1f} MB", flush=True)


if __name__ == "__main__":
    main()
