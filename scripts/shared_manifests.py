"""Write JSONL manifests for the shared data sets (FSDD, ESC-10) with the splits
the default models use.

    python scripts/shared_manifests.py --data ../shared/data --out runs/data

Writes ``codec_train.jsonl`` (FSDD train split + ESC-10 folds 1-3),
``codec_val.jsonl`` (FSDD test split + ESC-10 fold 4) and per-data-set split
files (``fsdd_train.jsonl``, ``fsdd_test.jsonl``, ``esc10_train.jsonl``,
``esc10_fold4.jsonl``) with ``id``, ``path``, ``label`` and ``text``. Paths
point into the data folder; no audio is copied.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def fsdd(data: Path):
    with open(data / "fsdd" / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            p = data / "fsdd" / row["path"]
            yield row["official_split"], {
                "id": f"fsdd/{p.stem}", "path": str(p.resolve()), "label": DIGITS[int(row["digit"])],
                "text": f"someone says {DIGITS[int(row['digit'])]}", "speaker": row["speaker"]}


def esc10(data: Path):
    with open(data / "esc10" / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            p = data / "esc10" / row["path"]
            label = row["esc10_class"].lower()
            yield int(row["fold"]), {
                "id": f"esc10/{p.stem}", "path": str(p.resolve()), "label": label,
                "text": label, "fold": int(row["fold"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default="runs/data")
    a = ap.parse_args()
    data, out = Path(a.data), Path(a.out)
    if not (data / "fsdd").is_dir() or not (data / "esc10").is_dir():
        raise SystemExit(f"error: {data} does not hold fsdd/ and esc10/ (see ../shared/data/README.md)")
    out.mkdir(parents=True, exist_ok=True)
    sets: dict[str, list] = {k: [] for k in ("fsdd_train", "fsdd_test", "esc10_train", "esc10_fold4")}
    for split, rec in fsdd(data):
        sets["fsdd_train" if split == "train" else "fsdd_test"].append(rec)
    for fold, rec in esc10(data):
        sets["esc10_train" if fold in (1, 2, 3) else "esc10_fold4"].append(rec)
    sets["codec_train"] = sets["fsdd_train"] + sets["esc10_train"]
    sets["codec_val"] = sets["fsdd_test"] + sets["esc10_fold4"]
    for name, recs in sets.items():
        with open(out / f"{name}.jsonl", "w") as f:
            for r in recs:
                f.write(json.dumps(r) + "\n")
        print(f"{out / (name + '.jsonl')}: {len(recs)} items")


if __name__ == "__main__":
    main()
