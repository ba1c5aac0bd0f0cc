"""The fingerprint that ties an artefact (codec, adapter, merged model) to one LLM.

:func:`llm_identity` answers ``{name, sha256, vocab_size, hidden_size}``; artefacts
record it and refuse to run with an LLM whose ``sha256`` differs.  For a GGUF
converted into the cache (or a copy marked by
:func:`soundtok.llm.convert.write_identity`) the digest is the GGUF file's; for
any other model directory it is computed from ``config.json`` and the tokenizer
vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from soundtok.errors import ModelError

from ..modelfiles import file_sha256
from .convert import converted_dir, is_complete, read_meta
from .hf import read_json
from .loader import LLMSpec, safe_name

#: config.json keys that define the architecture; hashed by :func:`llm_identity`.
_IDENTITY_CONFIG_KEYS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "tie_word_embeddings",
)


def llm_identity(model_or_dir: Any) -> dict:
    """A fingerprint of an LLM: ``{name, sha256, vocab_size, hidden_size}``.

    ``model_or_dir`` is a model directory, an :class:`LLMSpec`, or a model that
    :func:`load_llm` returned (found again through its ``name_or_path``).
    For a converted GGUF, ``sha256`` is the GGUF file's digest; for any other
    directory it hashes the architecture keys of ``config.json`` together with
    the tokenizer vocabulary, so it is stable across re-saves, dtypes and
    transformers versions, but does not tell apart two checkpoints of one
    architecture and vocabulary.  Compare ``sha256`` (``name`` is for messages).
    """
    directory = _identity_dir(model_or_dir)
    config = read_json(directory / "config.json")
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}

    def pick(key: str):
        return config.get(key, text_config.get(key))

    meta = read_meta(directory)
    if meta and meta.get("gguf_sha256"):
        name, digest = meta["name"], meta["gguf_sha256"]
    else:
        arch = {key: pick(key) for key in _IDENTITY_CONFIG_KEYS if pick(key) is not None}
        payload = json.dumps({"config": arch, "vocab": _vocab_digest(directory)}, sort_keys=True)
        name, digest = safe_name(directory.resolve().name), hashlib.sha256(payload.encode()).hexdigest()
    return {"name": name, "sha256": digest, "vocab_size": pick("vocab_size"), "hidden_size": pick("hidden_size")}


def _identity_dir(model_or_dir: Any) -> Path:
    if isinstance(model_or_dir, LLMSpec):
        if model_or_dir.kind == "hf":
            return Path(model_or_dir.path)
        directory = converted_dir(model_or_dir)
        if not is_complete(directory):
            raise ModelError(f"{model_or_dir.describe()} has not been converted yet; load it first")
        return directory
    if isinstance(model_or_dir, (str, os.PathLike)):
        directory = Path(model_or_dir)
    else:
        where = getattr(model_or_dir, "name_or_path", None) or getattr(
            getattr(model_or_dir, "config", None), "_name_or_path", None
        )
        if not where:
            raise ModelError("cannot identify an LLM that was not loaded from a directory")
        directory = Path(where)
    if not (directory / "config.json").is_file():
        raise ModelError(f"cannot identify LLM: {directory} is not a model directory")
    return directory


def _vocab_digest(directory: Path) -> str:
    """sha256 of the token -> id map (from tokenizer.json, else a raw vocab file)."""
    tokenizer_json = directory / "tokenizer.json"
    if tokenizer_json.is_file():
        data = read_json(tokenizer_json)
        vocab = (data.get("model") or {}).get("vocab")
        if isinstance(vocab, dict):
            by_id = {int(i): tok for tok, i in vocab.items()}
        elif isinstance(vocab, list):  # Unigram: [[piece, score], ...]
            by_id = {i: entry[0] for i, entry in enumerate(vocab)}
        else:
            by_id = {}
        for added in data.get("added_tokens") or []:
            by_id[int(added["id"])] = added["content"]
        payload = json.dumps(sorted(by_id.items()), ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
    for name in ("tokenizer.model", "vocab.json", "vocab.txt"):
        if (directory / name).is_file():
            return file_sha256(directory / name)
    raise ModelError(f"{directory} has no tokenizer (tokenizer.json, tokenizer.model or vocab.json)")
