"""Reading model directories (``config.json`` + ``model.safetensors``).

Shared by every model class's ``from_pretrained`` so that a missing, partial
or unreadable directory gives the same one-line :class:`ModelError` everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

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
