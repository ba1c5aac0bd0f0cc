"""The tokenize pipeline: decode (optionally in worker processes), encode in
batches, stream long inputs, deliver items in input order.  What a codec does
with a batch or a stream is the codec's own business (:class:`soundtok.codecs.Codec`);
this module only moves audio to it and codes back, in order.

* **Decoding.** :func:`decode_clip` opens an input as an
  :class:`~soundtok.audio.AudioStream`.  A clip whose header says it is at most
  ``whole_max_seconds`` long is decoded whole (and resampled) -- by one of
  ``workers`` processes when ``workers > 0`` (``spawn``ed, they import numpy,
  soundfile and soxr only; at most ``4 * workers`` clips are in flight, so
  memory stays bounded).  Longer inputs, inputs of unknown length and audio
  from stdin are streamed in the main process.
* **Encoding** happens in the main process.  Decoded clips are collected in a
  window (``4 * batch_size`` clips or 10 minutes of audio at most) and handed
  to :meth:`~soundtok.codecs.Codec.encode_clips`, which may encode several
  together (the built-in codec batches clips with the same number of token
  frames; its codes equal one-by-one encoding, tested).  The window's items
  are then delivered in input order as soon as the window is full.  The
  windows depend only on the input order, never on how fast workers decode,
  so the output is the same for any ``--workers`` (a flush whenever decoding
  lagged made batch composition timing-dependent, and float rounding then
  flipped 3-5 near-tie codes in 23397 between worker counts on 1000 clips).
* **Long audio** goes through the codec's
  :meth:`~soundtok.codecs.Codec.stream_encoder`, fed blocks as they are
  decoded: the codes equal whole-file encoding and memory does not grow with
  duration.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .audio import AudioStream
from .errors import AudioError, SoundtokError
from .inputs import AudioSource

__all__ = ["decode_clip", "iter_items", "Encoded", "WHOLE_MAX_SECONDS"]

#: Clips up to this long are decoded whole (possibly in a worker) and batched;
#: longer ones are streamed.
WHOLE_MAX_SECONDS = 120.0
#: Input frames read per block when streaming.
BLOCK_FRAMES = 1 << 17


# --------------------------------------------------------------------------- decoding

def decode_clip(path: str | None, target_sr: int, whole_max_seconds: float,
                stream: Any = None) -> tuple[str, Any]:
    """Decode one input: ``("wav", float32 array)`` for a clip decoded whole,
    ``("long", None)`` for one to be streamed, ``("error", message)``.
    Runs in worker processes, so it returns rather than raises."""
    try:
        with AudioStream(path if path is not None else stream, target_sr) as st:
            d = st.duration
            if d is None or d > whole_max_seconds:
                return "long", None
            return "wav", st.read_all()
    except AudioError as e:
        return "error", str(e)
    except MemoryError:
        return "error", f"{path}: out of memory while decoding"


def _worker_init(parent: int) -> None:
    """Worker processes ignore Ctrl-C, SIGTERM and SIGHUP (sent to the whole process
    group by a terminal, SLURM or ``kill -- -PGID``: the main process cleans up and
    stops them) and exit when the main process is gone (e.g. after ``kill -9``)."""
    import signal
    import time

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    try:  # Linux: be killed with the parent
        import ctypes

        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with SIGHUP ignored (it ignores SIGINT and
    SIGTERM itself): a hang-up sent to the process group must not kill it while the main
    process cleans up, or a restarted tracker prints a traceback about unknown semaphores."""
    import signal
    import threading

    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return
    from multiprocessing import resource_tracker

    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, old)


class _Decoder:
    """Decode sources in order, ``workers`` processes ahead of the consumer."""

    def __init__(self, workers: int, target_sr: int, whole_max_seconds: float) -> None:
        self.workers, self.sr, self.whole_max = workers, target_sr, whole_max_seconds
        self.pool = None
        if workers > 0:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            _start_resource_tracker()
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_init, initargs=(os.getpid(),))

    def _local(self, src: AudioSource) -> tuple[str, Any]:
        if src.path is None:  # stdin, spooled
            return decode_clip(None, self.sr, self.whole_max, stream=src.open())
        return decode_clip(src.path, self.sr, self.whole_max)

    def map(self, sources: Iterator[AudioSource]) -> Iterator[tuple[AudioSource, str, Any]]:
        if self.pool is None:
            for src in sources:
                kind, payload = self._local(src)
                yield src, kind, payload
            return
        from concurrent.futures.process import BrokenProcessPool

        ahead = 4 * self.workers
        pending: collections.deque = collections.deque()
        it = iter(sources)
        exhausted = False
        while True:
            while not exhausted and len(pending) < ahead:
                src = next(it, None)
                if src is None:
                    exhausted = True
                    break
                fut = None if src.path is None else self.pool.submit(
                    decode_clip, src.path, self.sr, self.whole_max)
                pending.append((src, fut))
            if not pending:
                return
            src, fut = pending[0]
            if fut is not None and not fut.done():
                yield src, "wait", None  # the consumer may use the time (flush its batch)
            pending.popleft()
            if fut is None:
                kind, payload = self._local(src)
            else:
                try:
                    kind, payload = fut.result()
                except BrokenProcessPool:
                    raise SoundtokError(f"a decoding worker died while reading {src.path} "
                                        f"(out of memory, or a crash in the decoder)") from None
            yield src, kind, payload

    def close(self, abort: bool = False) -> None:
        pool, self.pool = self.pool, None
        if pool is None:
            return
        if abort:  # Ctrl-C, SIGTERM or an error: stop the workers now (they ignore SIGTERM), then
            # let the pool clean up
            for p in list((getattr(pool, "_processes", None) or {}).values()):
                try:
                    p.kill()
                except (OSError, AttributeError, ValueError):
                    pass
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- the loop

@dataclass
class Encoded:
    """One result of :func:`iter_items`: a source and its codes (or an error)."""

    source: AudioSource
    codes: list[list[int]] | None
    num_samples: int = 0
    error: str | None = None


def iter_items(sources: Iterator[AudioSource], codec: Any, *, chunk_seconds: float = 30.0,
               batch_size: int = 16, workers: int = 0, window: int | None = None,
               window_seconds: float = 600.0) -> Iterator[Encoded]:
    """Decode ``sources`` and encode them with ``codec``; yield one
    :class:`Encoded` per source, in input order.  At most ``window`` clips
    (default ``4 * batch_size``; 1 when ``batch_size`` is 1 or the codec does not
    batch, ``codec.batches``) and ``window_seconds`` of
    audio wait for their batch; inputs longer than :data:`WHOLE_MAX_SECONDS`
    (or of unknown length, or on stdin) are streamed when their turn comes."""
    sr = codec.sample_rate
    batch_size = max(1, int(batch_size))
    if window is None:
        window = 1 if batch_size == 1 or not codec.batches else 4 * batch_size
    window = max(1, window)
    decoder = _Decoder(workers, sr, WHOLE_MAX_SECONDS)
    ok = False
    try:
        held: list[tuple[AudioSource, Any, str | None]] = []
        held_samples = 0

        def flush() -> Iterator[Encoded]:
            nonlocal held, held_samples
            wavs = [w for _, w, err in held if err is None]
            codes = iter(codec.encode_clips(wavs, chunk_seconds, batch_size)) if wavs else iter(())
            batch, held, held_samples = held, [], 0
            for src, w, err in batch:
                if err is not None:
                    yield Encoded(src, None, error=err)
                else:
                    yield Encoded(src, next(codes), int(w.shape[0]))

        for src, kind, payload in decoder.map(sources):
            if kind == "wait":  # decoding is behind; batches stay as input order makes them (see above)
                continue
            if kind == "long":
                yield from flush()
                yield _stream_one(src, codec, chunk_seconds)
                continue
            held.append((src, payload if kind == "wav" else None, payload if kind == "error" else None))
            if kind == "wav":
                held_samples += payload.shape[0]
            if len(held) >= window or held_samples >= window_seconds * sr:
                yield from flush()
        yield from flush()
        ok = True
    finally:
        decoder.close(abort=not ok)


def _stream_one(src: AudioSource, codec: Any, chunk_seconds: float) -> Encoded:
    try:
        with AudioStream(src.open(), codec.sample_rate) as st:
            enc = codec.stream_encoder(chunk_seconds)
            for block in st.blocks(BLOCK_FRAMES):
                enc.push(block)
            codes, n = enc.finish()
    except AudioError as e:
        return Encoded(src, None, error=str(e))
    return Encoded(src, codes, n)
