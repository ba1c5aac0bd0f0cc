"""An LLM tokenizer read from its ``tokenizer.json`` by ``tokenizers`` alone.

transformers' tokenizer classes wrap the same ``tokenizers`` object; importing transformers
and building the wrapper costs ~3 s on 2 CPU cores for Gemma's 262k-token vocabulary, three
times what reading the file takes.  :class:`JsonTokenizer` answers the calls soundtok makes
of a tokenizer at inference (``tok(text, add_special_tokens=...).input_ids``, ``decode``, the
special token ids).  It is used only where it was checked to agree with the full tokenizer
(see :func:`soundtok.audiolm.merged.fast_tokenizer_agrees`).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

#: The special tokens a ``tokenizer_config.json`` names, as attributes ``<name>`` and ``<name>_id``.
SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")


class JsonTokenizer:
    """``tokenizer.json`` through ``tokenizers.Tokenizer``; ``special`` maps
    :data:`SPECIAL_NAMES` to token strings (e.g. ``{"eos_token": "<eos>"}``)."""

    def __init__(self, path: str | os.PathLike, special: dict[str, str] | None = None) -> None:
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.backend = Tokenizer.from_file(str(path))
        special = special or {}
        for name in SPECIAL_NAMES:
            token = special.get(name)
            setattr(self, name, token)
            setattr(self, f"{name}_id", self.backend.token_to_id(token) if token is not None else None)

    def __call__(self, text: str | list[str], add_special_tokens: bool = True) -> SimpleNamespace:
        """``.input_ids``: the ids of ``text`` (a list of id lists for a list of texts)."""
        if isinstance(text, str):
            return SimpleNamespace(input_ids=self.encode(text, add_special_tokens))
        encoded = self.backend.encode_batch(list(text), add_special_tokens=add_special_tokens)
        return SimpleNamespace(input_ids=[e.ids for e in encoded])

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __repr__(self) -> str:
        return f"JsonTokenizer({str(self.path)!r})"
