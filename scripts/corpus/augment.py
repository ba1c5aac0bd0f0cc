"""Augmented copies of some training clips: background noise, reverb, EQ, level.

The plan picks a seeded fraction of the *train* clips (speech and sounds; not
music) and draws for each a chain recorded in the manifest's ``augment``
field, e.g. ``{"of": "tts/piper-joe/00012", "noise": "esc10/1-17367-A",
"noise_label": "rain", "snr_db": 9.4, "reverb": 55, "eq": "telephone",
"gain_db": -7.5}``.  Noise comes only from train-split ESC-10 and sonic-pi
clips, so nothing of the held-out splits leaks in.  Augmented clips are extra
rows (id ``aug/<original id>``); the clean original stays.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .jobs import Job
from .manifest import SAMPLE_RATE

EQS = {"telephone": ["highpass", "300", "lowpass", "3400"], "muffled": ["lowpass", "2500"],
       "thin": ["highpass", "600"], "bright": ["treble", "+6"], "boomy": ["bass", "+8"]}


def missing() -> str | None:
    return None if shutil.which("sox") else "apt-get install sox"


def plan_augment(rng: random.Random, planned: list[Job], fraction: float) -> list[Job]:
    """Augmentation jobs for ``fraction`` of the planned train speech/sound clips."""
    rows = [o["row"] for j in planned for o in j.outputs]
    noise = [r for r in rows if r["split"] == "train" and r["source"] in ("esc10", "sonicpi")
             and r.get("category") not in ("bd", "drum", "elec", "sn", "hat", "perc", "tabla", "bass")]
    cands = [r for r in rows if r["split"] == "train" and r["kind"] in ("speech", "speech-tts", "sound")]
    k = int(round(fraction * len(cands)))
    jobs = []
    for r in sorted(rng.sample(cands, k), key=lambda r: r["id"]):
        chain: dict = {"of": r["id"]}
        if noise and rng.random() < 0.6:
            n = rng.choice(noise)
            if n["id"] != r["id"]:
                chain.update(noise=n["id"], noise_path=n["path"], noise_label=n["label"],
                             snr_db=round(rng.uniform(0.0, 20.0), 1))
        if rng.random() < 0.4:
            chain["reverb"] = rng.randint(20, 90)
        if rng.random() < 0.35:
            chain["eq"] = rng.choice(sorted(EQS))
        chain["gain_db"] = round(rng.uniform(-18.0, 0.0), 1)
        chain["seed"] = rng.randrange(2 ** 31)
        rel = "clips/aug/" + r["path"].split("clips/", 1)[1]
        row = {k2: v for k2, v in r.items() if k2 not in ("path",)}
        row.update(path=rel, id=f"aug/{r['id']}", augment={k2: v for k2, v in chain.items()
                                                             if k2 not in ("seed", "noise_path")})
        row["captions"] = augmented_captions(r.get("captions") or [], chain)
        jobs.append(Job("augment", "augment", {"src": r["path"], **chain}, [{"path": rel, "row": row}]))
    return jobs


def augmented_captions(caps: list[str], chain: dict) -> list[str]:
    out = list(caps)
    where = []
    if "noise_label" in chain:
        where.append(f"with {chain['noise_label']} in the background")
    if "reverb" in chain:
        where.append("in a reverberant room")
    if chain.get("eq") == "telephone":
        where.append("over a telephone line")
    elif chain.get("eq") == "muffled":
        where.append("muffled")
    if where and out:
        out[-1] = f"{out[0]}, {' and '.join(where)}"
    return out


def _sox(wav: np.ndarray, effects: list[str]) -> np.ndarray:
    with tempfile.TemporaryDirectory() as d:
        a, b = os.path.join(d, "a.wav"), os.path.join(d, "b.wav")
        sf.write(a, wav, SAMPLE_RATE, subtype="FLOAT")
        subprocess.run(["sox", a, b, *effects], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        out, _ = sf.read(b, dtype="float32", always_2d=True)
    return out.mean(axis=1)


def make_augmented(spec: dict, root: Path) -> tuple[np.ndarray, dict]:
    """Apply the recorded chain to the clean clip (both under ``root``)."""
    wav, sr = sf.read(str(root / spec["src"]), dtype="float32")
    assert sr == SAMPLE_RATE
    n = len(wav)
    applied: dict = {}
    if "reverb" in spec:
        wav = _sox(wav, ["reverb", str(spec["reverb"])])[:n]  # keep the original length
        applied["reverb"] = spec["reverb"]
    if "eq" in spec:
        wav = _sox(wav, EQS[spec["eq"]])[:n]
        applied["eq"] = spec["eq"]
    if "noise_path" in spec and (root / spec["noise_path"]).is_file():
        noise, _ = sf.read(str(root / spec["noise_path"]), dtype="float32")
        rng = np.random.default_rng(spec["seed"])
        if len(noise) < n:
            noise = np.tile(noise, int(np.ceil(n / max(1, len(noise)))))
        off = int(rng.integers(0, len(noise) - n + 1))
        noise = noise[off:off + n]
        ps, pn = float(np.mean(wav ** 2)) + 1e-10, float(np.mean(noise ** 2)) + 1e-10
        wav = wav + noise * np.sqrt(ps / (pn * 10 ** (spec["snr_db"] / 10)))
        applied.update(noise=spec["noise"], noise_label=spec["noise_label"], snr_db=spec["snr_db"])
    peak = float(np.abs(wav).max()) or 1.0
    gain = 10 ** (spec["gain_db"] / 20)
    wav = wav * min(gain, 0.98 / peak)
    applied["gain_db"] = round(20 * np.log10(max(1e-6, min(gain, 0.98 / peak))), 1)
    return wav.astype(np.float32), applied
