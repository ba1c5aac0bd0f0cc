"""A cache of LLMs with an adapter's LoRA already folded in, for fast inference loading.

``caption`` and ``generate`` only ever run the LLM with its LoRA weights merged.  Building
that model the first time means loading the float32 LLM, importing peft, injecting the
LoRA layers and merging them (~5-10 s on 2 CPU cores).  The result is written once, in the
inference dtype (float32 on CPU: ~1.1 GB for Gemma 3 270M), to
``adapters/<name>-<key>/`` under :func:`soundtok.cache.cache_root`; later calls load it
directly (no peft, no dtype conversion, the weights memory-mapped).

``key`` is a digest of everything the merged weights depend on: the adapter's LoRA file and
its config, the LLM the adapter was trained for and the one it is applied to (see
:func:`merged_key`), the dtype and this cache's format.  Any change gives a new entry; an
entry is written into a temporary folder and renamed, so it is complete or absent.

The entry also records whether the LLM's tokenizer can be read straight from its
``tokenizer.json`` (``tokenizers`` only, without transformers: ~3x faster than transformers'
tokenizer class for Gemma's 262k-token vocabulary): checked when the entry is written, by
encoding and decoding probe texts (the adapter's prompt wording among them) both ways; and whether decoding
can read a smaller decoder file (:data:`DECODER_FILE`: the vocabulary without the merge
rules, a third of the loading time), checked over every token id.

A Gemma 3 entry is then loaded without transformers at all (:mod:`soundtok.llm.gemma3`);
other LLMs through transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: 2: the tokenizer check is against ``tokenizers`` alone (:class:`~soundtok.llm.tokenizer.JsonTokenizer`)
FORMAT = 2
META_FILE = "soundtok-merged.json"
#: What decoding needs of ``tokenizer.json`` (no merge rules), where the entry's check allows.
DECODER_FILE = "decoder.json"

#: Texts whose ids must agree between the fast and the full tokenizer (plus the prompt wording).
PROBES = (
    "a dog barks", "Someone says: \"Hello, world!\"", "spoken digit seven", "a piano melody in C major",
    "  two  spaces\tand a tab\nnew line ", "über naïve café — 東京 🎵", "3.14 kHz, 25 Hz, 0-4 kHz",
    "a woman speaks English: 'it's OK'", "<b>not a tag</b> <start_of_turn>", "",
)


def cache_folder() -> Path:
    from ..cache import cache_dir

    return cache_dir("adapters")


def _llm_fingerprint(spec) -> Any:
    """What identifies the LLM weights an entry was merged from, without loading them."""
    if spec.sha256:  # a GGUF (built-in or file): its digest
        return spec.sha256
    path = Path(spec.path).resolve()  # a model directory: where it is and its weight files' stamps
    stamps = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.glob("*.safetensors"))
    return [str(path), stamps]


def merged_key(adapter_dir: Path, meta: dict, spec, dtype) -> str:
    """The digest naming an adapter's merged entry (see the module docstring)."""
    import torch

    from ..modelfiles import file_sha256

    payload = {
        "format": FORMAT,
        "lora": file_sha256(adapter_dir / "adapter_model.safetensors"),
        "lora_config": (adapter_dir / "adapter_config.json").read_text(encoding="utf-8"),
        "trained_for": (meta.get("llm") or {}).get("sha256"),
        "llm": _llm_fingerprint(spec),
        "dtype": str(dtype),
        "torch": torch.__version__.split("+")[0],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def entry_dir(adapter_dir: Path, meta: dict, spec, dtype) -> Path:
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in adapter_dir.resolve().name)
    return cache_folder() / f"{name}-{merged_key(adapter_dir, meta, spec, dtype)[:16]}"


def read_entry(entry: Path) -> dict | None:
    """The entry's metadata, or None when the entry is absent, incomplete or of another format."""
    try:
        meta = json.loads((entry / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("soundtok_merged") != FORMAT:
        return None
    return meta if (entry / "config.json").is_file() else None


def load_entry(entry: Path, meta: dict, dtype, *, native: bool = True, decode_only: bool = False):
    """``(model, tokenizer)`` from a complete entry (model in ``dtype``, eval mode, on CPU).

    A Gemma 3 model is built by :mod:`soundtok.llm.gemma3` (the same logits as transformers',
    without importing it) unless ``native`` is false; any other model by transformers.  The
    tokenizer loads in a background thread while the model loads (and while a caption is
    computed: see :class:`PendingTokenizer`); where the entry's check allows, from its
    ``tokenizer.json`` by ``tokenizers`` alone, and with ``decode_only`` from its decoder
    file until something is encoded."""
    from ..llm import gemma3
    from ..llm.hf import read_json, transformers_auto
    from ..llm.loader import load_model_dir, load_tokenizer_dir

    fast = bool(meta.get("fast_tokenizer"))
    native = native and gemma3.unsupported(read_json(entry / "config.json")) is None
    if not (native and fast):
        transformers_auto()  # imported here first: the thread then imports nothing the main thread does
    decoder = entry / DECODER_FILE if decode_only and fast and meta.get("decoder") else None
    tokenizer = PendingTokenizer(lambda: load_tokenizer_dir(entry, fast=fast, decoder=decoder),
                                 meta.get("known") or {})
    model = gemma3.load(entry, dtype) if native else load_model_dir(entry, dtype)
    model.eval()
    return model, tokenizer


class PendingTokenizer:
    """A tokenizer that is still loading in a background thread, standing in for it.

    What the entry recorded when it was written -- the special token ids and the ids of the
    adapter's prompt wording -- is answered at once; anything else waits for the tokenizer
    (``tokenizers`` releases the GIL while it reads, so model loading and the first forward
    passes go on meanwhile).  Every other attribute is the real tokenizer's."""

    def __init__(self, load, known: dict) -> None:
        import threading
        from concurrent.futures import Future

        self._future: Future = Future()
        self._known = {k: v for k, v in known.items() if k != "texts"}
        self._texts = dict(known.get("texts") or {})

        def run() -> None:
            try:
                self._future.set_result(load())
            except BaseException as e:  # noqa: BLE001 - re-raised where the tokenizer is used
                self._future.set_exception(e)

        threading.Thread(target=run, name="soundtok-tokenizer", daemon=True).start()

    @property
    def tokenizer(self):
        """The real tokenizer (waits for it)."""
        return self._future.result()

    def __call__(self, text, add_special_tokens: bool = True, **kwargs):
        if not add_special_tokens and not kwargs and isinstance(text, str) and text in self._texts:
            from types import SimpleNamespace

            return SimpleNamespace(input_ids=list(self._texts[text]))
        return self.tokenizer(text, add_special_tokens=add_special_tokens, **kwargs)

    def __getattr__(self, name: str):
        if name in ("_known", "_texts", "_future"):
            raise AttributeError(name)
        if name in self._known:
            return self._known[name]
        return getattr(self.tokenizer, name)


def known_values(tokenizer, texts: list[str]) -> dict:
    """What :class:`PendingTokenizer` answers before the tokenizer has loaded."""
    return {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "texts": {t: list(tokenizer(t, add_special_tokens=False).input_ids) for t in texts}}


def fast_tokenizer_agrees(tokenizer, directory: Path, texts: list[str]) -> bool:
    """Whether ``tokenizer.json`` of ``directory``, read by ``tokenizers`` alone, encodes
    ``texts`` + :data:`PROBES` and decodes the ids exactly as ``tokenizer`` does."""
    from ..llm.loader import load_tokenizer_dir

    try:
        fast = load_tokenizer_dir(directory, fast=True)
    except Exception:  # noqa: BLE001 - any failure just means: use the full tokenizer
        return False
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(fast, attr, None) != getattr(tokenizer, attr, None):
            return False
    for text in [*texts, *PROBES]:
        ids = list(tokenizer(text, add_special_tokens=False).input_ids)
        if list(fast(text, add_special_tokens=False).input_ids) != ids:
            return False
        with_special = ids + [tokenizer.eos_token_id]
        if fast.decode(with_special, skip_special_tokens=True) != tokenizer.decode(with_special,
                                                                                    skip_special_tokens=True):
            return False
    return True


def _write_decoder(directory: Path) -> bool:
    """Write the decoder file of ``directory``'s ``tokenizer.json`` (see
    :mod:`soundtok.llm.tokenizer`) where it decodes exactly as the full file; whether it did."""
    from ..llm.tokenizer import decoder_agrees, write_decoder

    path = directory / DECODER_FILE
    if write_decoder(directory / "tokenizer.json", path) and decoder_agrees(directory / "tokenizer.json", path):
        return True
    path.unlink(missing_ok=True)
    return False


def write_entry(entry: Path, model, tokenizer, *, adapter_dir: Path, llm_meta: dict, from_gguf: bool,
                texts: list[str]) -> Path:
    """Write ``model`` (LoRA merged) and ``tokenizer`` as ``entry``, atomically.

    ``llm_meta`` is the identity the entry answers to (:func:`soundtok.llm.llm_identity` of
    the LLM it was merged from); ``texts`` are probe texts for the tokenizer check."""
    from ..cache import mark_cache_dir
    from ..llm.convert import write_identity
    from ..thirdparty import quiet_libraries

    mark_cache_dir(entry.parent)  # created, tagged as soundtok's: what `soundtok cache --clear` may delete
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
    try:
        from transformers.utils import logging as hf_logging

        with quiet_libraries():
            was = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # "Writing model shards" bars
            try:
                model.save_pretrained(str(tmp), safe_serialization=True)
            finally:
                if was:
                    hf_logging.enable_progress_bar()
            tokenizer.save_pretrained(str(tmp))
        write_identity(tmp, llm_meta, from_gguf)
        fast = fast_tokenizer_agrees(tokenizer, tmp, texts)
        meta = {
            "soundtok_merged": FORMAT,
            "adapter": str(adapter_dir.resolve()),
            "dtype": str(model.dtype).removeprefix("torch."),
            "fast_tokenizer": fast,
            "decoder": fast and _write_decoder(tmp),
            "known": known_values(tokenizer, texts),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        shutil.rmtree(entry, ignore_errors=True)  # an entry of the same key is replaced whole
        try:
            os.rename(tmp, entry)
        except OSError:
            if read_entry(entry) is None:  # not merely another process finishing first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry
