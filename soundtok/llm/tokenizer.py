"""An LLM tokenizer read from its ``tokenizer.json`` by ``tokenizers`` alone.

transformers' tokenizer classes wrap the same ``tokenizers`` object; importing transformers
and building the wrapper costs ~3 s on 2 CPU cores for Gemma's 262k-token vocabulary, three
times what reading the file takes.  :class:`JsonTokenizer` answers the calls soundtok makes
of a tokenizer at inference (``tok(text, add_special_tokens=...).input_ids``, ``decode``, the
special token ids).  It is used only where it was checked to agree with the full tokenizer
(see :func:`soundtok.audiolm.merged.fast_tokenizer_agrees`).

Captioning only decodes (its prompt wording is tokenized once, when the merged-model cache
entry is written).  Decoding needs the vocabulary, the added tokens and the decoder, not the
merge rules that make up most of a BPE ``tokenizer.json`` (Gemma's: 515k of them): a
*decoder file* (:func:`write_decoder`) holds just those, loads in a third of the time, and is
used only where :func:`decoder_agrees` found it decoding every token id, and random id
sequences, as the full file does.
"""

from __future__ import annotations

import json
import os
import random
import threading
from pathlib import Path
from types import SimpleNamespace

#: The special tokens a ``tokenizer_config.json`` names, as attributes ``<name>`` and ``<name>_id``.
SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")


class JsonTokenizer:
    """``tokenizer.json`` through ``tokenizers.Tokenizer``; ``special`` maps
    :data:`SPECIAL_NAMES` to token strings (e.g. ``{"eos_token": "<eos>"}``).

    With ``decoder`` (a file from :func:`write_decoder`), only that file is read at first:
    ``decode`` and the special ids need nothing else, and the full ``tokenizer.json`` is
    read on the first encoding."""

    def __init__(self, path: str | os.PathLike, special: dict[str, str] | None = None,
                 decoder: str | os.PathLike | None = None) -> None:
        from tokenizers import Tokenizer

        self.path = Path(path)
        self._lock = threading.Lock()
        self._full = None if decoder is not None else Tokenizer.from_file(str(path))
        self._decoder = Tokenizer.from_file(str(decoder)) if decoder is not None else self._full
        special = special or {}
        for name in SPECIAL_NAMES:
            token = special.get(name)
            setattr(self, name, token)
            setattr(self, f"{name}_id", self._decoder.token_to_id(token) if token is not None else None)

    @property
    def backend(self):
        """The full ``tokenizers.Tokenizer`` (read now if it was not yet)."""
        with self._lock:
            if self._full is None:
                from tokenizers import Tokenizer

                self._full = Tokenizer.from_file(str(self.path))
            return self._full

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
        return self._decoder.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def __len__(self) -> int:
        return self._decoder.get_vocab_size(with_added_tokens=True)

    def __repr__(self) -> str:
        return f"JsonTokenizer({str(self.path)!r})"


def write_decoder(tokenizer_json: str | os.PathLike, out: str | os.PathLike) -> bool:
    """Write the decoder file of ``tokenizer_json`` (its vocabulary as a word-level model, its
    added tokens and decoder; no normalizer, pre-tokenizer or merges) to ``out``; False (and
    nothing written) for a model without a token -> id vocabulary."""
    data = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    model = data.get("model") or {}
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or model.get("type") not in ("BPE", "WordPiece", "WordLevel"):
        return False
    unk = model.get("unk_token")
    if unk is None or unk not in vocab:
        unk = next(iter(vocab))
    data["model"] = {"type": "WordLevel", "vocab": vocab, "unk_token": unk}
    for key in ("normalizer", "pre_tokenizer", "post_processor", "truncation", "padding"):
        data[key] = None
    Path(out).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return True


def decoder_agrees(tokenizer_json: str | os.PathLike, decoder: str | os.PathLike, *, sequences: int = 5000,
                   seed: int = 0) -> bool:
    """Whether the decoder file decodes as ``tokenizer_json`` does: every id alone, and
    ``sequences`` random id sequences (byte pieces fuse across ids), with and without
    special tokens."""
    from tokenizers import Tokenizer

    try:
        full, dec = Tokenizer.from_file(str(tokenizer_json)), Tokenizer.from_file(str(decoder))
    except Exception:  # noqa: BLE001 - an unreadable decoder file is simply not used
        return False
    size = full.get_vocab_size(with_added_tokens=True)
    if dec.get_vocab_size(with_added_tokens=True) != size:
        return False
    rng = random.Random(seed)
    batches = [[[i] for i in range(size)],
               [[rng.randrange(size) for _ in range(rng.randrange(1, 40))] for _ in range(sequences)]]
    return all(full.decode_batch(b, skip_special_tokens=skip) == dec.decode_batch(b, skip_special_tokens=skip)
               for b in batches for skip in (True, False))
