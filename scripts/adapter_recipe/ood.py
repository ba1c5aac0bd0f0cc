"""Audio unlike anything the adapter trains on, for calibrating its "unsure" flag.

Synthetic signals only (nothing of the kind is in the corpus): near-silence, pure tones,
dual tones, sine sweeps, click trains, amplitude-modulated tones and square waves.  They
stand in for real out-of-domain audio, which no offline source here provides; pass real
recordings (birds, other languages, ...) to the recipe's ``--ood`` as well where you have them.
"""

from __future__ import annotations

from pathlib import Path


def synthetic_ood(folder: Path, seconds: float = 3.0, sr: int = 16000) -> Path:
    """Audio unlike any training clip, for the calibration: silence, pure and dual tones,
    sine sweeps, click trains, amplitude-modulated tones, square waves (28 clips of 3 s,
    deterministic)."""
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    clips = {f"silence-{i}": np.zeros_like(t) + 1e-4 * i * np.sin(2 * np.pi * 50 * t) for i in range(3)}
    for f in (110, 440, 1000, 2500, 5000, 7000):
        clips[f"tone-{f}"] = 0.3 * np.sin(2 * np.pi * f * t)
    for i, (lo, hi) in enumerate(((100, 4000), (4000, 100), (300, 7500), (50, 500))):
        phase = 2 * np.pi * (lo * t + (hi - lo) * t ** 2 / (2 * seconds))
        clips[f"sweep-{i}"] = 0.3 * np.sin(phase)
    for rate in (2, 7, 25):
        x = np.zeros_like(t)
        x[(np.arange(0, seconds, 1 / rate) * sr).astype(int)] = 0.8
        clips[f"clicks-{rate}hz"] = x
    for f1, f2 in ((697, 1209), (770, 1336), (852, 1477), (941, 1633)):
        clips[f"dual-{f1}-{f2}"] = 0.2 * (np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * f2 * t))
    for f, m in ((300, 3), (800, 11), (1500, 0.5), (200, 30)):
        clips[f"am-{f}-{m}"] = 0.3 * np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * m * t))
    for f in (60, 3000, 6000, 150):
        clips[f"square-{f}"] = 0.2 * np.sign(np.sin(2 * np.pi * f * t))
    for name, x in clips.items():
        p = folder / f"{name}.wav"
        if not p.is_file():
            sf.write(p, x.astype(np.float32), sr, subtype="PCM_16")
    return folder
