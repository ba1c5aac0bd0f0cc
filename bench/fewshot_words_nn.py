"""A no-LLM reference for few-shot accuracy: nearest demonstration by bag of codes.

    python bench/fewshot_words_nn.py runs/llmcodec/eval/esc10_fold4.tok.jsonl \
        runs/llmcodec/eval/esc10_train.tok.jsonl [--episodes 300] [--seed 0]

For the same seeded N-way 1-shot episodes as ``soundtok evaluate fewshot``
(``sample_episodes`` with a demonstration pool), each query gets the label of
the demonstration whose code histogram (per scale) has the highest cosine
similarity to its own.  It shows how much label information the codes carry,
independent of whether an LLM can use it in context.
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from soundtok.evaluate.fewshot import sample_episodes  # noqa: E402
from soundtok.llmcodec.incontext import read_labelled_stream  # noqa: E402


def cosine(a: collections.Counter, b: collections.Counter) -> float:
    num = sum(a[x] * b[x] for x in a)
    den = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return num / den if den else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("queries")
    ap.add_argument("demos")
    ap.add_argument("--ways", default="2,3,4,5")
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    _, items = read_labelled_stream(a.queries)
    _, demos = read_labelled_stream(a.demos)
    scales = range(len(items[0].codes))
    print(f"distinct scale-0 codes used: {len({c for it in items + demos for c in it.codes[0]})}")
    for ways in [int(x) for x in a.ways.split(",")]:
        eps = sample_episodes([i.label for i in items], ways, 1, a.episodes, a.seed, [i.label for i in demos])
        accs = []
        for k in scales:
            ok = n = 0
            for ep in eps:
                for q in ep.queries:
                    qb = collections.Counter(items[q].codes[k])
                    best = max(ep.demos, key=lambda j: cosine(qb, collections.Counter(demos[j].codes[k])))
                    ok += demos[best].label == items[q].label
                    n += 1
            accs.append(f"scale {k} {ok / n:.3f}")
        print(f"{ways}-way 1-shot, {a.episodes} episodes, chance {1 / ways:.3f}: " + ", ".join(accs))


if __name__ == "__main__":
    main()
