"""Writing audio: a mono waveform to stdout or, atomically, to a file.

* :func:`open_audio_writer` writes a signal piece by piece (memory flat in
  duration); :func:`write_audio` writes a whole one.  Formats: WAV, FLAC,
  OGG/Vorbis, MP3 (libsndfile through soundfile), chosen by ``fmt`` or the
  file's extension.
* :func:`output_path_for` chooses the file for one item of a batch.

Reading audio is :mod:`soundtok.audio`.  A file output appears complete or not
at all (:func:`soundtok.fileio.atomic_write`); a full disk is one
:class:`~soundtok.errors.SoundtokError` naming the output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
import soundfile as sf

from soundtok.errors import SoundtokError, UsageError
from soundtok.fileio import atomic_write, output_target, std_stream

from .audio import short_reason

__all__ = ["open_audio_writer", "output_path_for", "write_audio"]


_WRITE_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"),
                  "oga": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}


def _write_format(fmt: str) -> tuple[str, str]:
    key = fmt.lower().lstrip(".")
    if key not in _WRITE_FORMATS or _WRITE_FORMATS[key][0] not in sf.available_formats():
        usable = [k for k, (f, _) in _WRITE_FORMATS.items() if f in sf.available_formats()]
        raise UsageError(f"cannot write audio format {fmt!r} (supported: {', '.join(usable)})")
    return _WRITE_FORMATS[key]


class _AudioSink:
    """Incremental writer handed out by :func:`open_audio_writer`."""

    def __init__(self, snd: Any) -> None:
        self._snd = snd

    def write(self, wav: Any) -> None:
        x = wav.detach().cpu().numpy() if hasattr(wav, "detach") else np.asarray(wav)
        x = np.squeeze(x) if x.ndim == 2 and 1 in x.shape else x
        if x.ndim != 1:
            raise ValueError(f"audio writers take mono signals of shape (T,), got {x.shape}")
        self._snd.write(np.clip(np.nan_to_num(x.astype(np.float32), nan=0.0), -1.0, 1.0))


class _GuardedFile:
    """A file proxy for soundfile's virtual I/O.  soundfile calls ``write``/``seek``
    from C callbacks, where a raised OSError (a full disk) is printed as a
    traceback and then ignored; here the first OSError is recorded instead, the
    call reports failure to libsndfile, and :func:`open_audio_writer` raises
    one clear error."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f, self.error = f, None

    def _guard(self, fn: Any, failed: Any, *args: Any) -> Any:
        if self.error is not None:
            return failed
        try:
            return fn(*args)
        except OSError as e:
            self.error = e
            return failed

    def write(self, data: bytes) -> int:
        return self._guard(self._f.write, 0, data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._guard(self._f.seek, -1, offset, whence)

    def tell(self) -> int:
        return self._guard(self._f.tell, -1)

    def read(self, n: int = -1) -> bytes:
        return self._guard(self._f.read, b"", n)

    def flush(self) -> None:
        self._guard(self._f.flush, None)


@contextlib.contextmanager
def open_audio_writer(dest: str, sr: int, fmt: str | None = None,
                      subtype: str | None = None) -> Iterator[_AudioSink]:
    """Write a mono signal at ``sr`` Hz piece by piece (memory flat in duration).

    ``dest`` ``-`` goes to ``sys.stdout.buffer`` (WAV unless ``fmt`` says
    otherwise), spooled through a temporary file and copied out only when the
    block succeeds -- as does a device, a FIFO or ``/dev/stdout`` (written to,
    never replaced); a file path is written atomically (a symbolic link is
    written through; see :func:`soundtok.fileio.atomic_write`), its format taken from
    ``fmt`` or the extension (wav, flac, ogg, mp3; no extension = wav).
    Samples are clamped to [-1, 1] (NaN becomes 0). ``subtype`` is a soundfile
    subtype (default PCM_16 for WAV/FLAC, VORBIS for OGG). If the block raises,
    nothing is written; a full disk is one SoundtokError naming ``dest``.
    """
    from soundtok.fileio import DISK_FULL_ERRNOS, write_error

    target = output_target(dest)
    ext = "" if target.kind == "stdout" else os.path.splitext(dest)[1]
    sf_format, default_subtype = _write_format(fmt or ext or "wav")
    subtype = subtype or default_subtype
    if not sf.check_format(sf_format, subtype):
        raise UsageError(f"audio subtype {subtype!r} cannot be used with {sf_format}")
    guard: _GuardedFile | None = None
    streamed = target.kind != "file"
    where = f"a temporary file for {'stdout' if dest == '-' else dest}" if streamed else dest
    try:
        if streamed:  # stdout, a device, a FIFO: no seeking there, so the file is made aside first
            with tempfile.TemporaryFile() as f:
                guard = _GuardedFile(f)
                with sf.SoundFile(guard, "w", sr, 1, subtype, format=sf_format) as snd:
                    yield _AudioSink(snd)
                if guard.error is not None:
                    raise guard.error
                f.seek(0)
                out_name = "stdout" if target.kind == "stdout" else dest
                try:
                    if target.kind == "stdout":
                        out = std_stream("stdout")
                        shutil.copyfileobj(f, out, 1 << 20)
                        out.flush()
                    else:
                        with open(target.path, "wb") as out:
                            shutil.copyfileobj(f, out, 1 << 20)
                except OSError as e:
                    if e.errno not in DISK_FULL_ERRNOS and target.kind == "stdout":
                        raise  # BrokenPipeError: the reader went away; the CLI exits quietly
                    raise write_error(out_name, e) from None
        else:
            with atomic_write(dest, "wb") as f:
                guard = _GuardedFile(f)
                with sf.SoundFile(guard, "w", sr, 1, subtype, format=sf_format) as snd:
                    yield _AudioSink(snd)
                if guard.error is not None:
                    raise guard.error
    except (sf.SoundFileError, RuntimeError, AssertionError) as e:
        if guard is not None and guard.error is not None:
            raise write_error(where, guard.error) from None
        reason = getattr(e, "error_string", None) or short_reason(str(e)) or type(e).__name__
        raise SoundtokError(f"cannot write {dest}: {reason}") from None
    except OSError as e:
        if (guard is not None and e is guard.error) or e.errno in DISK_FULL_ERRNOS:
            raise write_error(where, e) from None
        raise


def write_audio(dest: str, wav: Any, sr: int, fmt: str | None = None,
                subtype: str | None = None) -> None:
    """Write a whole mono waveform (shape (T,) or (1, T), a tensor or an array)
    at ``sr`` Hz to ``dest`` (``-`` = stdout); see :func:`open_audio_writer`."""
    with open_audio_writer(dest, sr, fmt, subtype) as w:
        w.write(wav)


def output_path_for(dest: str, item_id: str, n_items: int, ext: str = ".wav") -> str:
    """Where to write item ``item_id`` of a batch of ``n_items``.

    If ``dest`` is a folder (it exists as one or ends with ``/``) the result is
    ``dest/<item_id><ext>`` and missing parent folders are created (ids such as
    ``spk1/utt3`` make subfolders; ids with ``..`` or empty parts are refused).
    Otherwise ``dest`` itself is returned, which is a UsageError when there is
    more than one item.
    """
    ext = ext if ext.startswith(".") else "." + ext
    is_dir = dest != "-" and (dest.endswith(("/", os.sep)) or os.path.isdir(dest))
    if not is_dir:
        if n_items > 1:
            where = "stdout" if dest == "-" else dest
            raise UsageError(f"cannot write {n_items} items to {where}; "
                             f"give a folder (ending in /) to write one file per item")
        return dest
    parts = item_id.split("/")
    if not item_id or "\0" in item_id or any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"item id {item_id!r} cannot be used as a file name")
    try:
        item_id.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise UsageError(f"item id {item_id!r} cannot be used as a file name (not valid Unicode)") from None
    path = os.path.join(dest, *parts) + ext
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError as e:
        raise SoundtokError(f"cannot create folder {os.path.dirname(path)}: "
                            f"{e.strerror or e}") from None
    return path
