"""Render LLM-Codec codes as the LLM's own tokens and words.

An llm-codec token stream's header says which LLM token id every code
stands for: ``extra.vocabularies[k][c]`` is the LLM id of code ``c`` of scale
``k``.  A clip is written as its scale-0 tokens (whole words, ~3 per second)
in time order, then scale 1's tokens, then scale 2's, with
:data:`~soundtok.llmcodec.templates.SCALE_SEPARATOR` between scales:

* :func:`codes_to_llm_ids` -- LLM token ids per scale;
* :func:`codes_to_parts` -- prompt parts (id lists and separator text), the
  exact input the LLM sees in few-shot prompts;
* :func:`codes_to_words` -- the same as one string (``tokenizer.decode`` of
  each scale); re-tokenizing that string need not give the same ids back, so
  prompts use the parts, and the string is for people (``tokenize --as-text``).

``scales`` picks which scales to include (default all; ``[0]`` gives the
words alone).
"""

from __future__ import annotations

from typing import Any

from ..errors import FormatError
from ..tokens import Header, Item
from .config import ARCHITECTURE
from .templates import SCALE_SEPARATOR


def header_vocabularies(header: Header) -> list[list[int]]:
    """The per-scale LLM id lists of an llm-codec stream; FormatError otherwise."""
    if header.codec.get("arch") != ARCHITECTURE:
        raise FormatError(f"token stream codec {header.codec.get('name')!r} is not an llm-codec "
                          f'(codec.arch is {header.codec.get("arch")!r})')
    vocabs = header.extra.get("vocabularies")
    if (not isinstance(vocabs, list) or len(vocabs) != header.num_codebooks
            or any(not isinstance(v, list) or len(v) != n
                   for v, n in zip(vocabs, header.codebook_sizes))):
        raise FormatError('llm-codec header "extra.vocabularies" must list one LLM id per code '
                          "of every scale")
    return vocabs


def _scales(header: Header, scales) -> list[int]:
    ks = list(range(header.num_codebooks)) if scales is None else list(scales)
    bad = [k for k in ks if not 0 <= k < header.num_codebooks]
    if bad or not ks:
        raise FormatError(f"scales {ks} not in 0..{header.num_codebooks - 1}")
    return ks


def codes_to_llm_ids(item: Item, header: Header, scales=None) -> list[list[int]]:
    """LLM token ids of ``item``, one list per selected scale, in time order."""
    vocabs = header_vocabularies(header)
    header.check_item(item)
    return [[vocabs[k][c] for c in item.codes[k]] for k in _scales(header, scales)]


def codes_to_parts(item: Item, header: Header, scales=None) -> list:
    """Prompt parts of ``item``: ``[ids_0, SCALE_SEPARATOR, ids_1, ...]``."""
    parts: list = []
    for i, ids in enumerate(codes_to_llm_ids(item, header, scales)):
        if i:
            parts.append(SCALE_SEPARATOR)
        parts.append(ids)
    return parts


def decode_ids(ids: list[int], tokenizer: Any) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def codes_to_words(item: Item, header: Header, tokenizer: Any, scales=None) -> str:
    """``item`` as text in the LLM's words: each scale decoded, joined by the separator."""
    return "".join(p if isinstance(p, str) else decode_ids(p, tokenizer)
                   for p in codes_to_parts(item, header, scales))
