"""Where soundtok keeps files it derives on first use, and how to see and clear them.

One root, ``$SOUNDTOK_CACHE`` if set, else ``$XDG_CACHE_HOME/soundtok`` or
``~/.cache/soundtok``. Each kind of derived file has a sub-folder:

* ``llm/`` -- LLMs converted from GGUF to float32 safetensors (~1.1 GB for
  Gemma 3 270M), see :mod:`soundtok.llm.convert`;
* ``adapters/`` -- the LLM with a caption/generation adapter's LoRA folded in, in the
  inference dtype (~0.54 GB for Gemma 3 270M in bfloat16), see :mod:`soundtok.audiolm.merged`;
* ``whisper/`` -- Whisper weights joined from the parts their packages ship
  (~145 MB for Whisper base), see :mod:`soundtok.whisper`.

Everything here can be deleted at any time; it is rebuilt when next needed.
Only these sub-folders (:data:`KINDS`) are listed and cleared: a root set to a
folder that holds other things (``SOUNDTOK_CACHE=$HOME`` by mistake) loses
nothing else.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: The kinds of derived files, one sub-folder of the root each.
KINDS = ("llm", "adapters", "whisper")


def cache_root() -> Path:
    """The cache root: ``$SOUNDTOK_CACHE``, else ``$XDG_CACHE_HOME/soundtok``, else ``~/.cache/soundtok``."""
    root = os.environ.get("SOUNDTOK_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "soundtok"


def cache_dir(kind: str) -> Path:
    """The sub-folder of :func:`cache_root` for one kind of derived file (``llm``, ``adapters``, ``whisper``)."""
    return cache_root() / kind


def cache_entries() -> list[tuple[Path, int]]:
    """``(path, size in bytes)`` of every entry of every kind (``<kind>/<name>``), sorted by path."""
    out = []
    for kind in KINDS:
        folder = cache_dir(kind)
        if folder.is_dir() and not folder.is_symlink():
            out += [(entry, _size(entry)) for entry in sorted(folder.iterdir())]
    return out


def clear_cache(kind: str | None = None) -> int:
    """Delete one kind's sub-folder, or all of :data:`KINDS` (and the root, if that leaves it
    empty); returns the bytes freed. ``ValueError`` for a kind not in :data:`KINDS`."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown cache kind {kind!r} (kinds: {', '.join(KINDS)})")
    freed = 0
    for k in [kind] if kind else KINDS:
        target = cache_dir(k)
        if target.is_symlink():
            freed += _size(target)
            target.unlink()
        elif target.exists():
            freed += _size(target)
            shutil.rmtree(target)
    if kind is None:
        try:
            cache_root().rmdir()  # only when empty
        except OSError:
            pass
    return freed


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())
