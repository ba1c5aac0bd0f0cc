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
Only these sub-folders (:data:`KINDS`) are listed and cleared, and only what
soundtok made in them: a sub-folder soundtok creates carries a ``CACHEDIR.TAG``
(:func:`make_cache_dir`; the standard tag, which also keeps backup tools out),
and in one without it (made by an older soundtok, or not by soundtok at all)
only entries named as soundtok names them (``<name>-<hex digest>``, and its
temporary folders) are deleted.  A root set to a folder that holds other things
(``SOUNDTOK_CACHE=$HOME`` by mistake, with a ``~/adapters`` of your own) loses
nothing else.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

#: The kinds of derived files, one sub-folder of the root each.
KINDS = ("llm", "adapters", "whisper")

#: The cache directory tag (https://bford.info/cachedir/) soundtok puts in each sub-folder it creates.
TAG_NAME = "CACHEDIR.TAG"
_TAG = ("Signature: 8a477f597d28d172789f06886806bc55\n"
        "# This folder holds files soundtok derives on first use (soundtok cache --clear deletes them).\n")
#: Entry names soundtok gives (``gemma3-270m-<12 hex>``, ``base-<12 hex>``, ``<adapter>-<16 hex>``)
#: and its temporary folders (``.<entry>.<random>.tmp``, ``.base-<random>``).
_ENTRY_NAME = re.compile(r"^(?:[^/]+-[0-9a-f]{12,64}|\.[^/]+\.tmp|\.base-[A-Za-z0-9_]+)$")


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


def make_cache_dir(kind: str) -> Path:
    """:func:`cache_dir` ``(kind)``, created and tagged (:func:`mark_cache_dir`)."""
    return mark_cache_dir(cache_dir(kind))


def mark_cache_dir(folder: Path) -> Path:
    """The cache sub-folder ``folder``, created (with its parents) and tagged as soundtok's
    (``CACHEDIR.TAG``) if it is not yet: what every writer of cache entries calls first."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tag = folder / TAG_NAME
    if not tag.exists():
        try:
            tag.write_text(_TAG, encoding="utf-8")
        except OSError:  # a read-only or full cache: the entries themselves fail with their own error
            pass
    return folder


def _tagged(folder: Path) -> bool:
    try:
        return (folder / TAG_NAME).read_text(encoding="utf-8", errors="replace").startswith(_TAG[:43])
    except OSError:
        return False


def cache_entries() -> list[tuple[Path, int]]:
    """``(path, size in bytes)`` of every entry of every kind (``<kind>/<name>``), sorted by path."""
    out = []
    for kind in KINDS:
        folder = cache_dir(kind)
        if folder.is_dir() and not folder.is_symlink():
            out += [(entry, _size(entry)) for entry in sorted(folder.iterdir()) if entry.name != TAG_NAME]
    return out


def clear_cache(kind: str | None = None, on_kept: Callable[[list[Path]], None] | None = None) -> int:
    """Delete one kind's sub-folder, or all of :data:`KINDS` (and the root, if that leaves it
    empty); returns the bytes freed. ``ValueError`` for a kind not in :data:`KINDS`.

    Only what soundtok made goes (see the module docstring): in a sub-folder without
    soundtok's ``CACHEDIR.TAG``, entries not named as soundtok names them are kept, and
    ``on_kept`` receives them (the folder then stays too)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown cache kind {kind!r} (kinds: {', '.join(KINDS)})")
    freed = 0
    kept: list[Path] = []
    for k in [kind] if kind else KINDS:
        target = cache_dir(k)
        if target.is_symlink():
            freed += _size(target)
            target.unlink()
        elif target.is_dir():
            ours = _tagged(target)
            left = []
            for entry in sorted(target.iterdir()):
                if entry.name == TAG_NAME:
                    continue
                if not (ours or _ENTRY_NAME.match(entry.name)):
                    left.append(entry)
                    continue
                freed += _size(entry)
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            if left:
                kept += left
            else:
                (target / TAG_NAME).unlink(missing_ok=True)
                try:
                    target.rmdir()
                except OSError:  # something appeared meanwhile: it stays
                    pass
    if kept and on_kept:
        on_kept(kept)
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
