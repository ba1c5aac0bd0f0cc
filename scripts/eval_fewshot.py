"""Few-shot in-context accuracy of an LLM-Codec with its frozen LLM (default: the shipped one).

    python scripts/eval_fewshot.py [--codec llm-codec] [--runs runs] [--threads 1] [--episodes 100]

1. Tokenizes ESC-10 fold 4 (queries) and folds 1-3 (demonstrations), the FSDD
   test split (queries) and train split (demonstrations) with the codec
   (``soundtok tokenize --codec ...``; skipped when the stream exists and was
   made by this codec).
2. Runs N-way 1-shot episodes (N = 2, 3, 4, 5), with and without the task
   instruction, ``--episodes`` seeded episodes each (seed 0), exactly as
   ``soundtok evaluate fewshot QUERIES --demos DEMOS --ways N --shots 1``.
3. Prints a table and writes runs/llmcodec/eval/fewshot.json (+ .md).

Published reference (UniAudio 1.5, LLM-Codec + frozen LLaMA-2 7B, ESC-50
N-way 1-shot): 2-way 60%, 3-way 41%, 4-way 36%, 5-way 33%.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

UNIAUDIO = {2: 0.60, 3: 0.41, 4: 0.36, 5: 0.33}
SETS = {"esc10": ("esc10_fold4", "esc10_train"), "fsdd": ("fsdd_test", "fsdd_train")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="llm-codec")
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--ways", default="2,3,4,5")
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--scales", default="0", help="0 (the words, default), e.g. 0,1, or all")
    ap.add_argument("--sets", default="esc10,fsdd")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    import torch

    from soundtok.api import tokenize
    from soundtok.evaluate.fewshot import run_fewshot
    from soundtok.llm.loader import load_llm
    from soundtok.llmcodec.incontext import read_labelled_stream
    from soundtok.registry import load_codec

    torch.set_num_threads(a.threads)
    runs = Path(a.runs)
    out_dir = Path(a.out) if a.out else runs / "llmcodec" / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    model, tokenizer = load_llm("gemma3-270m")
    codec = load_codec(a.codec, llm=model)
    print(f"codec {codec.cfg.name} sha256 {codec.sha256[:12]}; LLM loaded in {time.time() - t0:.1f} s", flush=True)
    streams = {}
    for split in sorted({s for name in a.sets.split(',') for s in SETS[name]}):
        path = out_dir / f"{split}.tok.jsonl"
        ok = False
        if path.is_file():
            from soundtok.tokens import TokenReader
            with TokenReader(str(path)) as r:
                ok = r.header.codec.get("sha256") == codec.sha256
        if not ok:
            t = time.time()
            rep = tokenize([str(runs / "data" / f"{split}.jsonl")], str(path), codec=codec)
            print(f"tokenized {split}: {rep.ok} clips, {rep.audio_seconds:.0f} s of audio in "
                  f"{time.time() - t:.1f} s", flush=True)
        streams[split] = path
    scales = None if a.scales == "all" else [int(x) for x in a.scales.split(",")]
    rows = []
    for name in a.sets.split(","):
        q, d = SETS[name]
        header, items = read_labelled_stream(str(streams[q]))
        dh, demos = read_labelled_stream(str(streams[d]))
        for ways in [int(x) for x in a.ways.split(",")]:
            for instruction in (True, False):
                t = time.time()
                res = run_fewshot(model, tokenizer, header, items, ways=ways, shots=a.shots,
                                  episodes=a.episodes, seed=0, instruction=instruction, scales=scales,
                                  demo_items=demos, demo_header=dh)
                row = {"set": name, "queries": q, "demos": d, **res.row(), "seconds": round(time.time() - t, 1),
                       "scales": a.scales, "uniaudio15_llama2_7b": UNIAUDIO.get(ways) if name == "esc10" else None}
                row.pop("per_episode")
                rows.append(row)
                print(f"{name} {ways}-way {a.shots}-shot instruction={instruction}: "
                      f"acc {res.accuracy:.4f} (95% CI {res.ci_low:.4f}-{res.ci_high:.4f}; chance "
                      f"{res.chance:.4f}; {res.judged} judged; {row['seconds']} s)", flush=True)
    (out_dir / "fewshot.json").write_text(json.dumps({"codec": codec.cfg.name, "codec_sha256": codec.sha256,
                                                      "episodes": a.episodes, "rows": rows}, indent=1))
    lines = ["| set | N-way | instruction | accuracy | 95% CI (episodes) | chance | UniAudio 1.5 (7B) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = f"{r['uniaudio15_llama2_7b']:.2f}" if r["uniaudio15_llama2_7b"] else "–"
        lines.append(f"| {r['set']} | {r['ways']} | {'yes' if r['instruction'] else 'no'} | {r['accuracy']:.4f} | "
                     f"{r['ci_low']:.4f}–{r['ci_high']:.4f} | {r['chance']:.4f} | {ref} |")
    (out_dir / "fewshot.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
