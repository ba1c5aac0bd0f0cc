"""Data-set conversion throughput: `soundtok tokenize --manifest` on real clips
from ../shared/data with 0, 1 and 2 decoding workers (not a test).

A manifest of the first N clips (FSDD 8 kHz WAV and ESC-10 44.1 kHz Ogg
Vorbis, interleaved, sorted by path, referenced where they lie -- nothing is
copied) is written to a temporary folder, then for each worker count

    soundtok tokenize --manifest m.jsonl --workers W --batch-size B -o out.tok.jsonl --threads T

runs as a child process.  Reported: wall time of the whole command
(interpreter start and model load included), clips/s, x real time (audio
seconds / wall seconds), and the peak RSS of the main process (workers not
included).  Each run's output is checked to hold every clip, and all runs'
outputs are checked to be identical.

    python bench/bench_shards.py --clips 1000 --workers 1,2 --threads 1 --json bench/results-shards.json
    python bench/bench_shards.py --clips 20 --workers 0,1,2                  # a quick check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def clips(data: Path, n: int) -> list[Path]:
    fsdd = sorted((data / "fsdd").rglob("*.wav"))
    esc = sorted((data / "esc10").rglob("*.ogg"))
    if not fsdd and not esc:
        sys.exit(f"error: no clips under {data} (expected fsdd/ and esc10/)")
    out, i = [], 0
    while len(out) < n and (i < len(fsdd) or i < len(esc)):
        # about one ESC-10 clip per 8 FSDD clips, as the data sets' sizes go
        if i < len(fsdd):
            out.append(fsdd[i])
        if i % 8 == 0 and i // 8 < len(esc):
            out.append(esc[i // 8])
        i += 1
    return out[:n]


def run(cmd: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"error: tokenize failed ({code}): {err.decode(errors='replace').strip()[-500:]}")
    return {"wall_s": round(wall, 2), "peak_rss_mb_main": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--workers", default="1,2", help="worker counts, comma-separated (0 = in-process)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--codec", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    import soundfile as sf

    paths = clips(Path(a.data), a.clips)
    audio_s = sum(sf.info(str(p)).duration for p in paths)
    rows, digests, outputs = [], set(), {}
    with tempfile.TemporaryDirectory() as tmp:
        man = Path(tmp) / "m.jsonl"
        man.write_text("".join(json.dumps({"path": str(p.resolve()),
                                           "id": str(p.relative_to(a.data).with_suffix(""))}) + "\n"
                               for p in paths))
        for w in [int(x) for x in a.workers.split(",")]:
            out = Path(tmp) / f"out{w}.tok.jsonl"
            cmd = [sys.executable, "-m", "soundtok", "tokenize", "--manifest", str(man), "-o", str(out),
                   "--workers", str(w), "--batch-size", str(a.batch_size), "--threads", str(a.threads),
                   "--device", "cpu"] + (["--codec", a.codec] if a.codec else [])
            r = run(cmd)
            data = out.read_bytes()
            n_items = data.count(b"\n") - 1
            if n_items != len(paths):
                sys.exit(f"error: {out} holds {n_items} items, expected {len(paths)}")
            digests.add(hashlib.sha256(data).hexdigest())
            outputs[w] = {o["id"]: o["codes"] for o in map(json.loads, data.splitlines()[1:])}
            row = {"workers": w, "clips": len(paths), "audio_s": round(audio_s, 1), **r,
                   "clips_per_s": round(len(paths) / r["wall_s"], 1),
                   "x_realtime": round(audio_s / r["wall_s"], 1)}
            rows.append(row)
            print(f"workers {w}: {r['wall_s']:7.1f} s  {row['clips_per_s']:7.1f} clips/s  "
                  f"{row['x_realtime']:7.1f}x real time  main RSS {r['peak_rss_mb_main']} MB", flush=True)
    # Outputs should be identical; where they are not, say how far apart (batch composition
    # changes float rounding, which can flip near-ties between two codewords).
    diffs = {}
    base_w = next(iter(outputs))
    for w, items in outputs.items():
        if w == base_w:
            continue
        ids = [i for i in items if items[i] != outputs[base_w].get(i)]
        total = sum(len(c) for v in outputs[base_w].values() for c in v)
        changed = sum(x != y for i in ids for a_, b_ in zip(items[i], outputs[base_w][i])
                      for x, y in zip(a_, b_))
        diffs[f"{w}_vs_{base_w}"] = {"items_differing": len(ids), "codes_differing": changed,
                                     "codes_total": total, "ids_same_order": list(items) == list(outputs[base_w])}
        print(f"workers {w} vs {base_w}: {len(ids)} items differ, {changed} of {total} codes", flush=True)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "threads": a.threads,
              "batch_size": a.batch_size, "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
              "outputs_identical": len(digests) == 1, "differences": diffs, "rows": rows}
    print("\n| workers | clips | audio | wall | clips/s | × real time |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['clips']} | {r['audio_s']} s | {r['wall_s']} s | {r['clips_per_s']} "
              f"| {r['x_realtime']}× |")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    if len(digests) != 1:
        sys.exit("error: the outputs differ between worker counts (see above)")


if __name__ == "__main__":
    main()
