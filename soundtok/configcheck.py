"""Checks of user-given model configs (``--config``) before anything is built.

:func:`check_overrides` validates config overrides against a config dataclass
(unknown keys, wrong types, NaN/inf, non-positive sizes, absurd values);
:func:`check_memory` measures how large the model would be -- its parameters
and buffers are created on torch's ``meta`` device whenever they are large, so
nothing big is allocated -- and refuses a model whose training would need more
memory than the machine has.  Both raise a one-line
:class:`~soundtok.errors.UsageError` (exit 2).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from .errors import UsageError

__all__ = ["check_overrides", "check_memory", "TRAINING_BYTES_PER_PARAMETER", "MAX_CONFIG_INT"]

#: Any integer in a config above this is refused as absurd (sizes, rates).
MAX_CONFIG_INT = 1 << 20
#: The most layers of any one kind (``*_layers``).
MAX_LAYERS = 1024
#: Bytes of memory one float32 parameter takes while training with AdamW: the weight,
#: its gradient and the two moments.
TRAINING_BYTES_PER_PARAMETER = 16

# integer fields that are sizes: they must be positive (others may be 0)
_SIZE_NAME = re.compile(r"(^|_)(dim|dims|size|sizes|layers|rate|stride|strides|length|lengths|fft|mels|steps|"
                        r"heads|hop)$")
# fields that may legitimately be 0 although their name looks like a size
_ZERO_OK = {"lookup_dim"}


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is bool:
        return type(value) is bool
    if hint is int:
        return type(value) is int
    if hint is float:
        return type(value) in (int, float)
    if hint is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint in (list, tuple) or origin in (list, tuple):
        args = typing.get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, args[0]) for v in value) if args else \
            isinstance(value, list)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    return True  # a type this check does not know: the config class decides


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def check_overrides(cls: type, overrides: dict[str, Any], flag: str = "--config",
                    ignore: tuple[str, ...] = ("architecture", "soundtok_version")) -> None:
    """UsageError unless every key of ``overrides`` is a field of the dataclass ``cls``
    with a value of the field's type: numbers finite, integer sizes positive (other
    integers and all floats non-negative), no integer above :data:`MAX_CONFIG_INT`."""
    if not isinstance(overrides, dict):
        raise UsageError(f"{flag} must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in overrides.items():
        if key in ignore:
            continue
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"{flag}: unknown key {key!r}{hint}")
        hint = hints.get(key, Any)
        if not _type_ok(value, hint):
            raise UsageError(f"{flag}: {key} must be {_type_name(hint)}, not {value!r:.60}")
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                raise UsageError(f"{flag}: {key} must be a finite number, not {v!r}")
            cap = MAX_LAYERS if key.endswith("layers") else MAX_CONFIG_INT
            if isinstance(v, int) and v > cap:
                raise UsageError(f"{flag}: {key} = {v} is absurdly large (at most {cap})")
            size = isinstance(v, int) and (_SIZE_NAME.search(key) or isinstance(value, list)) \
                and key not in _ZERO_OK
            if size and v <= 0:
                raise UsageError(f"{flag}: {key} must be positive, not {v}")
            if v < 0:
                raise UsageError(f"{flag}: {key} must not be negative, not {v}")


def _memory_bytes(device: str = "cpu") -> int | None:
    """Memory of the machine (or of the GPU ``device``), in bytes; None if unknown."""
    if device.startswith("cuda"):
        try:
            import torch

            index = int(device.split(":")[1]) if ":" in device else 0
            return int(torch.cuda.get_device_properties(index).total_memory)
        except Exception:  # noqa: BLE001 - no GPU information: no check
            return None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _count(build: Callable[[], Any]) -> int:
    """Elements of the parameters and buffers of ``build()``; every tensor of 65536
    elements or more is created on the ``meta`` device (no memory)."""
    import torch
    from torch.overrides import TorchFunctionMode

    factories = {torch.empty, torch.zeros, torch.ones, torch.randn, torch.rand, torch.full, torch.randint,
                 torch.empty_strided}

    def numel(func: Any, args: tuple, kwargs: dict) -> int:
        sized = (tuple, list, torch.Size)
        if "size" in kwargs:
            shape = kwargs["size"]
        elif func is torch.randint:
            shape = next((a for a in args if isinstance(a, sized)), ())
        elif args and isinstance(args[0], sized):
            shape = args[0]
        else:
            shape = [a for a in args if isinstance(a, int) and not isinstance(a, bool)]
        try:
            return math.prod(int(s) for s in shape)
        except (TypeError, ValueError):
            return 0

    class BigOnMeta(TorchFunctionMode):
        def __torch_function__(self, func, types_, args=(), kwargs=None):
            kwargs = dict(kwargs or {})
            if func in factories and kwargs.get("device") is None and numel(func, args, kwargs) >= 1 << 16:
                kwargs["device"] = "meta"
            return func(*args, **kwargs)

    with BigOnMeta():
        model = build()
    return sum(t.numel() for t in model.parameters()) + sum(t.numel() for t in model.buffers())


def check_memory(build: Callable[[], Any], what: str, device: str = "cpu", flag: str = "--config") -> int:
    """Build ``build()`` without allocating its large tensors, count its elements and
    return the count; UsageError if it cannot be built with this config, or if training
    it would need more memory than ``device`` has
    (:data:`TRAINING_BYTES_PER_PARAMETER` bytes per element)."""
    try:
        n = _count(build)
    except UsageError:
        raise
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError, OverflowError, IndexError,
            AssertionError, NotImplementedError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise UsageError(f"{flag}: cannot build {what} with this config: {reason}") from None
    need, have = n * TRAINING_BYTES_PER_PARAMETER, _memory_bytes(device)
    if have is not None and need > have:
        raise UsageError(f"{flag}: {what} would have {n / 1e6:,.0f}M parameters; training it needs about "
                         f"{need / 2**30:,.1f} GiB (weights, gradients, optimizer state), more than the "
                         f"{have / 2**30:,.1f} GiB of this {'GPU' if device.startswith('cuda') else 'machine'}")
    return n
