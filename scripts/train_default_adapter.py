"""Train the default caption/generation adapter shipped in soundtok/audiolm/default_adapter.

    python scripts/train_default_adapter.py --data ../shared/data --runs runs

Steps (each is skipped when its output exists, so an interrupted run resumes):

1. manifests of FSDD and ESC-10 (scripts/shared_manifests.py);
2. token streams with the default codec (``soundtok tokenize``);
3. training / validation streams whose items carry varied captions
   (``meta.captions``) and generation prompts (``meta.prompts``) built from
   the labels only: training = FSDD train split + ESC-10 folds 1-3 (ESC-10
   items twice, to balance the 9:1 item ratio), validation = FSDD test split
   + ESC-10 fold 4;
4. ``soundtok finetune-llm --task mixed`` in two stages (both resumable):
   4 epochs from scratch, then 2 epochs at a lower learning rate from the
   stage-1 adapter with ESC-10 captions weighted up (three extra, randomly
   cropped caption examples per clip);
5. the final adapter is copied into soundtok/audiolm/default_adapter (the model
   card there is kept).

The captions say only what a label says -- the digit that is spoken, or the
sound class -- in different words; never counts, distances, speakers or other
details the labels do not support.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

DIGIT_CAPTIONS = [
    "someone says {w}",
    "a voice saying the digit {w}",
    "the word {w} is spoken",
    "a person says the number {w}",
    "the spoken digit {w}",
    "someone saying {w}",
    "a voice says {w}",
    "the number {w}, spoken",
]
DIGIT_PROMPTS = [
    "spoken digit {w}",
    "spoken digit {n}",
    "someone says {w}",
    "a voice saying the digit {w}",
    "the word {w} is spoken",
    "say {w}",
    "the number {n} spoken aloud",
    "a person says the number {w}",
]
ESC_CAPTIONS = {
    "dog bark": ["a dog is barking", "a dog barks", "the sound of a dog barking", "dog barking"],
    "rain": ["the sound of rain", "rain is falling", "rain falling", "a recording of rain"],
    "sea waves": ["sea waves", "the sound of sea waves", "waves of the sea", "sea waves breaking"],
    "baby cry": ["a baby is crying", "a baby cries", "the sound of a baby crying", "a crying baby"],
    "clock tick": ["a clock is ticking", "the ticking of a clock", "a clock ticks",
                   "the sound of a clock ticking"],
    "person sneeze": ["a person sneezes", "a person sneezing", "the sound of a person sneezing",
                      "someone sneezes"],
    "helicopter": ["a helicopter", "the sound of a helicopter", "a helicopter is flying",
                   "helicopter noise"],
    "chainsaw": ["a chainsaw is running", "the sound of a chainsaw", "a chainsaw", "chainsaw noise"],
    "rooster": ["a rooster crows", "a rooster crowing", "the sound of a rooster crowing", "a rooster"],
    "fire crackling": ["a fire is crackling", "the crackling of a fire", "fire crackling",
                       "the sound of a crackling fire"],
}

#: Training settings of the shipped adapter (LoRA rank 32 rather than the paper's 64
#: keeps it under 30 MB in bfloat16 and trains faster on CPU; alpha/r = 2 as in the paper).
#: Length kept by the random crops of stage 2's extra ESC-10 caption examples.
CROP = 0.7

LORA_ARGS = ["--lora-r", "32", "--lora-alpha", "64", "--lora-dropout", "0.05", "--max-length", "512",
             "--batch-size", "16", "--save-every", "100", "--log-every", "10", "--seed", "0",
             "--adapter-dtype", "bfloat16"]
STAGE1_ARGS = ["--task", "mixed", "--epochs", "4", "--lr", "3e-4", "--embedding-lr", "1e-3", "--warmup", "50",
               *LORA_ARGS]
STAGE2_ARGS = ["--task", "mixed", "--epochs", "2", "--lr", "1e-4", "--embedding-lr", "3e-4", "--warmup", "20",
               *LORA_ARGS]


def texts_for(label: str) -> tuple[list[str], list[str]]:
    """Captions and generation prompts for one label."""
    if label in DIGITS:
        n = DIGITS.index(label)
        caps = [t.format(w=label, n=n) for t in DIGIT_CAPTIONS]
        return caps, [t.format(w=label, n=n) for t in DIGIT_PROMPTS]
    caps = ESC_CAPTIONS[label]
    return caps, caps


def run(cmd: list[str], log=None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def build_stream(sources: list[tuple[Path, int, int]], out: Path, seed: int) -> int:
    """Copy items of ``sources`` into ``out`` with captions and prompts.

    Each source is ``(path, repeats, caption_only_repeats)``: the item appears
    ``repeats`` times for both tasks and ``caption_only_repeats`` more times for
    captioning only (``meta.tasks``), each of those a random crop of
    :data:`CROP` of its length (at most 1.5 s shorter), so that repeated
    clips are not seen identically.
    """
    from soundtok.tokens import TokenReader, open_token_writer

    rng = random.Random(seed)
    header, items = None, []
    for path, repeats, caption_only in sources:
        with TokenReader(path) as reader:
            if header is None:
                header = reader.header
            elif reader.header.codec != header.codec:
                raise SystemExit(f"{path} was tokenized with another codec")
            for item in reader:
                caps, prompts = texts_for(item.label)
                for r in range(repeats + caption_only):
                    meta = {**item.meta, "captions": caps, "prompts": prompts}
                    codes, n = item.codes, item.num_samples
                    if r >= repeats:
                        meta["tasks"] = ["caption"]
                        frames = len(codes[0])
                        keep = max(int(frames * CROP), frames - int(1.5 * header.frame_rates[0]))
                        start = rng.randrange(frames - keep + 1)
                        codes, n = [codes[0][start:start + keep]], keep * header.hop_lengths[0]
                    items.append(type(item)(id=item.id if r == 0 else f"{item.id}#{r + 1}",
                                            num_samples=n, codes=codes, source=item.source,
                                            text=rng.choice(caps), label=item.label, meta=meta))
    with open_token_writer(out, header) as w:
        for item in items:
            w.write(item)
    return len(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "2")))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-install", action="store_true", help="Do not copy the adapter into the package.")
    a = ap.parse_args()
    runs = Path(a.runs)
    data_dir, llm_dir = runs / "data", runs / "llm"
    llm_dir.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    if not (data_dir / "fsdd_train.jsonl").is_file():
        run([py, "scripts/shared_manifests.py", "--data", a.data, "--out", str(data_dir)])
    for split in ("fsdd_train", "fsdd_test", "esc10_train", "esc10_fold4"):
        out = llm_dir / f"{split}.tok.jsonl"
        if not out.is_file():
            run([py, "-m", "soundtok", "tokenize", str(data_dir / f"{split}.jsonl"), "-o", str(out),
                 "--threads", str(a.threads), "--device", a.device])
    val = llm_dir / "adapter_val.tok.jsonl"
    n_val = build_stream([(llm_dir / "fsdd_test.tok.jsonl", 1, 0), (llm_dir / "esc10_fold4.tok.jsonl", 1, 0)],
                         val, seed=1)
    common = ["--val", str(val), "--threads", str(a.threads), "--device", a.device, "-v"]
    t0 = time.time()
    # Stage 1: both tasks, ESC-10 items twice.
    train1 = llm_dir / "adapter_train.tok.jsonl"
    n1 = build_stream([(llm_dir / "fsdd_train.tok.jsonl", 1, 0), (llm_dir / "esc10_train.tok.jsonl", 2, 0)],
                      train1, seed=0)
    print(f"{train1}: {n1} items; {val}: {n_val} items", flush=True)
    stage1 = llm_dir / "default-adapter"
    if not (stage1 / "final").is_dir():
        run([py, "-m", "soundtok", "finetune-llm", str(train1), "-o", str(stage1), *STAGE1_ARGS, "--resume",
             *common])
    # Stage 2: from stage 1, lower learning rate, ESC-10 captions weighted up
    # (each ESC-10 clip once for both tasks and three more times, randomly cropped, for captioning).
    train2 = llm_dir / "adapter_train2.tok.jsonl"
    n2 = build_stream([(llm_dir / "fsdd_train.tok.jsonl", 1, 0), (llm_dir / "esc10_train.tok.jsonl", 1, 3)],
                      train2, seed=2)
    print(f"{train2}: {n2} items", flush=True)
    stage2 = llm_dir / "default-adapter-2"
    if not (stage2 / "final").is_dir():
        run([py, "-m", "soundtok", "finetune-llm", str(train2), "-o", str(stage2), *STAGE2_ARGS,
             "--init-adapter", str(stage1 / "final"), "--resume", *common])
    print(f"stages finished in {(time.time() - t0) / 60:.1f} min (this session)", flush=True)
    for stage in (stage1, stage2):
        meta = json.loads((stage / "final" / "soundtok-adapter.json").read_text())
        print(f"{stage.name}: {meta['training']}", flush=True)
    if not a.no_install:
        install(stage2 / "final", ROOT / "soundtok" / "audiolm" / "default_adapter")


def install(src: Path, dest: Path) -> None:
    """Replace the adapter files in ``dest`` by those of ``src`` (other files stay)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors", "audio_embeddings.safetensors",
                 "soundtok-adapter.json"):
        shutil.copyfile(src / name, dest / name)
    meta = json.loads((dest / "soundtok-adapter.json").read_text())
    size = sum((dest / n).stat().st_size for n in os.listdir(dest))
    print(f"installed {src} -> {dest} ({size / 1e6:.1f} MB; LLM {meta['llm']['name']}, "
          f"codec {meta['codec']['header']['codec']['name']})", flush=True)


if __name__ == "__main__":
    main()
