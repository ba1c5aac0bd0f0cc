"""The tokenize pipeline: decode (optionally in worker processes), encode in
batches of equal length, stream long inputs, deliver items in input order.

* **Decoding.** :func:`decode_clip` opens an input as an
  :class:`~soundtok.audio.AudioStream`.  A clip whose header says it is at most
  ``whole_max_seconds`` long is decoded whole (and resampled) -- by one of
  ``workers`` processes when ``workers > 0`` (``spawn``ed, they import numpy,
  soundfile and soxr only; at most ``4 * workers`` clips are in flight, so
  memory stays bounded).  Longer inputs, inputs of unknown length and audio
  from stdin are streamed in the main process.
* **Encoding** happens in the main process.  Decoded clips are collected in a
  window (``4 * batch_size`` clips or 10 minutes of audio at most); clips with
  the *same number of token frames* are encoded together, ``batch_size`` at a
  time.  Only equal lengths are batched: padding a shorter clip to a longer one
  changes its last codes (the encoder would see silence instead of its
  zero-padded edge), while equal-length batches give exactly the codes of
  one-by-one encoding (tested).  The window's items are then delivered in
  input order as soon as the window is full.  The windows depend only on the
  input order, never on how fast workers decode, so the output is the same
  for any ``--workers`` (a flush whenever decoding lagged made batch
  composition timing-dependent, and float rounding then flipped 3-5 near-tie
  codes in 23397 between worker counts on 1000 clips).
* **Long audio** goes through :class:`StreamEncoder`, which encodes blocks as
  they are decoded with the chunking of
  :meth:`~soundtok.codec.model.SoundCodec.encode_long` (``chunk_tokens``
  frames, 32 frames of real audio as context on each side), so the codes equal
  whole-file encoding and memory does not grow with duration.

LLM-Codec models (whose chunking lives in their own ``encode_long``) are fed
decoded clips one at a time; long inputs stream through
:class:`LLMStreamEncoder`, which cuts them as ``encode_long`` does.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .audio import AudioSource, AudioStream
from .errors import AudioError, SoundtokError

__all__ = ["decode_clip", "StreamEncoder", "ClipEncoder", "iter_items", "WHOLE_MAX_SECONDS"]

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
        if src.stream is not None:
            return decode_clip(None, self.sr, self.whole_max, stream=src.stream)
        if src.path is None:  # bytes
            import io

            return decode_clip(None, self.sr, self.whole_max, stream=io.BytesIO(src.data or b""))
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


# --------------------------------------------------------------------------- encoding

class StreamEncoder:
    """Encode a signal that arrives in blocks, with the chunking of
    ``SoundCodec.encode_long(wav, chunk_tokens)``: the result is identical.

    A chunk of frames ``[a, b)`` is encoded with ``context_tokens`` frames of
    real audio on each side; it is encoded as soon as the audio up to its
    right context has arrived, and audio no chunk needs any more is dropped,
    so memory holds about one chunk whatever the duration.
    """

    def __init__(self, model: Any, chunk_tokens: int, context_tokens: int | None = None) -> None:
        from .codec.model import ENCODE_CONTEXT_TOKENS

        self.model, self.chunk = model, max(1, int(chunk_tokens))
        self.ctx = ENCODE_CONTEXT_TOKENS if context_tokens is None else context_tokens
        self.hop, self.edge = model.cfg.token_hop, model.edge
        self.buf = np.zeros(0, np.float32)
        self.buf_start = 0  # absolute sample index of buf[0]
        self.n = 0  # samples received
        self.a = 0  # next chunk's first frame
        self.codes: list[Any] = []

    def push(self, block: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, np.asarray(block, np.float32)])
        self.n += int(block.shape[0])
        while True:
            b = self.a + self.chunk
            if self.n < (b + self.ctx) * self.hop + self.edge:
                return
            self._encode(self.a, b, b + self.ctx)
            self.a = b
            keep = max(0, (self.a - self.ctx) * self.hop - self.edge)
            if keep > self.buf_start:
                self.buf = self.buf[keep - self.buf_start:].copy()
                self.buf_start = keep

    def finish(self) -> tuple[list[list[int]], int]:
        """``(codes as a (1, T) list, number of samples)`` once the input has ended."""
        total = self.model.num_frames(self.n)
        while self.a < total:
            b = min(total, self.a + self.chunk)
            self._encode(self.a, b, min(total, b + self.ctx))
            self.a = b
        import torch

        codes = torch.cat(self.codes, dim=-1) if self.codes else torch.zeros(1, 0, dtype=torch.long)
        self.buf = np.zeros(0, np.float32)
        return codes.tolist(), self.n

    def _segment(self, start: int, end: int) -> np.ndarray:
        """Samples ``[start, end)`` (absolute), zeros outside ``[0, n)``."""
        out = np.zeros(end - start, np.float32)
        lo, hi = max(start, 0), min(end, self.n)
        if hi > lo:
            if lo < self.buf_start:
                raise AssertionError("StreamEncoder dropped audio it still needed")
            out[lo - start:hi - start] = self.buf[lo - self.buf_start:hi - self.buf_start]
        return out

    def _encode(self, a: int, b: int, e: int) -> None:
        import torch

        s = max(0, a - self.ctx)
        seg = torch.from_numpy(self._segment(s * self.hop - self.edge, e * self.hop + self.edge))
        m = self.model
        with torch.inference_mode(), m.autocast():
            codes = m.codes_from_padded(seg[None].to(m.latent_mean.device))
        self.codes.append(codes[0, :, a - s:b - s].cpu())


class LLMStreamEncoder:
    """Encode a signal that arrives in blocks with an LLM-Codec, cut as
    ``LLMCodec.encode_long(wav, chunk_seconds)`` cuts it: the result is identical.

    A chunk ``[a, b)`` (samples, multiples of the coarsest hop) is encoded,
    within ``[a - ctx, b + ctx)``, as soon as its right context has arrived;
    audio no later chunk needs is dropped, so memory holds about one chunk.
    """

    def __init__(self, model: Any, chunk_seconds: float, context_hops: int = 2) -> None:
        self.model = model
        self.step = model.cfg.chunk_step(chunk_seconds)
        self.ctx = context_hops * model.cfg.max_hop
        self.buf = np.zeros(0, np.float32)
        self.buf_start, self.n, self.a = 0, 0, 0
        self.pieces: list[list[Any]] = [[] for _ in model.cfg.hop_lengths]

    def push(self, block: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, np.asarray(block, np.float32)])
        self.n += int(block.shape[0])
        while self.n >= self.a + self.step + self.ctx:
            b = self.a + self.step
            self._encode(self.a, b, b + self.ctx)
            self.a = b
            keep = max(0, self.a - self.ctx)
            if keep > self.buf_start:
                self.buf = self.buf[keep - self.buf_start:].copy()
                self.buf_start = keep

    def finish(self) -> tuple[list[list[int]], int]:
        """``(codes per scale, number of samples)`` once the input has ended."""
        import torch

        total = self.model.padded_length(self.n)
        while self.a < total:
            b = min(total, self.a + self.step)
            self._encode(self.a, b, min(total, b + self.ctx))
            self.a = b
        self.buf = np.zeros(0, np.float32)
        frames = self.model.num_frames(self.n)
        return [torch.cat(p, dim=-1)[0, :t].tolist() for p, t in zip(self.pieces, frames)], self.n

    def _encode(self, a: int, b: int, hi: int) -> None:
        import torch

        lo = max(0, a - self.ctx)
        seg = np.zeros(hi - lo, np.float32)
        top = min(hi, self.n)
        if top > lo:
            if lo < self.buf_start:
                raise AssertionError("LLMStreamEncoder dropped audio it still needed")
            seg[:top - lo] = self.buf[lo - self.buf_start:top - self.buf_start]
        codes = self.model.encode(torch.from_numpy(seg)[None])
        for k, (c, h) in enumerate(zip(codes, self.model.cfg.hop_lengths)):
            self.pieces[k].append(c[:, (a - lo) // h:(b - lo) // h])


class ClipEncoder:
    """Encode decoded clips: equal-length batches for the sound codec, one by
    one for an LLM-Codec; long inputs are streamed."""

    def __init__(self, model: Any, chunk_seconds: float, batch_size: int = 16) -> None:
        self.model = model
        self.llm_codec = getattr(getattr(model, "cfg", None), "strides", None) is not None
        self.chunk_seconds = chunk_seconds
        self.batch_size = max(1, int(batch_size))
        self.chunk_tokens = 0 if self.llm_codec else max(1, int(chunk_seconds * model.cfg.frame_rate))

    @property
    def whole_max_seconds(self) -> float:
        """Clips longer than this are streamed."""
        return WHOLE_MAX_SECONDS

    def frames(self, n: int) -> int:
        return self.model.num_frames(n)

    def encode_many(self, wavs: list[np.ndarray]) -> list[list[list[int]]]:
        """Codes of each clip (a list per codebook), as one-by-one encoding gives them."""
        import torch

        out: list[Any] = [None] * len(wavs)
        if self.llm_codec:
            for i, w in enumerate(wavs):
                codes = self.model.encode_long(torch.from_numpy(w), chunk_seconds=self.chunk_seconds)
                out[i] = [c[0].tolist() for c in codes]
            return out
        groups: dict[int, list[int]] = collections.defaultdict(list)
        for i, w in enumerate(wavs):
            t = self.frames(w.shape[0])
            if t > self.chunk_tokens:  # several chunks: the long-signal path, alone
                out[i] = self.model.encode_long(torch.from_numpy(w), chunk_tokens=self.chunk_tokens).tolist()
            else:
                groups[t].append(i)
        hop = self.model.cfg.token_hop
        for t, idx in groups.items():
            for j in range(0, len(idx), self.batch_size):
                part = idx[j:j + self.batch_size]
                x = np.zeros((len(part), t * hop), np.float32)
                for r, i in enumerate(part):
                    x[r, :wavs[i].shape[0]] = wavs[i]
                codes = self.model.encode(torch.from_numpy(x))  # (B, 1, t), pads to t*hop itself
                for r, i in enumerate(part):
                    out[i] = codes[r].tolist()
        return out

    def encode_stream(self, stream: AudioStream) -> tuple[list[list[int]], int]:
        """Codes and sample count of an input streamed block by block."""
        enc: Any = LLMStreamEncoder(self.model, self.chunk_seconds) if self.llm_codec \
            else StreamEncoder(self.model, self.chunk_tokens)
        for block in stream.blocks(BLOCK_FRAMES):
            enc.push(block)
        return enc.finish()


# --------------------------------------------------------------------------- the loop

@dataclass
class Encoded:
    """One result of :func:`iter_items`: a source and its codes (or an error)."""

    source: AudioSource
    codes: list[list[int]] | None
    num_samples: int = 0
    error: str | None = None


def iter_items(sources: Iterator[AudioSource], encoder: ClipEncoder, workers: int = 0,
               window: int | None = None, window_seconds: float = 600.0) -> Iterator[Encoded]:
    """Decode and encode ``sources``; yield one :class:`Encoded` per source, in
    input order.  At most ``window`` clips (default ``4 * batch_size``, 1
    without batching) and ``window_seconds`` of audio wait for their batch;
    long inputs are streamed when their turn comes."""
    sr = encoder.model.cfg.sample_rate
    if window is None:
        window = 1 if encoder.batch_size == 1 or encoder.llm_codec else 4 * encoder.batch_size
    window = max(1, window)
    decoder = _Decoder(workers, sr, encoder.whole_max_seconds)
    ok = False
    try:
        held: list[tuple[AudioSource, Any, str | None]] = []
        held_samples = 0

        def flush() -> Iterator[Encoded]:
            nonlocal held, held_samples
            wavs = [w for _, w, err in held if err is None]
            codes = iter(encoder.encode_many(wavs)) if wavs else iter(())
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
                yield _stream_one(src, encoder)
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


def _stream_one(src: AudioSource, encoder: ClipEncoder) -> Encoded:
    inp: Any = src.path
    if inp is None:
        import io

        inp = src.stream if src.stream is not None else io.BytesIO(src.data or b"")
        inp.seek(0)
    try:
        with AudioStream(inp, encoder.model.cfg.sample_rate) as st:
            codes, n = encoder.encode_stream(st)
    except AudioError as e:
        return Encoded(src, None, error=str(e))
    return Encoded(src, codes, n)
