"""Independent cross-check of `soundtok evaluate recon --baselines codec2-450`.

Runs c2enc/c2dec 450 directly on each reference at 8 kHz, aligns the output
by its own delay search (the lag in 0..100 ms, 0.125 ms steps, maximising the
correlation of 10 ms RMS envelopes at 8 kHz) and scores it with pystoi at 8 kHz
-- no soundtok code is used. Compare the mean with soundtok's codec2-450 STOI.

    python bench/check_codec2_stoi.py runs/eval/fsdd_strings/*.wav
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from pystoi import stoi


def rms_env(x: np.ndarray, frame: int = 80) -> np.ndarray:
    n = len(x) // frame
    return np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(axis=1) + 1e-10)


def best_lag(ref: np.ndarray, deg: np.ndarray, max_lag: int = 800) -> int:
    scores = []
    for lag in range(0, max_lag + 1):
        d = deg[lag:]
        n = min(len(ref), len(d))
        a, b = np.log(rms_env(ref[:n])), np.log(rms_env(d[:n]))
        scores.append(np.corrcoef(a, b)[0, 1])
    return int(np.argmax(scores))


def main(paths: list[str]) -> None:
    vals = []
    for p in paths:
        x, sr = sf.read(p, dtype="float32")
        if x.ndim > 1:
            x = x.mean(axis=1)
        x8 = soxr.resample(x, sr, 8000) if sr != 8000 else x
        with tempfile.TemporaryDirectory() as d:
            (np.clip(x8, -1, 1) * 32767).astype("<i2").tofile(f"{d}/in.raw")
            subprocess.run(["c2enc", "450", f"{d}/in.raw", f"{d}/x.c2"], check=True, capture_output=True)
            subprocess.run(["c2dec", "450", f"{d}/x.c2", f"{d}/out.raw"], check=True, capture_output=True)
            y = np.fromfile(f"{d}/out.raw", "<i2").astype(np.float32) / 32768
        lag = best_lag(x8, y)
        y = y[lag:]
        n = min(len(x8), len(y))
        s = stoi(x8[:n], y[:n], 8000)
        vals.append(s)
        print(f"{Path(p).name}: delay {lag / 8:.1f} ms  STOI {s:.4f}")
    print(f"mean STOI over {len(vals)} clips: {np.mean(vals):.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
