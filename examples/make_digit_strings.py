"""Build spoken digit strings from the FSDD test split, for ``soundtok evaluate``.

    python examples/make_digit_strings.py --data ../shared/data --out runs/eval/fsdd_strings

The test split (recording index 0-4) is grouped by speaker; each speaker's
clips are shuffled with a fixed seed and cut into groups of ``--per-string``
(default 10) clips, which are concatenated with ``--gap`` seconds (default
0.1) of silence between them: about 5 s of speech per file, at the data's own
8 kHz.  Writes ``<speaker>_<k>.wav`` files and ``manifest.jsonl`` (``id``,
``path``, ``label`` = the digits, e.g. ``"3 1 4"``, ``text`` = ``someone says
three one four``, ``speaker``).  Nothing is copied into the repository: write
under ``runs/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
from collections import defaultdict

import numpy as np
import soundfile as sf

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", help="folder holding fsdd/")
    ap.add_argument("--out", default="runs/eval/fsdd_strings")
    ap.add_argument("--per-string", type=int, default=10, help="clips per string")
    ap.add_argument("--gap", type=float, default=0.1, help="seconds of silence between clips")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    labels = os.path.join(a.data, "fsdd", "labels.csv")
    if not os.path.isfile(labels):
        print(f"error: {labels} not found (see ../shared/data/README.md)", file=sys.stderr)
        return 1
    by_speaker: dict[str, list[dict]] = defaultdict(list)
    with open(labels, newline="") as f:
        for row in csv.DictReader(f):
            if row["official_split"] == "test":
                by_speaker[row["speaker"]].append(row)
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    records = []
    for speaker in sorted(by_speaker):
        rows = sorted(by_speaker[speaker], key=lambda r: r["path"])
        rng.shuffle(rows)
        for k in range(0, len(rows) - a.per_string + 1, a.per_string):
            group = rows[k:k + a.per_string]
            parts, sr = [], None
            for i, row in enumerate(group):
                x, file_sr = sf.read(os.path.join(a.data, "fsdd", row["path"]), dtype="float32",
                                     always_2d=True)
                if sr is None:
                    sr = file_sr
                elif file_sr != sr:
                    print(f"error: {row['path']} is at {file_sr} Hz, not {sr}", file=sys.stderr)
                    return 1
                if i:
                    parts.append(np.zeros(int(round(a.gap * sr)), np.float32))
                parts.append(x.mean(axis=1))
            name = f"{speaker}_{k // a.per_string:02d}"
            tmp = os.path.join(a.out, f".{name}.tmp.wav")
            sf.write(tmp, np.concatenate(parts), sr, subtype="PCM_16")
            os.replace(tmp, os.path.join(a.out, f"{name}.wav"))
            digits = [int(r["digit"]) for r in group]
            records.append({"id": f"fsdd_strings/{name}", "path": f"{name}.wav",
                            "label": " ".join(map(str, digits)),
                            "text": "someone says " + " ".join(DIGITS[d] for d in digits),
                            "speaker": speaker})
    tmp = os.path.join(a.out, ".manifest.jsonl.tmp")
    with open(tmp, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, os.path.join(a.out, "manifest.jsonl"))
    print(f"{a.out}/manifest.jsonl: {len(records)} digit strings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
