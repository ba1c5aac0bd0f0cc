"""Music: scores from the ``music21`` corpus rendered through fluidsynth with a GM soundfont.

A job is one corpus file (for ABC collections, chosen tunes in it).  The worker
parses the score with music21, writes it as MIDI, gives each part its own
channel and General MIDI program (an ensemble drawn in the plan), scales the
tempo, renders it with ``fluidsynth`` (FluidR3 GM, ``fluid-soundfont-gm``) at
16 kHz and cuts 2-3 excerpts of 5-10 s with sound in them from different
parts of the rendering.
Captions name the instrument(s), the style and, where known, the composer.

Only repertories whose encodings carry no extra restriction are used: the
Essen folk songs (non-commercial only) and the Palestrina and CCARH Humdrum
(``.krn``) files (separate licence agreements) are left out; see
``music21/corpus/license.txt``.  Whole files (pieces) are held out: about
10 % val and 10 % test, by a seeded hash of the file name.
"""

from __future__ import annotations

import copy
import hashlib
import os
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from . import captions
from .jobs import Job
from .manifest import SAMPLE_RATE
from .recorded import load_any

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
LICENCE = ("public-domain composition; encoding from the music21 corpus (music21/corpus/license.txt: "
           "distributed with the encoders' permission, commercial use may be restricted); "
           "rendered with FluidR3 GM (MIT)")

# group -> (style, composer, default bpm, texture, files wanted, excerpts per tune, tunes per file);
# a tune is rendered once (one ensemble and tempo) and its excerpts come from different parts of it
GROUPS = {
    "bach": ("a baroque chorale", "Johann Sebastian Bach", 84, "poly", 80, 3, 1),
    "ryansMammoth": ("a fiddle tune", None, 112, "solo", 55, 2, 1),
    "oneills1850": ("an Irish traditional tune", None, 112, "solo", 15, 2, 2),
    "airdsAirs": ("a Scottish air", None, 90, "solo", 3, 2, 2),
    "trecento": ("medieval Italian music of the Trecento", None, 90, "poly", 15, 3, 1),
    "monteverdi": ("a Renaissance madrigal", "Claudio Monteverdi", 80, "poly", 12, 3, 1),
    "josquin": ("a Renaissance chanson", "Josquin des Prez", 80, "poly", 5, 2, 1),
    "mozart": ("a Classical-era piece", "Wolfgang Amadeus Mozart", 108, "poly", 3, 2, 1),
    "haydn": ("a Classical-era string quartet movement", "Joseph Haydn", 108, "poly", 2, 2, 1),
    "beethoven": ("a Classical-era string quartet movement", "Ludwig van Beethoven", 100, "poly", 2, 2, 1),
    "joplin": ("a ragtime piece", "Scott Joplin", 96, "keys", 1, 3, 1),
    "schumann_robert": ("a Romantic-era piece", "Robert Schumann", 92, "poly", 2, 2, 1),
    "schumann_clara": ("a Romantic-era piece", "Clara Schumann", 92, "poly", 2, 2, 1),
    "handel": ("a baroque aria", "George Frideric Handel", 72, "poly", 1, 2, 1),
    "cpebach": ("a baroque piece", "Carl Philipp Emanuel Bach", 96, "poly", 1, 2, 1),
    "ciconia": ("medieval music of the Trecento", "Johannes Ciconia", 90, "poly", 1, 2, 1),
    "verdi": ("a Romantic-era opera aria", "Giuseppe Verdi", 92, "poly", 1, 2, 1),
    "weber": ("a Romantic-era piece", "Carl Maria von Weber", 96, "poly", 1, 2, 1),
}
# large scores take long to parse and convert: files above this size (KB) are not used
MAX_KB = 130
SUFFIXES = (".mxl", ".xml", ".musicxml", ".abc")

# General MIDI programs (0-based) with the names captions use
GM = {"piano": 0, "electric piano": 4, "harpsichord": 6, "celesta": 8, "music box": 10, "vibraphone": 11,
      "marimba": 12, "church organ": 19, "reed organ": 20, "accordion": 21, "harmonica": 22,
      "nylon-string guitar": 24, "steel-string guitar": 25, "electric guitar": 27, "acoustic bass": 32,
      "violin": 40, "viola": 41, "cello": 42, "contrabass": 43, "harp": 46, "string ensemble": 48,
      "choir": 52, "trumpet": 56, "trombone": 57, "tuba": 58, "french horn": 60, "brass section": 61,
      "soprano saxophone": 64, "alto saxophone": 65, "tenor saxophone": 66, "baritone saxophone": 67,
      "oboe": 68, "english horn": 69, "bassoon": 70, "clarinet": 71, "flute": 73, "recorder": 74,
      "pan flute": 75, "whistle": 78, "ocarina": 79, "square-wave synth lead": 80, "warm synth pad": 89,
      "sitar": 104, "banjo": 105, "bagpipe": 109, "fiddle": 110, "steel drums": 114}

# (ensemble name, instruments from the top part down; the last repeats for further parts)
ENSEMBLES = {
    "solo": [(f"solo {n}", [n]) for n in ("fiddle", "violin", "flute", "accordion", "harmonica", "piano",
                                            "nylon-string guitar", "banjo", "whistle", "recorder", "oboe",
                                            "clarinet", "trumpet", "bagpipe", "marimba", "music box",
                                            "harpsichord", "vibraphone", "pan flute", "electric piano",
                                            "square-wave synth lead", "steel drums", "sitar", "ocarina")],
    "keys": [(f"solo {n}", [n]) for n in ("piano", "electric piano", "harpsichord", "church organ",
                                            "marimba", "vibraphone", "celesta", "nylon-string guitar", "harp")],
    "poly": [("a piano", ["piano"]), ("a church organ", ["church organ"]), ("a harpsichord", ["harpsichord"]),
             ("a string ensemble", ["string ensemble"]), ("a choir", ["choir"]),
             ("a string quartet", ["violin", "violin", "viola", "cello"]),
             ("a brass quartet", ["trumpet", "trumpet", "french horn", "trombone", "tuba"]),
             ("a woodwind quartet", ["flute", "oboe", "clarinet", "bassoon"]),
             ("a saxophone quartet", ["soprano saxophone", "alto saxophone", "tenor saxophone",
                                      "baritone saxophone"]),
             ("a recorder consort", ["recorder"]), ("an electric piano", ["electric piano"]),
             ("a marimba", ["marimba"]), ("a vibraphone", ["vibraphone"]), ("a guitar", ["nylon-string guitar"]),
             ("a reed organ", ["reed organ"]), ("an accordion", ["accordion"]), ("a harp", ["harp"]),
             ("a synthesizer pad", ["warm synth pad"]), ("flute and strings", ["flute", "violin", "viola", "cello"]),
             ("a brass section", ["brass section"])],
}
ENSEMBLES["keys"] += [e for e in ENSEMBLES["poly"] if e[0] in ("a string quartet", "a string ensemble")]


def missing() -> str | None:
    try:
        import music21  # noqa: F401
    except ImportError:
        return "pip install music21"
    if not shutil.which("fluidsynth"):
        return "apt-get install fluidsynth"
    if not SOUNDFONT.is_file():
        return "apt-get install fluid-soundfont-gm"
    return None


def _hash01(*parts) -> float:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big") / 2 ** 64


def _abc_tunes(path: Path) -> int:
    return len(re.findall(r"^X:", path.read_text(encoding="latin-1"), re.M))


def corpus_files() -> dict[str, list[Path]]:
    """The usable music21 corpus files per group, sorted."""
    from music21 import corpus

    out: dict[str, list[Path]] = {}
    for p in corpus.getPaths():
        p = Path(p)
        rel = p.as_posix().split("/corpus/", 1)[-1]
        group = rel.split("/", 1)[0]
        if group in GROUPS and p.suffix.lower() in SUFFIXES and p.stat().st_size <= MAX_KB * 1024:
            out.setdefault(group, []).append(p)
    return {g: sorted(v) for g, v in out.items()}


def plan_music(rng: random.Random, scale: float = 1.0, groups: tuple[str, ...] | None = None,
               max_files: int | None = None, excerpts: int | None = None):
    """Jobs for the music stage, or ``([], reason)`` when music21/fluidsynth are absent."""
    why = missing()
    if why:
        return [], why
    files = corpus_files()
    jobs = []
    slugs: set[str] = set()
    stems: set[str] = set()
    for group, (style, composer, bpm, texture, want, n_exc, tunes) in GROUPS.items():
        if groups and group not in groups:
            continue
        avail = files.get(group, [])
        n = min(len(avail), max(1, round(want * scale)))
        if max_files is not None:
            n = min(n, max_files)
        chosen = sorted(rng.sample(avail, n)) if n < len(avail) else avail
        for path in chosen:
            rel = path.as_posix().split("/corpus/", 1)[-1]
            h = _hash01("music", rel)
            split = "val" if h < 0.1 else "test" if h < 0.2 else "train"
            if path.suffix == ".abc":
                count = _abc_tunes(path)
                numbers = sorted(rng.sample(range(count), min(tunes, count))) if count > 1 else [None]
            else:
                numbers = [None]
            outputs, renders = [], []
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", rel.rsplit(".", 1)[0])
            while slug in slugs:  # two file names that differ only in punctuation
                slug += "-2"
            slugs.add(slug)
            for num in numbers:
                ens_name, insts = rng.choice(ENSEMBLES[texture])
                factor = rng.uniform(0.8, 1.25)
                k = excerpts or n_exc
                for e in range(k):
                    length = rng.uniform(5.0, 10.0)
                    tag = f"{slug}" + (f"-n{num}" if num is not None else "") + f"-e{e}"
                    cid = f"music/{tag}"
                    out_rel = f"clips/music/{tag}.flac"
                    renders.append({"number": num, "ensemble": ens_name, "instruments": insts,
                                    "tempo_factor": round(factor, 3), "length": round(length, 2),
                                    "seed": rng.randrange(2 ** 31), "path": out_rel, "part": [e, k]})
                    outputs.append({"path": out_rel, "row": {
                        "path": out_rel, "id": cid, "source": "music21", "kind": "music", "licence": LICENCE,
                        "split": split, "piece": rel + (f"#{num}" if num is not None else ""), "group": group,
                        "ensemble": ens_name, "instruments": sorted(set(insts)), "label": style}})
            stem = rel.rsplit(".", 1)[0]
            if stem in stems:  # the same piece in two formats (.mxl and .xml): keep the first
                continue       # (its draws are made anyway, so the other pieces' plans do not move)
            stems.add(stem)
            jobs.append(Job("music", "music", {"file": str(path), "rel": rel, "group": group, "renders": renders,
                                               "style": style, "composer": composer, "bpm": bpm}, outputs))
    return jobs, None


# --------------------------------------------------------------------------- worker side

_TITLE_STYLE = re.compile(r"\b(hornpipe|reel|jig|waltz|march|polka|schottische|clog|strathspey|air|"
                          r"quadrille|set dance|slide|mazurka|lament)s?\b", re.I)


def _parse(path: str, number):
    from music21 import converter, stream

    s = converter.parse(path)
    if isinstance(s, stream.Opus):
        scores = list(s.scores)
        # a copy: music21 caches the parsed collection, and writing MIDI changes a score
        s = copy.deepcopy(scores[number if number is not None and number < len(scores) else 0])
    return s


def _strip_repeats(score) -> None:
    """Drop repeat barlines, brackets and expressions (for scores whose repeats
    music21 cannot expand); the music is then played once through."""
    from music21 import bar, repeat, spanner

    for m in score.recurse().getElementsByClass("Measure"):
        if isinstance(m.leftBarline, bar.Repeat):
            m.leftBarline = None
        if isinstance(m.rightBarline, bar.Repeat):
            m.rightBarline = None
    for el in list(score.recurse().getElementsByClass((repeat.RepeatExpression, spanner.RepeatBracket))):
        if el.activeSite is not None:
            el.activeSite.remove(el)


def _title(score, rel: str, group: str) -> str | None:
    md = score.metadata
    t = (md.title or md.movementName) if md is not None else None
    if group == "bach":
        m = re.search(r"bwv([\d.]+)", rel)
        return f"chorale BWV {m.group(1)}" if m else t
    if t and re.fullmatch(r"[\w\s.,'()&-]+", t) and not t.lower().endswith((".xml", ".mxl")):
        return " ".join(t.split())
    return None


def _midi_with(mf_bytes_path: str, insts: list[str], factor: float, out: str) -> list[str]:
    """Copy a MIDI file giving note track k its own channel and GM program
    ``insts[k]`` (last repeated), and scaling every tempo by ``factor``.
    Returns the instruments used, one per note track."""
    from music21 import midi

    mf = midi.MidiFile()
    mf.open(mf_bytes_path)
    mf.read()
    mf.close()
    k, used = 0, []
    for track in mf.tracks:
        if not any(isinstance(e, midi.MidiEvent) and e.isNoteOn() for e in track.events):
            for e in track.events:
                if isinstance(e, midi.MidiEvent) and e.type == midi.MetaEvents.SET_TEMPO:
                    us = int.from_bytes(e.data, "big")
                    e.data = max(1, min(2 ** 24 - 1, int(us / factor))).to_bytes(3, "big")
            continue
        ch = (k if k < 9 else k + 1) % 16 + 1  # 1-based channels, skipping the drum channel 10
        used.append(insts[min(k, len(insts) - 1)])
        prog = GM[used[-1]]
        seen_pc = False
        for e in track.events:
            if isinstance(e, midi.MidiEvent):
                if e.type == midi.MetaEvents.SET_TEMPO:
                    us = int.from_bytes(e.data, "big")
                    e.data = max(1, min(2 ** 24 - 1, int(us / factor))).to_bytes(3, "big")
                if isinstance(e.type, (midi.ChannelVoiceMessages, midi.ChannelModeMessages)):
                    e.channel = ch
                if e.type == midi.ChannelVoiceMessages.PROGRAM_CHANGE:
                    e.data = prog
                    seen_pc = True
        if not seen_pc:
            dt = midi.DeltaTime(track, time=0)
            pc = midi.MidiEvent(track, type=midi.ChannelVoiceMessages.PROGRAM_CHANGE, channel=ch)
            pc.data = prog
            track.events[0:0] = [dt, pc]
        # all notes off + all sound off before the end: a note left on (two parts' unisons
        # overlapping) would keep a sustained instrument sounding and fluidsynth rendering forever
        end = next((i for i, e in enumerate(track.events)
                    if isinstance(e, midi.MidiEvent) and e.type == midi.MetaEvents.END_OF_TRACK), len(track.events))
        tail = []
        for cc in (123, 120):
            ev = midi.MidiEvent(track, type=midi.ChannelVoiceMessages.CONTROLLER_CHANGE, channel=ch)
            ev.parameter1, ev.parameter2 = cc, 0
            tail += [ev, midi.DeltaTime(track, time=0)]
        track.events[end:end] = tail
        k += 1
    mf.open(out, "wb")
    mf.write()
    mf.close()
    return used


def _excerpt(wav: np.ndarray, length: float, rng: random.Random, part: tuple[int, int] = (0, 1)
             ) -> tuple[np.ndarray, float]:
    """A ``length``-second excerpt that starts where there is sound, in part
    ``i`` of ``k`` equal stretches of the possible starts (so a tune's excerpts
    come from different places); returns (audio, start s)."""
    n = int(length * SAMPLE_RATE)
    frame = SAMPLE_RATE // 10
    rms = np.sqrt(np.convolve(wav ** 2, np.ones(frame) / frame, mode="valid")[::frame] + 1e-12)
    loud = np.flatnonzero(rms > 0.1 * rms.max()) if rms.size else np.array([], int)
    first = int(loud[0]) * frame if loud.size else 0
    last_start = max(first, len(wav) - n)
    i, k = part
    lo = first + (last_start - first) * i // k
    hi = first + (last_start - first) * (i + 1) // k
    start = rng.randint(lo, hi) if hi > lo else lo
    seg = wav[start:start + n]
    fade = min(len(seg) // 4, SAMPLE_RATE // 20)
    if fade:
        seg = seg.copy()
        seg[:fade] *= np.linspace(0, 1, fade, dtype=np.float32)
        seg[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    return seg, start / SAMPLE_RATE


def make_music(spec: dict, write, skip: set[str] = frozenset()) -> list[dict]:
    """Render the job's excerpts; ``write(rel_path, wav) -> duration``.  Returns
    the extra row fields per excerpt (in ``spec["renders"]`` order)."""
    from music21 import tempo

    extras: list[dict] = []
    cache: dict = {}
    rendered: dict = {}
    with tempfile.TemporaryDirectory() as d:
        for r in spec["renders"]:
            if r["path"] in skip:
                extras.append({})
                continue
            num = r["number"]
            if num not in cache:
                score = _parse(spec["file"], num)
                marks = score.metronomeMarkBoundaries()
                qbpm = marks[0][2].getQuarterBPM() if marks and marks[0][2].number else None
                base = float(qbpm or spec["bpm"])
                src = os.path.join(d, f"base-{num}.mid")
                if not marks or marks[0][2].number is None:
                    score.insert(0, tempo.MetronomeMark(number=base))
                try:
                    score.write("midi", fp=src)
                except Exception:  # e.g. "badly formed repeats": play it without them
                    _strip_repeats(score)
                    score.write("midi", fp=src)
                cache[num] = (src, base, _title(score, spec["rel"], spec["group"]))
            src, base, title = cache[num]
            key = (num, r["ensemble"], tuple(r["instruments"]), r["tempo_factor"])
            if key not in rendered:  # excerpts of one tune share its rendering
                mid = os.path.join(d, "x.mid")
                wavp = os.path.join(d, "x.wav")
                used = _midi_with(src, r["instruments"], r["tempo_factor"], mid)
                subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(SAMPLE_RATE), "-F", wavp,
                                str(SOUNDFONT), mid], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               timeout=180)
                wav, sr = load_any(wavp)
                assert sr == SAMPLE_RATE
                rendered.clear()
                rendered[key] = (wav, used)
            wav, used = rendered[key]
            rng = random.Random(r["seed"])
            seg, start = _excerpt(wav, r["length"], rng, tuple(r.get("part", (0, 1))))
            peak = float(np.abs(seg).max()) or 1.0
            seg = seg * (rng.uniform(0.4, 0.9) / peak)
            dur = write(r["path"], seg)
            bpm = int(round(base * r["tempo_factor"]))
            tempo_word = "slow" if bpm < 76 else "fast" if bpm > 116 else "moderate"
            style = spec["style"]
            if spec["group"] in ("ryansMammoth", "oneills1850") and title:
                m = _TITLE_STYLE.search(title)
                if m:
                    style = f"a fiddle tune ({m.group(1).lower()})"
            names = list(dict.fromkeys(used or r["instruments"]))
            caps = captions.music(rng, ensemble=r["ensemble"], instruments=names, style=style,
                                  composer=spec["composer"], title=title, tempo_word=tempo_word, bpm=bpm)
            extras.append({"duration": dur, "text": caps[0], "captions": caps, "label": style,
                           "title": title, "composer": spec["composer"], "bpm": bpm, "tempo": tempo_word,
                           "instruments": names,
                           "offset": round(start, 2)})
    return extras
