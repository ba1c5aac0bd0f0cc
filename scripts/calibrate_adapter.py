"""Calibrate a caption adapter's "unsure" flag on held-out audio, and write it into the adapter.

    python scripts/calibrate_adapter.py --adapter DIR \
        --in-domain fsdd_test.jsonl esc10_fold4.jsonl \
        --out-of-domain corpus_speech.jsonl corpus_music.jsonl [--codec default] [--keep 0.95] [--write]

Every clip is tokenized with the adapter's codec and captioned (greedy, as ``soundtok
caption`` does); each caption's score is its mean token log-probability.  ``min_score`` is
the score that keeps ``--keep`` of the in-domain clips (audio like the training data, but
clips the adapter never saw) above it; the report gives how many clips of each
out-of-domain set fall below it, i.e. are flagged ``unsure``.  ``--write`` stores
``{"min_score", "keep", "sets": {...}}`` as ``calibration`` in the adapter's
``soundtok-adapter.json`` (atomically); without it nothing is written.  With
``--write-if-flagged F`` it is written only when at least a share ``F`` of all
out-of-domain clips is flagged (a threshold that flags few of them would only mislead;
the adapter then keeps printing scores without ``unsure``).

Inputs are manifests or folders (anything ``soundtok tokenize`` reads); ``--limit N`` takes
an evenly spaced N of each set.  ``--json FILE`` writes the per-clip scores and the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _subset(manifest: Path, limit: int | None, out: Path) -> Path:
    """An evenly spaced ``limit`` rows of a JSONL manifest (paths made absolute)."""
    rows = [json.loads(x) for x in manifest.read_text(encoding="utf-8").splitlines() if x.strip()]
    if limit and len(rows) > limit:
        step = len(rows) / limit
        rows = [rows[int(i * step)] for i in range(limit)]
    for r in rows:
        if not Path(r["path"]).is_absolute():
            r["path"] = str((manifest.parent / r["path"]).resolve())
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out


def score_set(alm, tok, codec, spec: Path, limit: int | None, tmp: Path, batch: int) -> list[dict]:
    import torch

    from soundtok.api import tokenize
    from soundtok.audiolm.tasks import CaptionOptions, caption_stream

    src = _subset(spec, limit, tmp / f"{spec.stem}.jsonl") if spec.suffix == ".jsonl" else spec
    stream = tmp / f"{spec.stem}.tok.jsonl"
    tokenize([str(src)], str(stream), codec=codec)
    with torch.inference_mode():
        return [{"id": item.id, "caption": c.text, "score": c.score, "label": item.label}
                for item, c in caption_stream(alm, tok, str(stream), CaptionOptions(batch_size=batch))]


def quantile(values: list[float], q: float) -> float:
    v = sorted(values)
    i = max(0, min(len(v) - 1, int(round(q * (len(v) - 1)))))
    return v[i]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapter", default=None, help="adapter directory (default: the shipped one)")
    ap.add_argument("--in-domain", nargs="+", type=Path, required=True)
    ap.add_argument("--out-of-domain", nargs="+", type=Path, required=True)
    ap.add_argument("--codec", default="default", help="the adapter's codec (checked against the adapter)")
    ap.add_argument("--keep", type=float, default=0.95, help="share of in-domain clips kept confident")
    ap.add_argument("--limit", type=int, default=None, help="evenly spaced N clips of each set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--write", action="store_true", help="store the calibration in the adapter")
    ap.add_argument("--write-if-flagged", type=float, default=0.0, metavar="F",
                    help="with --write: only if at least this share of out-of-domain clips is flagged")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch

    from soundtok.audiolm.adapter import META_FILE, load_adapter, resolve_adapter
    from soundtok.fileio import atomic_write

    torch.set_num_threads(args.threads)
    directory = resolve_adapter(args.adapter)
    alm, tok, meta = load_adapter(args.adapter, device="cpu")
    codec = args.codec  # the caption step refuses a stream of another codec than the adapter's
    sets: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, specs in (("in", args.in_domain), ("out", args.out_of_domain)):
            for spec in specs:
                rows = score_set(alm, tok, codec, spec, args.limit, Path(tmp), args.batch_size)
                sets[f"{kind}:{spec.stem}"] = rows
                print(f"{kind}-domain {spec.stem}: {len(rows)} clips scored", file=sys.stderr)
    inside = [r["score"] for k, rows in sets.items() if k.startswith("in:") for r in rows]
    cut = round(quantile(inside, 1.0 - args.keep), 4)
    report = {}
    print(f"min_score {cut} (keeps {args.keep:.0%} of the in-domain clips above it)")
    print(f"{'set':32s} {'clips':>6s} {'flagged unsure':>15s} {'median score':>13s}")
    for name, rows in sets.items():
        scores = [r["score"] for r in rows]
        flagged = sum(s < cut for s in scores)
        report[name] = {"clips": len(rows), "flagged": flagged, "median_score": quantile(scores, 0.5)}
        print(f"{name:32s} {len(rows):6d} {flagged:6d} ({flagged / len(rows):6.1%}) {quantile(scores, 0.5):13.4f}")
    outside = [r["score"] for k, rows in sets.items() if k.startswith("out:") for r in rows]
    flagged_out = round(sum(s < cut for s in outside) / max(1, len(outside)), 4)
    print(f"out-of-domain clips flagged: {flagged_out:.1%} of {len(outside)}")
    calibration = {"min_score": cut, "keep": args.keep, "out_of_domain_flagged": flagged_out, "sets": report}
    if args.json:
        args.json.write_text(json.dumps({"calibration": calibration, "clips": sets}, indent=1) + "\n")
    if args.write and flagged_out < args.write_if_flagged:
        print(f"not written: {flagged_out:.1%} of the out-of-domain clips flagged, under the "
              f"{args.write_if_flagged:.0%} asked (--write-if-flagged); the adapter stays uncalibrated")
    elif args.write:
        meta_path = directory / META_FILE
        data = json.loads(meta_path.read_text(encoding="utf-8"))
        data["calibration"] = calibration
        with atomic_write(str(meta_path), "w") as f:
            f.write(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote the calibration into {meta_path}")


if __name__ == "__main__":
    main()
