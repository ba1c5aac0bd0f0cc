"""LLM-Codec: audio tokens that are a frozen LLM's own vocabulary.

A multi-scale residual VQ whose codebooks are fixed rows of a frozen LLM's
input-embedding matrix (UniAudio 1.5 style): scale 0 (~3 Hz) picks whole
English words, scales 1-2 (12.5 / 25 Hz) sub-word tokens.  Rendered as the
LLM's words, a clip can be put straight into a prompt, so a frozen LLM can do
few-shot audio tasks in context.  See ``docs/llm-codec.md``.

Modules (imported lazily, so ``import soundtok.llmcodec`` is cheap):

* :mod:`.config` -- :class:`LLMCodecConfig`, :data:`ARCHITECTURE`
* :mod:`.coding` -- the :class:`~soundtok.codecs.Codec` side: long-audio
  windowing, the streaming encoder, the stream header
* :mod:`.wordlists` -- :func:`select_vocabularies`, :func:`word_vocabulary`, :func:`subword_vocabulary`
* :mod:`.quantizer` -- :class:`FrozenEmbeddingRVQ`
* :mod:`.model` -- :class:`LLMCodec`, :func:`load_llm_codec`
* :mod:`.text` -- :func:`codes_to_words`, :func:`codes_to_parts`, :func:`codes_to_llm_ids`
* :mod:`.incontext` -- few-shot prompts, label ranking, answers (measured by
  :mod:`soundtok.evaluate.fewshot`)
* :mod:`.templates` -- every prompt template of the in-context tasks, in one place
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .config import ARCHITECTURE

#: The LLM-Codec shipped in the package (``--codec llm-codec``).
DEFAULT_LLM_CODEC_DIR = Path(__file__).parent / "default"
#: ``--codec`` name of the shipped LLM-Codec.
BUILTIN_NAME = ARCHITECTURE


def load(path: str | Path, device: str = "cpu", llm=None):
    """An :class:`LLMCodec` from ``path``, its codebooks taken from ``llm`` (a
    spec or a loaded ``(model, tokenizer)``; default: the LLM it records)."""
    from .model import LLMCodec

    return LLMCodec.from_pretrained(path, llm=llm, device=device)


_EXPORTS = {
    "LLMCodecConfig": ".config",
    "select_vocabularies": ".wordlists",
    "word_vocabulary": ".wordlists",
    "subword_vocabulary": ".wordlists",
    "FrozenEmbeddingRVQ": ".quantizer",
    "LLMCodec": ".model",
    "load_llm_codec": ".model",
    "codes_to_words": ".text",
    "codes_to_parts": ".text",
    "codes_to_llm_ids": ".text",
    "build_prompt": ".incontext",
    "rank_labels": ".incontext",
    "answer_stream": ".incontext",
}

__all__ = sorted([*_EXPORTS, "ARCHITECTURE", "BUILTIN_NAME", "DEFAULT_LLM_CODEC_DIR", "load"])


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
