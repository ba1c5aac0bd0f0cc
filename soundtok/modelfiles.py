"""Model directories (``config.json`` + ``model.safetensors``): reading and writing.

Shared by every model class's ``from_pretrained`` / ``save_pretrained`` so that
a missing, partial or unreadable directory gives the same one-line
:class:`ModelError` everywhere, and every directory is written the same way
(each file atomically, with the usual permissions).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ModelError


def read_model_dir(path: str | Path) -> tuple[dict, Path]:
    """``path`` (a directory, or a file inside it) -> ``(config dict, weights path)``."""
    d = Path(path)
    if d.is_file():
        d = d.parent
    cfg_path, w_path = d / "config.json", d / "model.safetensors"
    if not cfg_path.is_file() or not w_path.is_file():
        raise ModelError(f"{path} is not a codec directory (needs config.json and model.safetensors)")
    try:
        raw = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read {cfg_path}: {e}") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{cfg_path} does not hold a JSON object")
    return raw, w_path


def file_sha256(path: str | Path) -> str:
    """The sha256 (hex) of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_model_dir(directory: str | Path, state: dict[str, Any], metadata: dict[str, str],
                    save_config: Callable[[Path], None], dtype: Any = None) -> tuple[Path, str]:
    """Write ``model.safetensors`` (``state``; floating tensors cast to ``dtype``
    when given) and ``config.json`` (written by ``save_config(path)``) into
    ``directory``, each under a temporary name renamed into place; returns
    ``(directory, sha256 of the weights file)``."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.to(dtype) if dtype and v.is_floating_point() else v).contiguous().cpu()
               for k, v in state.items()}
    tmp = d / ".model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata=metadata)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)  # safetensors creates 0600 files
    tmp.replace(d / "model.safetensors")
    tmpc = d / ".config.json.tmp"
    save_config(tmpc)
    tmpc.replace(d / "config.json")
    return d, file_sha256(d / "model.safetensors")
