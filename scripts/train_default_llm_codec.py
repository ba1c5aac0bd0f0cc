"""Train the default LLM-Codec shipped in soundtok/llmcodec/default.

    python scripts/train_default_llm_codec.py --data ../shared/data --runs runs [--threads 1]

Steps (each resumes or is skipped when its output exists):

1. manifests of FSDD and ESC-10 (scripts/shared_manifests.py);
2. the training manifest runs/llmcodec/train.jsonl: FSDD train split (2250
   clips) + ESC-10 folds 1-3 (240 clips) repeated 5 times (ids suffixed
   ``#r``) so that the environmental sounds are not drowned by the digits;
   every clip carries its label for the semantic loss;
3. ``soundtok train-codec --arch llm-codec`` on Gemma 3 270M (frozen), 1600
   steps of 16 crops of 1.28 s, semantic weight 2, the vocoder taken from the
   default soundtok codec and kept frozen (same mel front end);
4. the final codec, stored as float16, goes to soundtok/llmcodec/default (the
   model card there is kept).  Fold 4 of ESC-10 and the FSDD test split are
   never seen in training: they are the few-shot queries.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ESC_REPEATS = 5
TRAIN_ARGS = ["--arch", "llm-codec", "--llm", "gemma3-270m", "--steps", "1600", "--batch", "16",
              "--save-every", "200", "--crop-seconds", "1.28", "--freeze-vocoder",
              "--config", json.dumps({"semantic_weight": 2.0}), "--seed", "0"]


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def build_manifest(data_dir: Path, out: Path) -> int:
    rows = [json.loads(x) for x in (data_dir / "fsdd_train.jsonl").read_text().splitlines() if x.strip()]
    esc = [json.loads(x) for x in (data_dir / "esc10_train.jsonl").read_text().splitlines() if x.strip()]
    for r in range(ESC_REPEATS):
        rows += [{**d, "id": d["id"] + (f"#{r}" if r else "")} for d in esc]
    out.write_text("".join(json.dumps(d) + "\n" for d in rows))
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "1")))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-install", action="store_true", help="Do not copy the codec into the package.")
    a = ap.parse_args()
    runs = Path(a.runs)
    data_dir, out_dir = runs / "data", runs / "llmcodec"
    out_dir.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    if not (data_dir / "fsdd_train.jsonl").is_file():
        run([py, "scripts/shared_manifests.py", "--data", a.data, "--out", str(data_dir)])
    manifest = out_dir / "train.jsonl"
    print(f"{manifest}: {build_manifest(data_dir, manifest)} rows", flush=True)
    run_dir = out_dir / "run"
    if not (run_dir / "final").is_dir():
        run([py, "-m", "soundtok", "train-codec", str(manifest), "-o", str(run_dir), *TRAIN_ARGS,
             "--threads", str(a.threads), "--device", a.device, "--resume", "-v"])
    if not a.no_install:
        install(run_dir / "final", ROOT / "soundtok" / "llmcodec" / "default")


def install(src: Path, dest: Path) -> None:
    """Store ``src`` as float16 in ``dest`` (other files there, e.g. the model card, stay)."""
    import torch

    from soundtok.llm.loader import load_llm
    from soundtok.llmcodec.model import LLMCodec

    model, _ = load_llm("gemma3-270m", dtype="float32")
    codec = LLMCodec.from_pretrained(src, llm=model)
    codec.save_pretrained(dest, dtype=torch.float16)
    size = (dest / "model.safetensors").stat().st_size
    print(f"{dest}: sha256 {codec.sha256}, {size / 1e6:.1f} MB", flush=True)


if __name__ == "__main__":
    main()
