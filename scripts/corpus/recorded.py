"""Recorded audio: FSDD and klettres speech, ESC-10 and sonic-pi sounds.

Each ``plan_*`` function returns ``(jobs, problem)``: the jobs (one per clip,
kind ``file``) or, when the data is absent, ``problem`` naming what to
install or where to put it.  :func:`make_file_clip` is the worker side: read,
resample to 16 kHz mono, optionally cut, write atomically.

Splits:

* FSDD: the official one (recording index 0-4 test, 5-49 train).
* klettres: one speaker per language folder; whole languages held out —
  val ``de``, ``es``; test ``en_GB``, ``it``, ``ru``; the rest train.
* ESC-10: folds 1-3 train, fold 4 val (as the shared data's README asks).
* sonic-pi: per file, by a seeded hash of the name within each category
  prefix (about 1 in 7 val, 1 in 7 test, categories with one file stay train).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from . import captions
from .jobs import Job
from .manifest import to_16k

KLETTRES_DIR = Path("/usr/share/klettres")
SONICPI_DIR = Path("/usr/share/sonic-pi/samples")
SONICPI_COPYRIGHT = Path("/usr/share/doc/sonic-pi-samples/copyright")

KLETTRES_VAL = ("de", "es")
KLETTRES_TEST = ("en_GB", "it", "ru")
LANGUAGE_NAMES = {"ar": "Arabic", "cs": "Czech", "da": "Danish", "de": "German", "en": "English",
                  "en_GB": "British English", "es": "Spanish", "fr": "French", "he": "Hebrew",
                  "hu": "Hungarian", "it": "Italian", "lt": "Lithuanian", "ml": "Malayalam",
                  "nb": "Norwegian Bokmal", "nds": "Low German", "nl": "Dutch", "pt_BR": "Brazilian Portuguese",
                  "ru": "Russian", "tn": "Tswana", "uk": "Ukrainian"}
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_ACCENTS = {"USA/neutral": "American", "BEL/French": "Belgian French", "DEU/German": "German",
                "GRC/Greek": "Greek"}

# ESC-10 classes: (label, phrases)
ESC10 = {"Dog bark": ("dog barking", ("a dog barks", "a dog barking loudly")),
         "Rain": ("rain", ("rain falls steadily", "rain pattering outside")),
         "Sea waves": ("sea waves", ("waves crash on the shore", "the sound of the sea")),
         "Baby cry": ("a baby crying", ("a baby cries", "an infant crying")),
         "Clock tick": ("a clock ticking", ("a clock ticks", "the ticking of a clock")),
         "Person sneeze": ("sneezing", ("a person sneezes", "someone sneezing")),
         "Helicopter": ("a helicopter", ("a helicopter flies overhead", "helicopter rotor noise")),
         "Chainsaw": ("a chainsaw", ("a chainsaw cuts wood", "the buzz of a chainsaw")),
         "Rooster": ("a rooster crowing", ("a rooster crows", "a cock crowing in the morning")),
         "Fire crackling": ("fire crackling", ("a fire crackles", "crackling flames"))}

# sonic-pi name prefix -> (category, phrase template)
SONICPI = {"ambi": ("ambient sound", "an ambient {x} sound"), "bass": ("bass sound", "a synth bass {x}"),
           "bd": ("bass drum", "a {x} bass drum hit"), "drum": ("drum", "a drum: {x}"),
           "elec": ("electronic sound", "an electronic {x} sound"), "glitch": ("glitch sound", "a glitchy {x}"),
           "guit": ("guitar", "a guitar playing {x}"), "loop": ("drum loop", "a {x} drum loop"),
           "mehackit": ("electronic effect", "an electronic {x} effect"), "misc": ("sound effect", "a {x}"),
           "perc": ("percussion", "a percussive {x} sound"), "sn": ("snare drum", "a {x} snare drum hit"),
           "tabla": ("tabla", "a tabla stroke: {x}"), "vinyl": ("vinyl sound", "a vinyl record {x}"),
           "arovane": ("electronic beat", "an electronic beat ({x})"), "hat": ("hi-hat", "a {x} hi-hat"),
           "ride": ("ride cymbal", "a {x} ride cymbal")}
MAX_SECONDS = 12.0


def _hash01(*parts) -> float:
    h = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64


def _file_job(stage: str, src: Path, rel: str, row: dict, max_seconds: float = MAX_SECONDS) -> Job:
    return Job(stage, "file", {"src": str(src), "max_seconds": max_seconds},
               [{"path": rel, "row": {"path": rel, **row}}])


# --------------------------------------------------------------------------- FSDD

def plan_fsdd(data: Path, rng: random.Random, limit: int | None = None):
    root = data / "fsdd"
    if not (root / "labels.csv").is_file():
        return [], f"FSDD not found at {root} (pass --data DIR holding fsdd/, see ../shared/data/README.md)"
    speakers = json.loads((root / "speakers.json").read_text())
    jobs = []
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if limit:
        rows = rows[:: max(1, len(rows) // limit)][:limit]
    for r in rows:
        p = root / r["path"]
        digit, spk = int(r["digit"]), r["speaker"]
        info = speakers.get(spk, {})
        accent = FSDD_ACCENTS.get(info.get("accent", ""), None)
        word = DIGITS[digit]
        caps = captions.speech(rng, kind="digit", text=word, shown=str(digit), gender=info.get("gender", "male"),
                               accent=accent, synthetic=False)
        rel = f"clips/fsdd/{p.stem}.flac"
        jobs.append(_file_job("fsdd", p, rel, {
            "id": f"fsdd/{p.stem}", "source": "fsdd", "kind": "speech",
            "licence": "CC-BY-SA-4.0 (Free Spoken Digit Dataset)", "split": r["official_split"],
            "text": word, "captions": caps, "label": str(digit), "speaker": f"fsdd-{spk}",
            "gender": info.get("gender"), "accent": accent, "language": "en", "content": "digit"}))
    return jobs, None


# --------------------------------------------------------------------------- klettres

def _klettres_label(stem: str) -> str:
    return re.sub(r"-\d+$", "", stem)


def plan_klettres(rng: random.Random, root: Path = KLETTRES_DIR, limit: int | None = None):
    if not root.is_dir():
        return [], "klettres not found (apt-get install klettres-data)"
    jobs = []
    for lang in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for sub in ("alpha", "syllab"):
            d = root / lang / sub
            if not d.is_dir():
                continue
            for p in sorted(d.glob("*.ogg")):
                split = "val" if lang in KLETTRES_VAL else "test" if lang in KLETTRES_TEST else "train"
                label = _klettres_label(p.stem)
                lname = LANGUAGE_NAMES.get(lang, lang)
                if sub == "alpha":
                    caps = [f"someone says the {lname} letter {label}", f"a spoken letter: {label}",
                            f"a native {lname} speaker names the letter {label}", f"{lname} alphabet: {label}"]
                else:
                    caps = captions.speech(rng, kind="word", text=label, shown=label, gender="neutral",
                                           accent=None, synthetic=False, language=lname)
                rel = f"clips/klettres/{lang}/{sub}/{p.stem}.flac"
                jobs.append(_file_job("klettres", p, rel, {
                    "id": f"klettres/{lang}/{sub}/{p.stem}", "source": "klettres", "kind": "speech",
                    "licence": "GPL-2.0-or-later (KLettres, KDE)", "split": split, "text": label,
                    "captions": caps, "label": label, "speaker": f"klettres-{lang}", "language": lang,
                    "content": "letter" if sub == "alpha" else "syllable"}))
    if limit:
        jobs = jobs[:: max(1, len(jobs) // limit)][:limit]
    return jobs, None


# --------------------------------------------------------------------------- ESC-10

def plan_esc10(data: Path, rng: random.Random, limit: int | None = None):
    root = data / "esc10"
    if not (root / "labels.csv").is_file():
        return [], f"ESC-10 not found at {root} (pass --data DIR holding esc10/)"
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if limit:
        rows = rows[:: max(1, len(rows) // limit)][:limit]
    jobs = []
    for r in rows:
        fold = int(r["fold"])
        if fold not in (1, 2, 3, 4):
            continue
        p = root / r["path"]
        label, phrases = ESC10.get(r["esc10_class"], (r["esc10_class"].lower(), (r["esc10_class"].lower(),)))
        rel = f"clips/esc10/{p.stem}.flac"
        jobs.append(_file_job("esc10", p, rel, {
            "id": f"esc10/{p.stem}", "source": "esc10", "kind": "sound",
            "licence": "CC-BY-3.0 (ESC-50, K. J. Piczak; per-clip attribution in esc10/ATTRIBUTION.txt)",
            "split": "train" if fold in (1, 2, 3) else "val", "text": phrases[0],
            "captions": captions.sound(rng, label=label, phrases=phrases), "label": r["esc10_class"].lower(),
            "category": r["esc50_category"], "fold": fold, "freesound_id": r.get("freesound_id")}))
    return jobs, None


# --------------------------------------------------------------------------- sonic-pi

def sonicpi_licences(path: Path = SONICPI_COPYRIGHT) -> dict[str, tuple[str, str]]:
    """``{file name: (licence, attribution)}`` from the Debian copyright file;
    files it does not list fall under its ``Files: *`` stanza (MIT)."""
    out: dict[str, tuple[str, str]] = {}
    if not path.is_file():
        return out
    for stanza in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        m = re.search(r"^Files:\s*(etc/samples/\S+\.flac)", stanza, re.M)
        lic = re.search(r"^License:\s*(\S+)", stanza, re.M)
        if m and lic:
            cp = re.search(r"^Copyright:\s*(.+)$", stanza, re.M)
            srcm = re.search(r"(https?://\S+)", stanza)
            attrib = ", ".join(x for x in ((cp.group(1).strip() if cp else ""), (srcm.group(1) if srcm else "")) if x)
            out[Path(m.group(1)).name] = (lic.group(1), attrib)
    return out


def plan_sonicpi(rng: random.Random, root: Path = SONICPI_DIR, limit: int | None = None):
    if not root.is_dir():
        return [], "sonic-pi samples not found (apt-get install sonic-pi-samples)"
    lic = sonicpi_licences()
    files = sorted(root.glob("*.flac"))
    by_cat: dict[str, list[Path]] = {}
    for p in files:
        by_cat.setdefault(p.stem.split("_")[0], []).append(p)
    jobs = []
    for prefix, ps in sorted(by_cat.items()):
        cat, template = SONICPI.get(prefix, ("sound", "a {x} sound"))
        for p in ps:
            x = " ".join(re.sub(r"\d+$", "", w) for w in p.stem.split("_")[1:]).strip() or prefix
            h = _hash01("sonicpi", p.stem)
            split = "train" if len(ps) < 3 else "val" if h < 1 / 7 else "test" if h < 2 / 7 else "train"
            licence, attrib = lic.get(p.name, ("MIT", "2016 Samuel Aaron (Sonic Pi)"))
            licence = {"CC0": "CC0-1.0"}.get(licence, licence)
            phrase = template.format(x=x)
            rel = f"clips/sonicpi/{p.stem}.flac"
            jobs.append(_file_job("sonicpi", p, rel, {
                "id": f"sonicpi/{p.stem}", "source": "sonicpi", "kind": "sound",
                "licence": f"{licence} (sonic-pi-samples)", "attribution": attrib, "split": split, "text": phrase,
                "captions": captions.sound(rng, label=cat, phrases=(phrase, f"{cat}: {x}")), "label": cat,
                "category": prefix, "name": p.stem}))
    if limit:
        jobs = jobs[:: max(1, len(jobs) // limit)][:limit]
    return jobs, None


# --------------------------------------------------------------------------- worker side

def load_any(path: str) -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate of an audio file (soundfile; ffmpeg for what it cannot read)."""
    try:
        wav, sr = sf.read(path, dtype="float32", always_2d=True)
        return wav.mean(axis=1), sr
    except Exception:
        import subprocess

        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "f32le", "-ac", "1", "-ar", "16000", "-"],
                             check=True, stdout=subprocess.PIPE).stdout
        return np.frombuffer(raw, dtype=np.float32).copy(), 16000


def make_file_clip(spec: dict) -> tuple[np.ndarray, dict]:
    wav, sr = load_any(spec["src"])
    wav = to_16k(wav, sr)
    extra = {}
    limit = int(spec.get("max_seconds", MAX_SECONDS) * 16000)
    if len(wav) > limit:
        wav = wav[:limit]
        extra["cut_seconds"] = spec.get("max_seconds", MAX_SECONDS)
    return wav, extra
