"""Choosing the torch device: one rule for the library and the command line.

``"auto"`` (the default everywhere, ``--device auto`` on the command line)
means ``cuda`` when torch sees a CUDA GPU, else ``cpu``.  Explicit names are
checked: ``cpu``, ``cuda``, ``cuda:N`` and ``mps``.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import UsageError

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def resolve_device(device: Any = "auto") -> str:
    """The device to use, as a string torch accepts.

    ``"auto"`` -> ``"cuda"`` when ``torch.cuda.is_available()``, else ``"cpu"``;
    ``cpu``, ``cuda``, ``cuda:N``, ``mps`` and ``torch.device`` objects are
    returned as their names.  Raises :class:`~soundtok.errors.UsageError` for
    anything else, and for a CUDA device when torch has no usable GPU.
    """
    name = str(device) if device is not None else "auto"
    if not _DEVICE_RE.match(name):
        raise UsageError(f"invalid --device {name!r}: use auto, cpu, cuda or cuda:N")
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available in this torch build/machine")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise UsageError(f"--device {name}: this machine has {n} GPU(s) (cuda:0 .. cuda:{n - 1})")
    return name
