"""Reading audio: decoding a file, bytes or a stream into a mono waveform.

* :func:`load_audio` turns a file (or bytes) into a mono float32 waveform of
  shape (T,) in [-1, 1] at the requested sample rate.  Decoding uses soundfile
  (libsndfile: WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...); when that fails and
  ``ffmpeg`` is on PATH the file is converted through ffmpeg instead.  Channels
  are averaged; resampling uses soxr at "HQ" quality.
* :class:`AudioStream` decodes the same samples block by block.

Naming inputs (files, folders, globs, manifests, ``-``) is
:mod:`soundtok.inputs`'s business, writing audio :mod:`soundtok.audio_out`'s.
Every problem with an input is a one-line :class:`~soundtok.errors.AudioError`.
torch is imported only when a tensor is created.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Union

import numpy as np
import soundfile as sf
import soxr

from soundtok.errors import AudioError, SoundtokError
from soundtok.fileio import note_input, spool

if TYPE_CHECKING:
    import torch

__all__ = ["AudioStream", "load_audio", "read_audio"]

AudioInput = Union[str, "os.PathLike[str]", bytes, IO[bytes]]


# --------------------------------------------------------------------------- decoding

@contextlib.contextmanager
def _c_stderr_quiet(on: bool = True) -> Iterator[None]:
    """Silence what C libraries print on file descriptor 2 during the block: libmpg123
    (inside libsndfile) writes notes such as "Illegal Audio-MPEG-Header ... Trying to
    resync" there for ordinary MP3 files.  soundtok's own messages are not written
    meanwhile; a decoding failure is still reported, as one line, by the caller."""
    if not on:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        os.close(saved)
        yield
        return
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def short_reason(text: str, limit: int = 120) -> str:
    """The last line of an error text, shortened: the most specific part."""
    line = (text.strip().splitlines() or ["unknown error"])[-1].strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _ffmpeg_to_wav(path: str | None, data: Any, out: str) -> bool:
    """Convert ``path`` (or ``data``: bytes, or a seekable binary file with a
    descriptor) to a float32 WAV file ``out`` with ``ffmpeg``, keeping the
    sample rate and channels; False if ffmpeg is missing or fails.

    The input is passed as an argument list (never through a shell), as
    ``file:<path>`` so that names starting with ``-`` are not read as options.
    """
    exe = shutil.which("ffmpeg")
    if exe is None:
        return False
    src = "pipe:0" if path is None else "file:" + os.path.abspath(path)
    cmd = [exe, "-hide_banner", "-nostats", "-loglevel", "error", "-i", src,
           "-map", "0:a:0", "-vn", "-c:a", "pcm_f32le", "-f", "wav", "-y", out]
    piped = path is None and isinstance(data, (bytes, bytearray, memoryview))
    stdin: Any = subprocess.DEVNULL
    if path is None and not piped:  # a real file object: ffmpeg reads it from the start
        data.seek(0)
        stdin = data
    try:
        proc = subprocess.run(cmd, input=bytes(data) if piped else None,
                              stdin=None if piped else stdin,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except (OSError, ValueError):
        return False
    return proc.returncode == 0 and os.path.isfile(out)


def _ffmpeg_decode(path: str | None, data: bytes | None) -> tuple[np.ndarray, int] | None:
    """Decode through ``ffmpeg`` into a float WAV; None if ffmpeg is missing or fails."""
    with tempfile.TemporaryDirectory(prefix="soundtok-ffmpeg-") as tmp:
        out = os.path.join(tmp, "decoded.wav")
        if not _ffmpeg_to_wav(path, data, out):
            return None
        try:
            wav, sr = sf.read(out, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError):
            return None
        return wav, int(sr)


def _check_kind(src: Any, label: str) -> None:
    """AudioError for a WAV cut short (its header announces more than the file holds): decoders
    would read what is there, silently short."""
    from soundtok.sniff import read_head, wav_truncation

    head, size = read_head(src)
    why = wav_truncation(head, size)
    if why:
        raise AudioError(f"{label} is a truncated WAV file: it {why}")


def _undecodable(src: Any, label: str, reason: str) -> AudioError:
    """The error for input no decoder reads, naming a token stream as such."""
    from soundtok.sniff import is_token_stream, read_head

    if is_token_stream(read_head(src, 4096)[0]):
        return AudioError(f"{label}: this is a token stream, not audio "
                          f"(soundtok detokenize turns it into audio)")
    return AudioError(f"cannot decode {label} as audio: {reason.rstrip('.')}")


def _decode(path: str | None, data: Any, label: str) -> tuple[np.ndarray, int]:
    """Decode to (frames, channels) float32 and the file's sample rate (Hz);
    ``data`` is bytes or a seekable binary file (a spooled pipe)."""
    if path is None and isinstance(data, (bytes, type(None))) and not data:
        raise AudioError(f"cannot decode {label} as audio: the input is empty")
    _check_kind(path if path is not None else data, label)
    try:
        src = path if path is not None else (io.BytesIO(data) if isinstance(data, bytes) else data)
        with _c_stderr_quiet():
            wav, sr = sf.read(src, dtype="float32", always_2d=True)
        return wav, int(sr)
    except (sf.SoundFileError, RuntimeError, TypeError) as e:
        reason = getattr(e, "error_string", None) or short_reason(str(e))
    decoded = _ffmpeg_decode(path, data)
    if decoded is None:
        raise _undecodable(path if path is not None else data, label, reason)
    return decoded


#: Bytes of a pipe read first, to recognise the audio format before copying the rest.
PROBE_BYTES = 1 << 20


def _probe(prefix: bytes, label: str) -> None:
    """AudioError unless the first bytes of a pipe look like audio to libsndfile or
    ffmpeg, so that a pipe of something else (``/dev/zero``, a text) is refused at
    once instead of being copied to disk first."""
    if not prefix:
        raise AudioError(f"cannot decode {label} as audio: the input is empty")
    try:
        with _c_stderr_quiet():
            sf.info(io.BytesIO(prefix))
        return
    except (sf.SoundFileError, RuntimeError, TypeError) as e:
        reason = getattr(e, "error_string", None) or short_reason(str(e))
    exe = shutil.which("ffmpeg")
    if exe is not None:
        try:
            proc = subprocess.run([exe, "-hide_banner", "-nostats", "-loglevel", "error", "-i", "pipe:0",
                                   "-map", "0:a:0", "-t", "0", "-f", "null", "-"], input=prefix,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            if proc.returncode == 0:
                return
        except (OSError, subprocess.SubprocessError):
            return  # ffmpeg could not say: let decoding decide
    raise AudioError(f"cannot decode {label} as audio: {reason.rstrip('.')}")


def spool_audio(stream: IO[bytes], label: str) -> IO[bytes]:
    """A pipe or stdin as a seekable temporary file (deleted when closed), so that it
    can be decoded as a stream: the first bytes are checked to be audio
    (:func:`_probe`), then at most :data:`soundtok.fileio.SPOOL_MAX_BYTES` are
    copied.  Memory stays bounded whatever arrives."""
    try:
        prefix = stream.read(PROBE_BYTES)
    except OSError as e:
        raise AudioError(f"cannot read {label}: {e.strerror or e}") from None
    _probe(prefix, label)
    try:
        return spool(stream, label, first=prefix)
    except AudioError:
        raise
    except SoundtokError as e:  # too large, or no temporary space: this input fails
        raise AudioError(str(e)) from None


def _check_path(path: str, label: str) -> tuple[str | None, Any]:
    """``(path, None)`` for a readable, non-empty regular file; ``(None, file)`` for
    a pipe or device (/dev/stdin, ``<(...)``), copied to a temporary file of bounded
    size (:func:`spool_audio`); AudioError otherwise."""
    if not os.path.exists(path):
        raise AudioError(f"no such file: {path}")
    if os.path.isdir(path):
        raise AudioError(f"{path} is a directory, not an audio file")
    try:
        if not os.path.isfile(path):  # a pipe such as /dev/stdin or <(...), or a device
            with open(path, "rb") as f:
                return None, spool_audio(f, label)
        if not os.access(path, os.R_OK):
            raise PermissionError(13, "permission denied")
        if os.path.getsize(path) == 0:
            raise AudioError(f"cannot decode {path} as audio: the input is empty")
    except OSError as e:
        raise AudioError(f"cannot read {label}: {e.strerror or e}") from None
    except SoundtokError as e:
        raise AudioError(str(e)) from None
    note_input(path)
    return path, None


def read_audio(src: AudioInput, sample_rate: int | None = None, min_sr: int = 4000,
               name: str | None = None) -> tuple[torch.Tensor, int]:
    """Load ``src`` as a mono waveform and return ``(wav, rate)``.

    ``src`` is a path, ``bytes`` or a binary file object (read to its end).
    ``wav`` is a float32 tensor of shape (T,) with values in [-1, 1] at
    ``rate`` Hz: ``sample_rate`` when given (resampled with soxr, T =
    round(frames * sample_rate / file_rate)), else the file's own rate.
    Multi-channel audio is averaged.  ``name`` labels the input in messages
    (default: the path, or ``<stdin>``).

    Raises AudioError for a missing path, a folder, undecodable data, a file
    with no samples, NaN/infinite samples, or a sample rate below ``min_sr`` Hz.
    """
    if sample_rate is not None and (not isinstance(sample_rate, int) or isinstance(sample_rate, bool)
                                    or sample_rate <= 0):
        raise ValueError(f"sample rate must be a positive int, not {sample_rate!r}")
    path: str | None = None
    data: Any = None
    if isinstance(src, (str, os.PathLike)):
        label = name or os.fspath(src)
        path, data = _check_path(os.fspath(src), label)
    else:
        data = bytes(src) if isinstance(src, (bytes, bytearray, memoryview)) else src.read()
        label = name or "<stdin>"

    try:
        wav, sr = _decode(path, data, label)
    finally:
        if path is None and hasattr(data, "close"):
            data.close()
    if wav.shape[0] == 0:
        raise AudioError(f"{label} contains no audio samples")
    if not np.isfinite(wav).all():
        raise AudioError(f"{label} contains NaN or infinite samples")
    if sr < min_sr:
        raise AudioError(f"{label} has sample rate {sr} Hz; at least {min_sr} Hz is needed")
    mono = wav.mean(axis=1, dtype=np.float32) if wav.shape[1] > 1 else wav[:, 0]
    rate = sr if sample_rate is None else sample_rate
    if sr != rate:
        mono = soxr.resample(mono, sr, rate, quality="HQ")
    if mono.shape[0] == 0:
        raise AudioError(f"{label} is too short: {wav.shape[0]} samples at {sr} Hz")
    mono = np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)
    import torch

    return torch.from_numpy(np.ascontiguousarray(mono)), rate


def load_audio(src: AudioInput, target_sr: int, min_sr: int = 4000,
               name: str | None = None) -> torch.Tensor:
    """Load ``src`` as a mono waveform resampled to ``target_sr`` Hz: a float32
    tensor of shape (T,) in [-1, 1] (see :func:`read_audio`, which also keeps
    the file's own rate when asked)."""
    if not isinstance(target_sr, int) or target_sr <= 0:
        raise ValueError(f"target_sr must be a positive int, not {target_sr!r}")
    return read_audio(src, target_sr, min_sr, name)[0]


class AudioStream:
    """An audio input decoded block by block: mono float32 at ``target_sr`` Hz.

    The streaming counterpart of :func:`load_audio`, with the same checks and
    messages (missing file, folder, undecodable data, no samples, NaN or
    infinite samples, sample rate below ``min_sr``) and the same samples: the
    blocks of :meth:`blocks` concatenate to exactly what :func:`load_audio`
    returns (channels averaged per frame, soxr "HQ" resampling run as a stream,
    which equals one-shot resampling, values clamped to [-1, 1]).  Memory does
    not grow with the length of the input.

    ``src`` is a path, ``bytes`` or a seekable binary file object.  Files
    libsndfile cannot read are converted by ``ffmpeg`` into a temporary WAV
    file (on disk, deleted by :meth:`close`).  Use as a context manager::

        with AudioStream("long.flac", 16000) as st:
            for block in st.blocks():
                ...
    """

    def __init__(self, src: AudioInput, target_sr: int, min_sr: int = 4000,
                 name: str | None = None) -> None:
        if not isinstance(target_sr, int) or target_sr <= 0:
            raise ValueError(f"target_sr must be a positive int, not {target_sr!r}")
        self.target_sr, self._tmp, self._spooled = target_sr, None, None
        self.num_samples = 0  # samples delivered so far, at target_sr
        path: str | None = None
        data: Any = None
        if isinstance(src, (str, os.PathLike)):
            self.label = name or os.fspath(src)
            path, data = _check_path(os.fspath(src), self.label)
            if path is None:
                self._spooled = data  # a pipe's copy: closed (and so deleted) with the stream
        elif isinstance(src, (bytes, bytearray, memoryview)):
            data, self.label = bytes(src), name or "<stdin>"
        else:
            data, self.label = src, name or "<stdin>"
        if isinstance(data, bytes) and not data:
            raise AudioError(f"cannot decode {self.label} as audio: the input is empty")
        self._snd = self._open(path, data)
        sr = int(self._snd.samplerate)
        self.input_rate, self.channels = sr, int(self._snd.channels)
        if sr < min_sr:
            self.close()
            raise AudioError(f"{self.label} has sample rate {sr} Hz; at least {min_sr} Hz is needed")

    def _open(self, path: str | None, data: Any) -> Any:
        _check_kind(path if path is not None else data, self.label)
        try:
            with _c_stderr_quiet():
                if path is not None:
                    return sf.SoundFile(path)
                return sf.SoundFile(io.BytesIO(data) if isinstance(data, bytes) else data)
        except (sf.SoundFileError, RuntimeError, TypeError) as e:
            reason = getattr(e, "error_string", None) or short_reason(str(e))
        self._tmp = tempfile.TemporaryDirectory(prefix="soundtok-ffmpeg-")
        out = os.path.join(self._tmp.name, "decoded.wav")
        if _ffmpeg_to_wav(path, data, out):
            try:
                return sf.SoundFile(out)
            except (sf.SoundFileError, RuntimeError):
                pass
        self._tmp.cleanup()
        self._tmp = None
        raise _undecodable(path if path is not None else data, self.label, reason)

    @property
    def duration(self) -> float | None:
        """Length in seconds from the file's header, or None when it is not known."""
        frames = self._snd.frames
        if not isinstance(frames, int) or frames < 0 or frames >= 1 << 62:
            return None
        return frames / self.input_rate

    def blocks(self, block_frames: int = 1 << 17) -> Iterator[np.ndarray]:
        """Yield the signal as float32 mono blocks at ``target_sr`` (``block_frames``
        input frames at a time); raises AudioError for NaN/infinite samples, an
        input without samples, or one too short to give a sample at ``target_sr``."""
        resampler = None
        if self.input_rate != self.target_sr:
            resampler = soxr.ResampleStream(self.input_rate, self.target_sr, 1,
                                            dtype="float32", quality="HQ")
        frames_in = 0
        mpeg = self._snd.format in ("MPEG", "MP3")
        while True:
            try:
                with _c_stderr_quiet(mpeg):
                    blk = self._snd.read(block_frames, dtype="float32", always_2d=True)
            except (sf.SoundFileError, RuntimeError) as e:
                reason = getattr(e, "error_string", None) or short_reason(str(e))
                raise AudioError(f"cannot decode {self.label} as audio: {reason}") from None
            if blk.shape[0] == 0:
                break
            frames_in += blk.shape[0]
            if not np.isfinite(blk).all():
                raise AudioError(f"{self.label} contains NaN or infinite samples")
            mono = blk.mean(axis=1, dtype=np.float32) if blk.shape[1] > 1 else blk[:, 0]
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=False)
            if mono.shape[0]:
                yield self._deliver(mono)
        if frames_in == 0:
            raise AudioError(f"{self.label} contains no audio samples")
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if tail.shape[0]:
                yield self._deliver(tail)
        if self.num_samples == 0:
            raise AudioError(f"{self.label} is too short: {frames_in} samples at "
                             f"{self.input_rate} Hz")

    def _deliver(self, x: np.ndarray) -> np.ndarray:
        self.num_samples += x.shape[0]
        return np.ascontiguousarray(np.clip(x, -1.0, 1.0), dtype=np.float32)

    def read_all(self) -> np.ndarray:
        """The whole signal as one float32 array (what :func:`load_audio` returns)."""
        parts = list(self.blocks())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:
        snd, self._snd = getattr(self, "_snd", None), None
        if snd is not None:
            snd.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        spooled, self._spooled = getattr(self, "_spooled", None), None
        if spooled is not None:
            spooled.close()

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
