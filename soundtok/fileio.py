"""Small file helpers shared by every module that writes output files.

The one rule soundtok follows for output files: a file either appears complete
or not at all.  :func:`atomic_write` writes to a temporary file in the target's
folder and renames it over the target only when the ``with`` block succeeds, so
an interrupted run (exception, Ctrl-C, full disk) never leaves a half-written
token stream or WAV file behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from soundtok.errors import SoundtokError

__all__ = ["atomic_write", "iter_jsonl", "write_error", "DISK_FULL_ERRNOS"]

#: errno values meaning "the disk, the quota or the file size limit is full".
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})


def write_error(path: str | os.PathLike[str], e: OSError) -> SoundtokError:
    """A one-line error for an OSError raised while writing ``path``."""
    reason = e.strerror or str(e)
    if e.errno in DISK_FULL_ERRNOS:
        reason += " (disk full or file size limit reached)"
    return SoundtokError(f"cannot write {os.fspath(path)}: {reason}")


def _umask() -> int:
    """Return the process umask (there is no way to read it without setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Open ``path`` for writing so that it is replaced atomically on success.

    Yields a file object opened with ``mode`` (``"w"`` or ``"wb"``) on a
    temporary file created next to ``path``
    (same folder, hence same file system).  When the block exits normally the
    data is flushed, fsync'ed, and the temporary file is renamed onto ``path``
    with :func:`os.replace`.  When the block raises (any exception, including
    ``KeyboardInterrupt``) the temporary file is deleted and ``path`` is left
    untouched.  Text mode defaults to UTF-8.

    Raises :class:`SoundtokError` with one line when the folder does not exist
    or is not writable.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write supports modes 'w' and 'wb', not {mode!r}")
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        raise SoundtokError(f"cannot write {target}: it is a directory")
    try:
        fd, tmp = tempfile.mkstemp(
            dir=folder, prefix="." + os.path.basename(target) + ".", suffix=".tmp"
        )
    except OSError as e:
        raise SoundtokError(f"cannot write {target}: {e.strerror or e}") from None
    try:
        if "b" in mode:
            f: IO[Any] = os.fdopen(fd, mode)
        else:
            f = os.fdopen(fd, mode, encoding=encoding or "utf-8", newline="")
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates files 0600; give the result the usual permissions.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            raise write_error(target, e) from None
        raise


def iter_jsonl(f: IO[str], name: str, error: type[SoundtokError] = SoundtokError
               ) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, parsed value)`` for each non-blank line of a JSON
    Lines text stream; a line that is not JSON raises ``error`` with one line
    naming ``name`` and the line number."""
    import json

    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except ValueError:
            raise error(f"{name} line {n}: invalid JSON") from None
