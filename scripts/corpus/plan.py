"""The build plan: which clips to make, from a config and a seed.

:func:`make_plan` returns the jobs of every stage in build order plus one
line per skipped stage saying what to install.  The plan depends only on the
config, the seed and the installed data (file lists are sorted), so a resumed
build plans the same clips again and skips the finished ones.

Stages, in build order (cheap ones first, augmentation after the clips it
reads, music last): ``fsdd klettres esc10 sonicpi piper flite festival
espeak kokoro augment music``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import augment, captions, music, recorded, text, tts
from .jobs import Job
from .voices import VOICES, Voice

STAGES = ("fsdd", "klettres", "esc10", "sonicpi", "piper", "flite", "festival", "espeak", "kokoro", "augment",
          "music")
TTS_STAGES = ("piper", "flite", "festival", "espeak", "kokoro")
TEXT_LICENCE = {"sentence": "BSD (Debian fortunes/fortunes-min databases)",
                "spell": "SCOWL word list (wamerican; permissive) spelled out", "digit": "generated",
                "digits": "generated", "letter": "generated", "letters": "generated"}

# share of each voice's minutes per kind of utterance
MIX = (("sentence", 0.55), ("digits", 0.15), ("digit", 0.07), ("letters", 0.08), ("letter", 0.05),
       ("spell", 0.10))


@dataclass
class Config:
    """What to build.  ``scale`` multiplies every voice's minutes and the music
    file counts; ``utterances`` (if set) gives every voice exactly that many
    utterances (one of each kind first), for tiny builds."""

    name: str = "full"
    seed: int = 0
    scale: float = 1.0
    stages: tuple[str, ...] = STAGES
    voices: tuple[str, ...] | None = None      # voice ids (None: all of VOICES)
    utterances: int | None = None
    data: Path = Path("../shared/data")
    limit_recorded: int | None = None          # at most this many clips per recorded source
    music_groups: tuple[str, ...] | None = None
    music_files: int | None = None              # at most this many files per music group
    music_excerpts: int | None = None           # excerpts per file (None: the group's default)
    augment_fraction: float = 0.10
    # per-engine factor on the voices' nominal minutes: Kokoro runs near real time on one
    # core, so it gets 10 % of them; espeak-ng is nearly free and gets 150 %
    engine_scale: dict = field(default_factory=lambda: {"kokoro": 0.1, "espeak": 1.5})
    extra: dict = field(default_factory=dict)


def preset(name: str, **kw) -> Config:
    """``full`` (the corpus) or ``tiny`` (a few clips in seconds, for tests)."""
    if name == "full":
        return replace(Config(), **kw)
    if name == "tiny":
        base = Config(name="tiny", stages=("sonicpi", "espeak", "music", "augment"), voices=("espeak-en-us+m1",),
                      utterances=6, limit_recorded=3, music_groups=("bach",), music_files=1, music_excerpts=1,
                      augment_fraction=0.3)
        return replace(base, **kw)
    raise ValueError(f"unknown preset {name!r} (full, tiny)")


def _estimate_seconds(u: text.Utterance, rate: float) -> float:
    if u.kind == "sentence":
        s = 0.5 + 0.36 * len(u.text.split())
    elif u.kind in ("digit", "letter"):
        s = 0.9
    elif u.kind == "digits":
        s = 0.4 + 0.55 * len(u.label)
    elif u.kind == "letters":
        s = 0.4 + 0.6 * len(u.label)
    else:
        s = 1.0 + 0.55 * len(u.label)
    return 0.72 * s / rate  # measured: clips come out at about 0.72 of the raw estimate


class _TextPools:
    """Sentences split once into train/val/test pools (90/5/5).  Each voice
    reads consecutive sentences from its own region of its split's pool
    (regions sized by the voices' minutes in :data:`VOICES`), so voices
    mostly read different sentences and a voice's texts do not depend on
    which other voices are built."""

    def __init__(self, rng: random.Random):
        sents = text.sentences()
        rng.shuffle(sents)
        n = len(sents)
        a, b = int(0.9 * n), int(0.95 * n)
        self.pools = {"train": sents[:a], "val": sents[a:b], "test": sents[b:]}
        self.offset: dict[str, int] = {}
        for split, pool in self.pools.items():
            vs = [v for v in VOICES if v.split == split]
            total = sum(v.minutes for v in vs) or 1.0
            acc = 0.0
            for v in vs:
                self.offset[v.id] = int(acc / total * len(pool))
                acc += v.minutes
        self.words = text.words(sents) or ["cat", "dog", "sun", "tree", "house"]

    def sentence(self, v: Voice, k: int) -> str | None:
        pool = self.pools[v.split]
        return pool[(self.offset.get(v.id, 0) + k) % len(pool)] if pool else None


def _utterance(kind: str, rng: random.Random, pools: _TextPools, v: Voice, k: int) -> text.Utterance:
    if kind == "sentence":
        s = pools.sentence(v, k)
        if s is not None:
            return text.Utterance("sentence", s)
        kind = "digits"
    return {"digits": text.digit_string, "digit": text.digit, "letters": text.letter_string,
            "letter": text.letter}.get(kind, lambda r: text.spelled(r, pools.words))(rng)


def _prosody(rng: random.Random, v: Voice) -> tuple[float, float]:
    rate = round(rng.uniform(0.85, 1.2), 3)
    spread = 4.0 if v.engine == "espeak" else 2.5
    pitch = 0.0 if rng.random() < 0.3 else round(rng.uniform(-spread, spread), 2)
    return rate, pitch


def _tts_jobs(v: Voice, cfg: Config, rng: random.Random, pools: _TextPools) -> list[Job]:
    jobs: list[Job] = []
    budget = v.minutes * 60 * cfg.scale * cfg.engine_scale.get(v.engine, 1.0)
    used = {k: 0.0 for k, _ in MIX}
    n = n_sent = 0
    while True:
        if cfg.utterances is not None:
            if n >= cfg.utterances:
                break
            kind = MIX[n % len(MIX)][0]
        else:
            if sum(used.values()) >= budget and all(used.values()):  # every voice says every kind
                break
            kind = min(MIX, key=lambda km: used[km[0]] / km[1])[0]  # the kind furthest below its share
        u = _utterance(kind, rng, pools, v, n_sent)
        n_sent += kind == "sentence"
        rate, pitch = _prosody(rng, v)
        used[kind] += _estimate_seconds(u, rate)
        rel = f"clips/tts/{v.engine}/{v.slug}/{n:05d}.flac"
        caps = captions.speech(rng, kind=u.kind, text=u.text, shown=u.shown, gender=v.gender, accent=v.accent,
                               synthetic=v.quality != "neural", rate=rate)
        row = {"path": rel, "id": f"tts/{v.slug}/{n:05d}", "source": v.engine, "kind": "speech-tts",
               "licence": v.licence, "split": v.split, "text": u.text, "captions": caps, "label": u.label or None,
               "content": u.kind, "voice": v.id, "speaker": v.speaker, "gender": v.gender, "accent": v.accent,
               "language": "en", "rate": rate, "pitch_semitones": pitch, "text_licence": TEXT_LICENCE[u.kind]}
        jobs.append(Job(v.engine, "tts", {"engine": v.engine, "voice": v.name, "text": u.text, "rate": rate,
                                          "pitch": pitch}, [{"path": rel, "row": row}]))
        n += 1
    return jobs


def make_plan(cfg: Config) -> tuple[dict[str, list[Job]], list[str]]:
    """``({stage: jobs}, skipped)`` where ``skipped`` holds one line per stage
    that cannot run here, naming what to install."""
    plan: dict[str, list[Job]] = {}
    skipped: list[str] = []
    stages = [s for s in STAGES if s in cfg.stages]

    def rng_for(stage: str) -> random.Random:
        return random.Random(f"{cfg.seed}/{stage}")

    if any(s in TTS_STAGES for s in stages):
        pools = _TextPools(rng_for("text"))
    for stage in stages:
        r = rng_for(stage)
        if stage == "fsdd":
            jobs, why = recorded.plan_fsdd(cfg.data, r, cfg.limit_recorded)
        elif stage == "klettres":
            jobs, why = recorded.plan_klettres(r, limit=cfg.limit_recorded)
        elif stage == "esc10":
            jobs, why = recorded.plan_esc10(cfg.data, r, cfg.limit_recorded)
        elif stage == "sonicpi":
            jobs, why = recorded.plan_sonicpi(r, limit=cfg.limit_recorded)
        elif stage in TTS_STAGES:
            why = tts.missing(stage)
            jobs = []
            if not why:
                for v in VOICES:
                    if v.engine == stage and (cfg.voices is None or v.id in cfg.voices):
                        jobs += _tts_jobs(v, cfg, random.Random(f"{cfg.seed}/{v.id}"), pools)
        elif stage == "music":
            jobs, why = music.plan_music(r, cfg.scale, cfg.music_groups, cfg.music_files, cfg.music_excerpts)
        elif stage == "augment":
            why = augment.missing()
            earlier = [j for s, js in plan.items() for j in js]
            jobs = [] if why else augment.plan_augment(r, earlier, cfg.augment_fraction)
        else:
            raise ValueError(stage)
        if why:
            skipped.append(f"skip {stage}: {why}")
        elif jobs:
            plan[stage] = jobs
    return plan, skipped
