"""How a codec is found: the registry of codec architectures and :func:`load_codec`.

Every codec implements :class:`soundtok.codecs.Codec`; its ``config.json``
names its ``architecture``, and :func:`load_codec` dispatches on it.

Adding a codec:

1. a package whose model class implements :class:`~soundtok.codecs.Codec` and
   whose ``config.json`` says ``"architecture": "<name>"``, with a
   ``load(path, device="cpu")`` function (``load(path, device, llm)`` for a
   codec whose codebooks come from an LLM) returning a loaded model;
2. one :class:`CodecEntry` in :func:`_builtin_entries` -- or, for a codec that
   lives outside soundtok (a plug-in, a test), :func:`register_codec` at run
   time.

Importing this module is cheap: a codec package is imported only when the
registry is first consulted, its model (and torch) only when one is loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .codecs import Codec, is_codec
from .errors import ModelError, UsageError

if TYPE_CHECKING:
    from .tokens import Header, Item

__all__ = ["CodecEntry", "BuiltinCodec", "load_codec", "register_codec", "unregister_codec",
           "registered_codecs", "architectures", "builtin_for_stream", "words_of", "DEFAULT"]

#: ``--codec`` name of the built-in default codec (also what ``None`` means).
DEFAULT = "default"


# --------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class BuiltinCodec:
    """A codec shipped inside a package, reachable as ``--codec <name>``."""

    name: str
    path: Path
    label: str  # e.g. "the default codec", for "... is not installed"
    make_target: str  # the Makefile target(s) that build and install it


@dataclass(frozen=True)
class CodecEntry:
    """One codec architecture: the ``architecture`` string its ``config.json``
    (and its streams' ``codec.arch``) carry, ``load(path, device=, llm=)``, the
    built-in copies, and whether it takes ``--llm`` (its codebooks come from an LLM)."""

    architecture: str
    load: Callable[..., Any]
    builtins: tuple[BuiltinCodec, ...] = ()
    takes_llm: bool = False
    trainer: Callable[..., Any] | None = field(default=None, compare=False)


_EXTRA: list[CodecEntry] = []


def _builtin_entries() -> list[CodecEntry]:
    """The codecs of this package: one entry each (the first is the default)."""
    from . import codec, llmcodec

    return [
        CodecEntry(codec.ARCHITECTURE, codec.load,
                   (BuiltinCodec(DEFAULT, codec.DEFAULT_CODEC_DIR, "the default codec",
                                 "default-codec ship-default-codec"),)),
        CodecEntry(llmcodec.ARCHITECTURE, llmcodec.load,
                   (BuiltinCodec(llmcodec.BUILTIN_NAME, llmcodec.DEFAULT_LLM_CODEC_DIR,
                                 "the default llm-codec", "default-llm-codec"),),
                   takes_llm=True),
    ]


def registered_codecs() -> list[CodecEntry]:
    """Every known codec: this package's, then those added by :func:`register_codec`."""
    return _builtin_entries() + list(_EXTRA)


def register_codec(entry: CodecEntry) -> None:
    """Make a codec architecture known (replacing an entry of the same name added earlier)."""
    if entry.architecture in (e.architecture for e in _builtin_entries()):
        raise ValueError(f"codec architecture {entry.architecture!r} is built in")
    _EXTRA[:] = [e for e in _EXTRA if e.architecture != entry.architecture] + [entry]


def unregister_codec(architecture: str) -> None:
    """Forget a codec added by :func:`register_codec`."""
    _EXTRA[:] = [e for e in _EXTRA if e.architecture != architecture]


def architectures() -> list[str]:
    """The architecture strings of every known codec."""
    return [e.architecture for e in registered_codecs()]


def _entry(architecture: str) -> CodecEntry | None:
    return next((e for e in registered_codecs() if e.architecture == architecture), None)


def _builtin(name: str) -> tuple[CodecEntry, BuiltinCodec] | None:
    for e in registered_codecs():
        for b in e.builtins:
            if b.name == name:
                return e, b
    return None


def _architecture_of(path: Path) -> str | None:
    """The ``architecture`` in ``config.json`` of the directory ``path`` (or of the
    file's folder); None when there is no readable one."""
    cfg = (path.parent if path.is_file() else path) / "config.json"
    try:
        raw = json.loads(cfg.read_text()) if cfg.is_file() else None
    except (OSError, ValueError):
        return None
    arch = raw.get("architecture") if isinstance(raw, dict) else None
    return arch if isinstance(arch, str) else None


def load_codec(spec: Any = None, device: str = "auto", llm: Any = None) -> Codec:
    """A loaded codec in eval mode on ``device`` (``"auto"``: CUDA when available,
    else CPU; see :func:`soundtok.device.resolve_device`).

    ``spec``: ``None`` or ``"default"`` -> the built-in sound codec
    (:class:`~soundtok.codec.model.SoundCodec`: ``encode`` takes audio ``(B, N)``
    at 16 kHz and returns codes ``(B, 1, ceil(N / 640))``, 25 per second;
    ``decode`` takes codes ``(B, 1, T)`` and returns audio ``(B, T * 640)``);
    ``"llm-codec"`` -> the shipped LLM-Codec (its ``encode`` returns one code
    tensor per scale); a codec directory (or a file in it), loaded by the
    architecture its ``config.json`` names (a directory without one is read as
    the default architecture, which then says what is missing); or an already
    loaded codec (moved to ``device``).  ``llm`` (codecs whose codebooks come
    from an LLM only): the LLM to take them from -- a spec or a loaded
    ``(model, tokenizer)``; default: the one the codec records.  Every codec
    implements :class:`soundtok.codecs.Codec` as well.
    """
    from .device import resolve_device

    device = resolve_device(device)
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        if not is_codec(spec):
            raise TypeError(f"not a codec: {type(spec).__name__}")
        return spec.to(device).eval()
    name = os.fspath(spec) if spec not in (None, "") else DEFAULT
    found = _builtin(name)
    if found is not None:
        entry, builtin = found
        if not (builtin.path / "model.safetensors").is_file():
            raise ModelError(f"{builtin.label} is not installed in this copy of soundtok "
                             f"(build it with `make {builtin.make_target}` or pass --codec DIR)")
        path = builtin.path
    else:
        path = Path(name)
        if not path.exists():
            raise ModelError(f"no such codec: {spec}")
        arch = _architecture_of(path)
        entry = registered_codecs()[0] if arch is None else _entry(arch)
        if entry is None:
            raise ModelError(f"{spec} holds a {arch!r} model, not a codec soundtok knows "
                             f"({', '.join(architectures())})")
    if llm is not None and not entry.takes_llm:
        raise UsageError("--llm applies to llm-codec codecs only")
    if entry.takes_llm:
        return entry.load(path, device=device, llm=llm)
    return entry.load(path, device=device)


def builtin_for_stream(header: Header) -> str | None:
    """The built-in codec to decode a stream with when none is given: the first
    built-in of the stream's architecture (``codec.arch``), else None (the default)."""
    entry = _entry(str(header.codec.get("arch")))
    return entry.builtins[0].name if entry is not None and entry.builtins else None


def words_of(codec: Codec) -> Callable[[Item, Header], str] | None:
    """For codecs whose codes are an LLM's own tokens: ``(item, header) -> the
    item as the LLM's words``; None for the others."""
    return getattr(codec, "words", None)
