"""Wall time of ``soundtok tokenize CLIP | soundtok caption`` through the real CLI.

The target (issue "Captions that generalise", item 4): a 10 s clip captioned in <= 5 s end to
end with 2 threads.  Each run is a fresh pair of processes in a shell pipe, timed from before
the pipe starts to after the caption is printed; the first run also builds the merged-model
cache if it is missing (reported apart, as "cold").  A per-stage breakdown of one caption
process follows (import, model load, the rest of the tokenizer's background load, caption),
measured in-process.

    python bench/bench_caption.py --threads 2 --runs 5
    python bench/bench_caption.py --clip examples/speech.wav --seconds 10 --json bench/results-caption.json

soundtok's modules are compiled to bytecode first (``__pycache__``, git-ignored), as an
installed package has them; under ``PYTHONDONTWRITEBYTECODE=1`` a source checkout would
otherwise compile them again in every process (``--no-bytecode`` measures that).

The clip is repeated (and cut) to ``--seconds``.  The load average before and after is
printed: on a busy machine the wall times mean little; the CPU time of both processes (user +
system, all their threads) is printed too, a measure that other load inflates much less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 5.0


def make_clip(src: Path, seconds: float, out: Path) -> None:
    import numpy as np
    import soundfile as sf

    wav, sr = sf.read(str(src), dtype="float32", always_2d=True)
    wav = wav.mean(axis=1)
    n = int(seconds * sr)
    reps = int(np.ceil(n / len(wav)))
    sf.write(str(out), np.tile(wav, reps)[:n], sr)


def children_cpu() -> float:
    """User + system CPU seconds of every finished child process so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_pipe(clip: Path, threads: int, env: dict) -> tuple[float, float, str]:
    """``(wall s, CPU s of both processes, caption line)`` of one ``tokenize | caption``."""
    py = sys.executable
    cmd = (f"{py} -m soundtok tokenize {clip} --threads {threads} | "
           f"{py} -m soundtok caption --threads {threads}")
    cpu = children_cpu()
    t = time.perf_counter()
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, env=env, check=False)
    wall = time.perf_counter() - t
    if p.returncode:
        sys.exit(f"error: the pipe failed ({p.returncode}): {p.stderr.decode().strip().splitlines()[-1:]}")
    return wall, children_cpu() - cpu, p.stdout.decode().strip()


STAGES = r"""
import json, sys, time
marks = [(time.perf_counter(), time.process_time())]
import torch
torch.set_num_threads(int(sys.argv[2]))
from soundtok.audiolm.adapter import load_adapter
from soundtok.audiolm.tasks import CaptionOptions, caption_stream
marks.append((time.perf_counter(), time.process_time()))
import inspect
kw = {"decode_only": True} if "decode_only" in inspect.signature(load_adapter).parameters else {}
alm, tok, _ = load_adapter(None, device="cpu", **kw)  # as caption loads it
marks.append((time.perf_counter(), time.process_time()))
getattr(tok, "tokenizer", tok)  # waits for a tokenizer loading in the background
marks.append((time.perf_counter(), time.process_time()))
with torch.inference_mode():
    caps = [c.text for _, c in caption_stream(alm, tok, sys.argv[1], CaptionOptions())]
marks.append((time.perf_counter(), time.process_time()))
names = ("import", "load", "tokenizer", "caption")
out = {f"{n}_s": b[0] - a[0] for n, a, b in zip(names, marks, marks[1:])}
out.update({f"{n}_cpu_s": b[1] - a[1] for n, a, b in zip(names, marks, marks[1:])})
print(json.dumps({**out, "caption": caps[0]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", type=Path, default=ROOT / "examples" / "speech.wav")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-bytecode", action="store_true",
                    help="do not compile soundtok's modules first: with PYTHONDONTWRITEBYTECODE=1 and a source "
                         "checkout, every process then compiles them again")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not args.no_bytecode:  # as an installed package has it (pip compiles on install)
        import compileall

        compileall.compile_dir(str(ROOT / "soundtok"), quiet=1)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.wav"
        make_clip(args.clip, args.seconds, clip)
        cold, _, caption = run_pipe(clip, args.threads, env)
        runs = [run_pipe(clip, args.threads, env) for _ in range(args.runs)]
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        tokens = Path(tmp) / "clip.tok.jsonl"
        subprocess.run([sys.executable, "-m", "soundtok", "tokenize", str(clip), "-o", str(tokens),
                        "--threads", str(args.threads)], check=True, env=env, capture_output=True)
        p = subprocess.run([sys.executable, "-c", STAGES, str(tokens), str(args.threads)], check=True, env=env,
                           capture_output=True)
        stages = json.loads(p.stdout.decode().strip().splitlines()[-1])
    load_after = os.getloadavg()[0]
    median = statistics.median(walls)
    print(f"clip: {args.seconds:g} s from {args.clip.name}; threads {args.threads}; soundtok's bytecode "
          f"{'not ' if args.no_bytecode else ''}compiled first; caption: {caption}")
    print(f"first run (may build caches): {cold:.2f} s")
    print(f"runs: {', '.join(f'{w:.2f}' for w in walls)} s; median {median:.2f} s, best {min(walls):.2f} s")
    print(f"CPU time of both processes (user + system): {', '.join(f'{c:.2f}' for c in cpus)} s; "
          f"median {statistics.median(cpus):.2f} s")
    print(f"one caption process: imports {stages['import_s']:.2f} s, load {stages['load_s']:.2f} s, "
          f"then waiting for the tokenizer {stages['tokenizer_s']:.2f} s, caption {stages['caption_s']:.2f} s "
          f"(wall); CPU {stages['import_cpu_s']:.2f}, {stages['load_cpu_s']:.2f}, {stages['tokenizer_cpu_s']:.2f}, "
          f"{stages['caption_cpu_s']:.2f} s (all threads; the tokenizer loads in a thread from the load on)")
    print(f"target <= {TARGET_S:g} s: {'met' if median <= TARGET_S else 'NOT met'} (median)")
    print(f"load average: {load_before:.2f} before, {load_after:.2f} after")
    if args.json:
        args.json.write_text(json.dumps({
            "clip_seconds": args.seconds, "threads": args.threads, "first_run_s": cold, "runs_s": walls,
            "median_s": median, "cpu_s": cpus, "stages": stages, "load_before": load_before,
            "load_after": load_after,
        }, indent=1) + "\n")


if __name__ == "__main__":
    main()
