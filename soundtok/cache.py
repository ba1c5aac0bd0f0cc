"""Where soundtok keeps files it derives on first use, and how to see and clear them.

One root, ``$SOUNDTOK_CACHE`` if set, else ``$XDG_CACHE_HOME/soundtok`` or
``~/.cache/soundtok``. Each kind of derived file has a sub-folder:

* ``llm/`` -- LLMs converted from GGUF to float32 safetensors (~1.1 GB for
  Gemma 3 270M), see :mod:`soundtok.llm.loader`;
* ``whisper/`` -- Whisper weights joined from the parts their packages ship
  (~145 MB for Whisper base), see :mod:`soundtok.whisper`.

Everything here can be deleted at any time; it is rebuilt when next needed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def cache_root() -> Path:
    """The cache root: ``$SOUNDTOK_CACHE``, else ``$XDG_CACHE_HOME/soundtok``, else ``~/.cache/soundtok``."""
    root = os.environ.get("SOUNDTOK_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "soundtok"


def cache_dir(kind: str) -> Path:
    """The sub-folder of :func:`cache_root` for one kind of derived file (``llm``, ``whisper``)."""
    return cache_root() / kind


def cache_entries() -> list[tuple[Path, int]]:
    """``(path, size in bytes)`` of every entry two levels down (``<kind>/<name>``), sorted by path."""
    root = cache_root()
    out = []
    if not root.is_dir():
        return out
    for kind in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        for entry in sorted(kind.iterdir()):
            out.append((entry, _size(entry)))
    return out


def clear_cache(kind: str | None = None) -> int:
    """Delete the cache (or one kind's sub-folder); returns the bytes freed."""
    target = cache_dir(kind) if kind else cache_root()
    if not target.exists():
        return 0
    freed = _size(target)
    shutil.rmtree(target)
    return freed


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())
