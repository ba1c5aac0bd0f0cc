"""Build soundtok's offline training corpus (see docs/corpus.md).

    python scripts/build_corpus.py                      # the full corpus -> $SOUNDTOK_CORPUS or runs/corpus
    python scripts/build_corpus.py --resume             # continue an interrupted build
    python scripts/build_corpus.py --preset tiny -o /tmp/c   # a few clips in seconds
    python scripts/build_corpus.py --stages piper,music --scale 0.1 -o runs/small
    python scripts/build_corpus.py --verify             # check files, durations, ids, disjoint splits

Writes clips/ (16 kHz mono FLAC), train.jsonl, val.jsonl, test.jsonl and
summary.json under the output folder.  A stage whose package is missing is
skipped with a line naming what to install.  Exit status: 0 done, 1 error,
2 bad usage, 130 interrupted (rerun with --resume).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus.build import build  # noqa: E402
from corpus.plan import STAGES, preset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("-o", "--out", default=os.environ.get("SOUNDTOK_CORPUS") or "runs/corpus",
                    help="output folder (default: $SOUNDTOK_CORPUS or runs/corpus)")
    ap.add_argument("--preset", choices=("full", "tiny"), default="full")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"),
                    help="folder holding fsdd/ and esc10/ (default: ../shared/data beside the repository)")
    ap.add_argument("--stages", default=None, help=f"comma list of stages (default: all of {','.join(STAGES)})")
    ap.add_argument("--scale", type=float, default=None, help="multiply voice minutes and music file counts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--resume", action="store_true", help="skip clips a previous run finished")
    ap.add_argument("--force", action="store_true", help="start again even though OUT holds a build")
    ap.add_argument("--log", default=None, metavar="FILE", help="also append the progress log to FILE")
    ap.add_argument("--write-manifests", action="store_true",
                    help="make nothing: write the manifests and summary of the clips finished so far")
    ap.add_argument("--verify", action="store_true",
                    help="only check the corpus in OUT (files, durations, ids, disjoint splits); exit 1 on problems")
    a = ap.parse_args(argv)
    kw: dict = {"seed": a.seed, "data": Path(a.data)}
    if a.stages:
        stages = tuple(s.strip() for s in a.stages.split(",") if s.strip())
        bad = [s for s in stages if s not in STAGES]
        if bad:
            print(f"error: unknown stage(s) {', '.join(bad)} (choose from {', '.join(STAGES)})", file=sys.stderr)
            return 2
        kw["stages"] = stages
    if a.scale is not None:
        if a.scale <= 0:
            print("error: --scale must be positive", file=sys.stderr)
            return 2
        kw["scale"] = a.scale
    if a.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if a.verify:
        from corpus.verify import verify

        problems, stats = verify(Path(a.out))
        for p in problems[:50]:
            print(f"problem: {p}", file=sys.stderr)
        print(json.dumps(stats, indent=1))
        print(f"{len(problems)} problems", file=sys.stderr)
        return 1 if problems else 0
    cfg = preset(a.preset, **kw)
    t = time.time()
    logf = None
    if a.log:
        Path(a.log).parent.mkdir(parents=True, exist_ok=True)
        logf = open(a.log, "a", encoding="utf-8")

    def log(msg: str) -> None:
        line = f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}"
        print(line, file=sys.stderr, flush=True)
        if logf:
            logf.write(line + "\n")
            logf.flush()

    log(f"build_corpus: {' '.join(sys.argv[1:])} (preset {cfg.name}, scale {cfg.scale}, seed {cfg.seed}, "
        f"{a.workers} workers) -> {a.out}")
    try:
        summary = build(cfg, Path(a.out), workers=a.workers, resume=a.resume or a.write_manifests, force=a.force,
                        log=log, make=not a.write_manifests)
    except KeyboardInterrupt:
        print(f"interrupted; continue with: {' '.join([sys.executable, *sys.argv, '--resume'])}", file=sys.stderr)
        return 130
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if os.environ.get("SOUNDTOK_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    tot = summary["totals"]
    log(f"{a.out}: " + ", ".join(f"{s} {tot[s]['clips']} clips {tot[s]['hours']:.2f} h" for s in tot)
        + f"; this run {time.time() - t:.0f} s; all runs {summary['build_wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
