"""Long-audio memory and speed benchmark: tokenize and detokenize 1, 10 and 60
minutes through the real CLI (not a test).

For each duration a speech-like signal is written block by block to a WAV file
(default 44.1 kHz stereo 16-bit, as a podcast or a field recording; a
60-minute file is 635 MB), then

    soundtok tokenize   long.wav -o long.tok.jsonl --threads T
    soundtok detokenize long.tok.jsonl long.dec.wav --threads T [--steps S]

run as child processes.  Reported per run: wall time of the whole command
(interpreter start and model load included), x real time (audio seconds /
wall seconds) and the child's peak RSS (``ru_maxrss`` from ``os.wait4``, the
whole process: torch alone is ~400 MB).  Memory that does not grow with
duration is the claim under test; the target is under 1.5 GB at 60 minutes.

    python bench/bench_long.py --minutes 1,10,60 --threads 2 --json bench/results-long.json
    python bench/bench_long.py --minutes 1 --rate 16000 --channels 1      # a quick check
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def synth(path: Path, seconds: float, sr: int, channels: int) -> None:
    """Speech-like test signal (gliding harmonics, syllable-rate envelope, a
    little noise), written 10 s at a time so that memory stays small."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    total = int(seconds * sr)
    phase0 = 0.0
    with sf.SoundFile(path, "w", sr, channels, "PCM_16") as f:
        for start in range(0, total, sr * 10):
            n = min(sr * 10, total - start)
            t = (start + np.arange(n)) / sr
            f0 = 120 + 40 * np.sin(2 * math.pi * 0.7 * t)
            phase = phase0 + 2 * math.pi * np.cumsum(f0) / sr
            phase0 = float(phase[-1])
            x = sum(np.sin(k * phase) / k for k in range(1, 8))
            env = 0.5 + 0.5 * np.sin(2 * math.pi * 4 * t) ** 2
            y = 0.2 * x * env
            cols = [y + 0.01 * rng.standard_normal(n) for _ in range(channels)]
            f.write(np.stack(cols, 1).astype("float32"))


def run(cmd: list[str]) -> dict:
    """Run ``cmd``; wall seconds and peak RSS (MB) of that child alone."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[2:4])} failed ({p.returncode}): "
                 f"{err.decode(errors='replace').strip()[-500:]}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", default="1,10,60", help="durations, comma-separated")
    ap.add_argument("--rate", type=int, default=44100, help="sample rate of the test file")
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (--threads of the CLI)")
    ap.add_argument("--codec", default=None, help="codec directory (default: the built-in one)")
    ap.add_argument("--steps", default=None, help="flow steps for detokenize (default: the codec's)")
    ap.add_argument("--tmp", default=None, help="folder for the test files (default: system temp)")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()
    py = [sys.executable, "-m", "soundtok"]
    extra = ["--threads", str(a.threads), "--device", "cpu"] + (["--codec", a.codec] if a.codec else [])
    rows = []
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        for minutes in [float(x) for x in a.minutes.split(",")]:
            seconds = minutes * 60
            wav = Path(tmp) / f"long_{minutes:g}min.wav"
            synth(wav, seconds, a.rate, a.channels)
            tok, dec = wav.with_suffix(".tok.jsonl"), wav.with_suffix(".dec.wav")
            t = run(py + ["tokenize", str(wav), "-o", str(tok)] + extra)
            d = run(py + ["detokenize", str(tok), str(dec)] + extra
                    + (["--steps", a.steps] if a.steps else []))
            row = {"minutes": minutes, "input": f"{a.rate} Hz, {a.channels} ch, PCM_16",
                   "input_mb": round(wav.stat().st_size / 1e6, 1), "threads": a.threads,
                   "tokenize": {**t, "x_realtime": round(seconds / t["wall_s"], 1)},
                   "detokenize": {**d, "x_realtime": round(seconds / d["wall_s"], 1)}}
            rows.append(row)
            print(f"{minutes:5g} min: tokenize {t['wall_s']:8.1f} s {row['tokenize']['x_realtime']:7.1f}x "
                  f"{t['peak_rss_mb']:7.1f} MB | detokenize {d['wall_s']:8.1f} s "
                  f"{row['detokenize']['x_realtime']:7.1f}x {d['peak_rss_mb']:7.1f} MB", flush=True)
            for p in (wav, tok, dec):
                p.unlink(missing_ok=True)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
              "load_average_at_end": [round(x, 2) for x in os.getloadavg()], "rows": rows}
    print("\n| minutes | tokenize wall | × real time | peak RSS | detokenize wall | × real time | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        t, d = r["tokenize"], r["detokenize"]
        print(f"| {r['minutes']:g} | {t['wall_s']} s | {t['x_realtime']}× | {t['peak_rss_mb']} MB "
              f"| {d['wall_s']} s | {d['x_realtime']}× | {d['peak_rss_mb']} MB |")
    if len(rows) > 1:
        for mode in ("tokenize", "detokenize"):
            lo, hi = rows[0][mode]["peak_rss_mb"], rows[-1][mode]["peak_rss_mb"]
            print(f"peak RSS {mode}: {lo} MB at {rows[0]['minutes']:g} min -> {hi} MB at "
                  f"{rows[-1]['minutes']:g} min ({hi - lo:+.1f} MB)")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
