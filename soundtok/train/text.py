"""Transcripts as CTC targets for the codec's text head (training only).

A manifest row's ``text`` is a transcript only for speech in English: rows whose
``kind`` is given must start with ``speech`` and rows whose ``language`` is given
must start with ``en`` (the corpus also writes captions of sounds and music into
``text``).  :func:`normalize_transcript` lower-cases, turns every character outside
:data:`~soundtok.codec.semantic.ALPHABET` into a space and collapses spaces;
a transcript holding digits is not used (how "1984" is read is not written down).
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..codec.semantic import ALPHABET

_INDEX = {ch: i + 1 for i, ch in enumerate(ALPHABET)}  # 0 is the CTC blank
_OUTSIDE = re.compile(f"[^{re.escape(ALPHABET)}]")


def normalize_transcript(text: str) -> str | None:
    """``"Hello, World!" -> "hello world"``; None when nothing is left or the text has digits."""
    if not text or any(ch.isdigit() for ch in text):
        return None
    t = _OUTSIDE.sub(" ", text.lower().replace("\u2019", "'"))
    t = " ".join(t.split())
    return t or None


def transcript_of(text: str | None, meta: dict[str, Any] | None) -> str | None:
    """The normalised transcript of a manifest row, or None (no text, not English speech)."""
    meta = meta or {}
    kind, lang = meta.get("kind"), meta.get("language")
    if isinstance(kind, str) and not kind.startswith("speech"):
        return None
    if isinstance(lang, str) and not lang.lower().startswith("en"):
        return None
    return normalize_transcript(text) if isinstance(text, str) else None


def encode_transcript(text: str) -> torch.Tensor:
    """A normalised transcript -> character ids ``(L,)`` int64 in ``1..len(ALPHABET)``."""
    return torch.tensor([_INDEX[ch] for ch in text], dtype=torch.long)


def decode_greedy(log_probs: torch.Tensor) -> list[str]:
    """Best-path CTC decoding of ``(B, T, len(ALPHABET) + 1)`` log-probabilities."""
    out = []
    for path in log_probs.argmax(-1).tolist():
        chars, prev = [], 0
        for i in path:
            if i != prev and i != 0:
                chars.append(ALPHABET[i - 1])
            prev = i
        out.append(" ".join("".join(chars).split()))
    return out
