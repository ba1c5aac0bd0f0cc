"""File helpers shared by every module that reads inputs or writes outputs.

The rules soundtok follows for files, enforced here and nowhere else:

* **A file output appears complete or not at all.**  :func:`atomic_write`
  writes to a temporary file beside the target and renames it over the target
  only when the ``with`` block succeeds; an interrupted run (exception, Ctrl-C,
  SIGTERM, SIGHUP, full disk) removes the temporary file and leaves the target
  as it was.
* **An output target is never something else than the user meant**
  (:func:`output_target`): an output that is one of the command's inputs (the
  same file, by device and inode, also through a hard or symbolic link) is
  refused, and so is stdout (``-``, ``/dev/stdout``) redirected to one of
  them; device nodes, FIFOs and ``/dev/stdout``-style paths are written to
  directly, never replaced by a regular file; a symbolic link is written
  through (its target is replaced atomically, the link stays); an empty or
  directory-looking path is a usage error.
* **A file another soundtok process holds locked is never replaced**: a
  ``--resume`` run locks the file it appends to (``flock``), and
  :func:`atomic_write` refuses to rename over a locked file.
* **Inputs are read with bounded memory**: a pipe or stdin is copied to an
  anonymous temporary file (:func:`spool`) of at most :data:`SPOOL_MAX_BYTES`;
  text lines are read with a length limit (:func:`read_line`); JSON that is
  not JSON (NaN), too deeply nested or otherwise hostile is one clear error
  (:func:`loads_json`).
* **Signals** (:func:`signals_deferred`): a critical section -- one line of a
  resumable output, the rename that commits a file or a checkpoint -- is never
  cut by Ctrl-C, SIGTERM or SIGHUP; the signal takes effect right after it.

The inputs a command reads are recorded (:func:`note_input`) by the readers in
the scope :func:`input_scope` opens (the CLI opens one per command; the library
functions :func:`soundtok.api.tokenize` and friends open one when called
directly), in whichever thread they run, so that an output can be compared
with them.

These rules are one module on purpose: :func:`atomic_write` relies on the input
records, the locks and the signal deferral defined beside it, and one file is the
one place where what soundtok may do to a user's files can be checked.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from soundtok.errors import SoundtokError, UsageError

__all__ = ["atomic_write", "iter_jsonl", "write_error", "DISK_FULL_ERRNOS", "output_target", "OutputTarget",
           "note_input", "input_scope", "tracks_inputs", "check_not_input", "check_not_locked",
           "signals_deferred", "spool", "read_line", "loads_json", "json_too_deep", "std_stream",
           "SPOOL_MAX_BYTES", "LINE_MAX_BYTES", "JSON_MAX_DEPTH"]

#: errno values meaning "the disk, the quota or the file size limit is full".
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})

#: The most bytes a pipe or stdin is copied into a temporary file to be decoded (4 GiB).
SPOOL_MAX_BYTES = 4 << 30
#: The longest line a JSON Lines reader accepts (64 MiB; a token stream item of the built-in
#: codec takes about 0.5 MB per hour of audio).
LINE_MAX_BYTES = 64 << 20
#: The deepest nesting of objects and arrays accepted in JSON read from users.
JSON_MAX_DEPTH = 64

#: Paths that name a stream of this process (or its terminal): written to directly.
_STREAM_PREFIXES = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/self/fd/", "/dev/tty")


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


# --------------------------------------------------------------------------- std streams

def std_stream(name: str, binary: bool = True) -> IO[Any]:
    """``sys.stdin``/``sys.stdout`` (their binary buffer with ``binary``); a one-line
    SoundtokError when the stream is closed (``<&-``, ``>&-``)."""
    import sys

    f = getattr(sys, name, None)
    if f is None:
        raise SoundtokError(f"{name} is closed: there is nothing to {'read' if name == 'stdin' else 'write'} "
                            f"as '-' (give a file instead)")
    return getattr(f, "buffer", f) if binary else f


# --------------------------------------------------------------------------- inputs

# The record of the inputs read in the open scope.  One record for the whole process, not a
# context variable: a command reads some inputs in helper threads (a stream's header is read
# while a model loads), which do not see the context of the thread that opened the scope.
_inputs_lock = threading.Lock()
_inputs_seen: set[tuple[int, int]] | None = None
_inputs_depth = 0


@contextlib.contextmanager
def input_scope() -> Iterator[None]:
    """Record the regular files read as inputs inside the block, in every thread of the
    process (nested scopes, and scopes open at once in several threads, share one record,
    kept until the last of them ends)."""
    global _inputs_seen, _inputs_depth
    with _inputs_lock:
        _inputs_depth += 1
        if _inputs_seen is None:
            _inputs_seen = set()
    try:
        yield
    finally:
        with _inputs_lock:
            _inputs_depth -= 1
            if _inputs_depth == 0:
                _inputs_seen = None


def tracks_inputs(fn: Callable) -> Callable:
    """Decorator: run ``fn`` inside :func:`input_scope`."""
    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        with input_scope():
            return fn(*a, **kw)
    return wrapper


def _identity(st: os.stat_result) -> tuple[int, int] | None:
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def note_input(src: str | os.PathLike[str] | int | IO[Any]) -> None:
    """Record that the current command reads ``src`` (a path, a descriptor or an open
    file); only regular files are recorded.  A no-op outside :func:`input_scope`."""
    if _inputs_seen is None:
        return
    try:
        if isinstance(src, int):
            st = os.fstat(src)
        elif isinstance(src, (str, os.PathLike)):
            st = os.stat(src)
        else:
            st = os.fstat(src.fileno())
    except (OSError, ValueError, AttributeError, TypeError):
        return
    ident = _identity(st)
    with _inputs_lock:
        if ident is not None and _inputs_seen is not None:
            _inputs_seen.add(ident)


def check_not_input(path: str | int, shown: str | None = None) -> None:
    """UsageError if the existing file ``path`` (or the open descriptor ``path``, e.g.
    stdout) is one of the inputs read so far."""
    seen = _inputs_seen
    if not seen:
        return
    try:
        ident = _identity(os.fstat(path) if isinstance(path, int) else os.stat(path))
    except (OSError, ValueError):
        return
    if ident is not None and ident in seen:
        if isinstance(path, int):
            raise UsageError(f"{shown or 'stdout'} is redirected to one of the inputs of this command; "
                             f"refusing to write into it (choose another output)")
        raise UsageError(f"{shown or path} is also an input of this command; refusing to overwrite it "
                         f"(choose another output)")


def _lock_error(path: str) -> SoundtokError:
    return SoundtokError(f"{path} is being written by another soundtok process (a --resume run?); "
                         f"not replacing it")


@contextlib.contextmanager
def _hold_lock(path: str, shown: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the existing file ``path`` during the block (so that no
    ``--resume`` run can start appending to it meanwhile); SoundtokError if another process
    holds one.  A missing file, or no ``fcntl`` (not POSIX), is no lock."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise _lock_error(shown) from None
        yield
    finally:
        os.close(fd)


def check_not_locked(path: str, shown: str | None = None) -> None:
    """SoundtokError if another process holds a lock on the existing file ``path``."""
    with _hold_lock(path, shown or path):
        pass


# --------------------------------------------------------------------------- output targets

@dataclass(frozen=True)
class OutputTarget:
    """Where an output goes: ``kind`` is ``"stdout"`` (``-``), ``"direct"`` (a device node,
    a FIFO, a socket, ``/dev/stdout``...: opened and written as it is, never replaced) or
    ``"file"`` (a regular file, existing or not, replaced atomically); ``path`` is what to
    open (for a symbolic link, the file it points to) and ``shown`` the path as given."""

    kind: str
    path: str
    shown: str


def output_target(path: str | os.PathLike[str]) -> OutputTarget:
    """Classify the output path ``path`` (see :class:`OutputTarget`) and check it.

    UsageError for an empty path, a folder or a path ending in ``/``, and an existing
    regular file that is one of the inputs read so far (:func:`note_input`).
    """
    shown = os.fspath(path)
    if shown == "-":
        _check_stdout_not_input()
        return OutputTarget("stdout", "-", "-")
    if not shown or not shown.strip():
        raise UsageError("the output path is empty")
    if "\0" in shown:
        raise UsageError(f"output path {shown!r} contains a NUL character")
    if shown.endswith(("/", os.sep)) or os.path.isdir(shown):
        raise UsageError(f"cannot write {shown}: it is a folder (give a file name)")
    if shown.startswith(_STREAM_PREFIXES):
        check_not_input(shown, shown)  # /dev/stdout redirected to an input is written into, not replaced
        return OutputTarget("direct", shown, shown)
    real = shown
    if os.path.islink(shown):
        real = os.path.realpath(shown)
        if os.path.isdir(real):
            raise UsageError(f"cannot write {shown}: it links to a folder")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise SoundtokError(f"cannot write {shown}: {e.strerror or e}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        return OutputTarget("direct", real, shown)
    if st is not None:
        check_not_input(real, shown)
    return OutputTarget("file", real, shown)


def _check_stdout_not_input() -> None:
    """UsageError if stdout is a regular file that is one of the inputs (``cmd in.wav >> in.wav``):
    what goes to stdout cannot be taken back, so it is refused before anything is written."""
    import sys

    out = getattr(sys, "stdout", None)
    try:
        fd = out.fileno() if out is not None else None
    except (OSError, ValueError, AttributeError):  # not a real file (a test's buffer)
        fd = None
    if fd is not None:
        check_not_input(fd, "stdout")


@contextlib.contextmanager
def _open_direct(target: OutputTarget, mode: str, encoding: str | None) -> Iterator[IO[Any]]:
    try:
        f = open(target.path, mode) if "b" in mode else open(target.path, mode, encoding=encoding or "utf-8",
                                                                 newline="")
    except OSError as e:
        raise SoundtokError(f"cannot write {target.shown}: {e.strerror or e}") from None
    try:
        with f:
            yield f
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise write_error(target.shown, e) from None
        raise


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Open ``path`` for writing so that it is replaced atomically on success.

    Yields a file object opened with ``mode`` (``"w"`` or ``"wb"``) on a
    temporary file created next to the target (same folder, hence same file
    system).  When the block exits normally the data is flushed, fsync'ed, and
    the temporary file is renamed onto the target with :func:`os.replace`.  When
    the block raises (any exception, including ``KeyboardInterrupt`` and the
    CLI's SIGTERM/SIGHUP) the temporary file is deleted and the target is left
    untouched.  Text mode defaults to UTF-8.

    The target is checked by :func:`output_target`: a device node, FIFO or
    ``/dev/stdout``-style path is opened and written directly; a symbolic link
    is written through (the file it points to is replaced; the link stays); a
    file that is one of the command's inputs, or that another soundtok process
    holds locked, is refused -- when the block starts and again just before
    the rename.  Raises :class:`SoundtokError` with one line when the folder
    does not exist or is not writable.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write supports modes 'w' and 'wb', not {mode!r}")
    target = output_target(path)
    if target.kind == "stdout":
        raise ValueError("atomic_write writes files; handle '-' (stdout) before calling it")
    if target.kind == "direct":
        with _open_direct(target, mode, encoding) as f:
            yield f
        return
    real, shown = target.path, target.shown
    check_not_locked(real, shown)
    folder = os.path.dirname(os.path.abspath(real))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(real) + ".", suffix=".tmp")
    except OSError as e:
        raise SoundtokError(f"cannot write {shown}: {e.strerror or e}") from None
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
        with signals_deferred():
            check_not_input(real, shown)  # an input read since the block started
            with _hold_lock(real, shown):
                os.replace(tmp, real)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            raise write_error(shown, e) from None
        raise


# --------------------------------------------------------------------------- signals

#: The signals the CLI turns into a clean stop (KeyboardInterrupt and subclasses).
STOP_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP"))
                     if s is not None)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold back Ctrl-C, SIGTERM and SIGHUP during the block (a line being written, a
    rename committing a file), so that it is never cut in the middle; a signal that
    arrived meanwhile takes effect as soon as the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old: dict[int, Any] = {}
    try:
        for s in STOP_SIGNALS:
            old[s] = signal.signal(s, lambda signum, frame: caught.append(signum))
    except (ValueError, OSError):  # signals are not available here
        for s, h in old.items():
            signal.signal(s, h)
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if caught:
            s = caught[0]
            h = old[s]
            if callable(h):
                h(s, None)
            elif h == signal.SIG_DFL:
                if s == signal.SIGINT:
                    raise KeyboardInterrupt
                signal.raise_signal(s)


# --------------------------------------------------------------------------- bounded reading

def spool(stream: IO[bytes], label: str, first: bytes = b"", limit: int | None = None) -> IO[bytes]:
    """Copy ``first`` and the rest of the binary ``stream`` into an anonymous temporary
    file (it disappears when closed, or when the process ends however it ends), rewound.

    At most ``limit`` bytes (default :data:`SPOOL_MAX_BYTES`); more, or a full temporary
    disk, is a one-line SoundtokError naming ``label``."""
    limit = SPOOL_MAX_BYTES if limit is None else limit
    try:
        f = tempfile.TemporaryFile(prefix="soundtok-spool-")
    except OSError as e:
        raise SoundtokError(f"cannot copy {label} to a temporary file: {e.strerror or e}") from None
    try:
        n = 0
        block = first
        while True:
            if block:
                n += len(block)
                if n > limit:
                    raise SoundtokError(f"{label}: more than {_size(limit)} arrived through a pipe; "
                                        f"give it as a file (a pipe is copied to a temporary file of at most "
                                        f"{_size(limit)} to be decoded)")
                f.write(block)
            block = stream.read(1 << 20)
            if not block:
                break
        f.seek(0)
        return f
    except OSError as e:
        f.close()
        reason = e.strerror or str(e)
        raise SoundtokError(f"cannot copy {label} to a temporary file: {reason}") from None
    except BaseException:
        f.close()
        raise


def _size(n: int) -> str:
    for unit, k in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << k and n % (1 << k) == 0:
            return f"{n >> k} {unit}"
    return f"{n} bytes"


def read_line(f: IO[Any], name: str, lineno: int, error: type[SoundtokError] = SoundtokError,
              limit: int | None = None) -> Any:
    """``f.readline()`` that refuses a line longer than ``limit`` bytes/characters (default
    :data:`LINE_MAX_BYTES`) with one line naming ``name`` and ``lineno`` (1-based)."""
    limit = LINE_MAX_BYTES if limit is None else limit
    line = f.readline(limit + 1)
    if len(line) > limit:
        raise error(f"{name} line {lineno} is longer than {_size(limit)}; not a line of this format")
    return line


def json_too_deep(obj: Any, max_depth: int = JSON_MAX_DEPTH) -> bool:
    """True when objects/arrays in ``obj`` nest deeper than ``max_depth`` (checked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, dict):
            children = x.values()
        elif isinstance(x, list):
            children = x
        else:
            continue
        if d > max_depth:
            return True
        stack.extend((c, d + 1) for c in children if isinstance(c, (dict, list)))
    return False


def loads_json(text: str | bytes, what: str, error: type[SoundtokError] = UsageError,
               max_depth: int = JSON_MAX_DEPTH, constants: bool = False) -> Any:
    """Parse JSON given by a user (an option value, a manifest line, a config file).

    NaN/Infinity (not JSON; accepted with ``constants``, for data whose items are
    checked one by one later), nesting deeper than ``max_depth`` and numbers too
    large to convert are one ``error`` (a usage error by default) naming ``what``."""
    import json

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not valid JSON")

    try:
        obj = json.loads(text) if constants else json.loads(text, parse_constant=no_constants)
    except RecursionError:
        raise error(f"{what}: JSON nested too deeply") from None
    except (ValueError, TypeError) as e:
        reason = str(e).splitlines()[0] if str(e) else "invalid JSON"
        raise error(f"{what}: invalid JSON ({reason})") from None
    except MemoryError:
        raise error(f"{what}: JSON too large to read") from None
    if json_too_deep(obj, max_depth):
        raise error(f"{what}: JSON nested deeper than {max_depth} levels")
    return obj


def iter_jsonl(f: IO[str], name: str, error: type[SoundtokError] = SoundtokError,
               constants: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, parsed value)`` for each non-blank line of a JSON
    Lines text stream; a line that is not JSON (or hostile JSON, see
    :func:`loads_json`, or longer than :data:`LINE_MAX_BYTES`) raises ``error``
    with one line naming ``name`` and the line number.  ``constants``: accept
    NaN/Infinity (see :func:`loads_json`)."""
    n = 0
    while True:
        n += 1
        line = read_line(f, name, n, error)
        if not line:
            return
        if not line.strip():
            continue
        yield n, loads_json(line, f"{name} line {n}", error, constants=constants)
