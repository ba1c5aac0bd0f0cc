"""How :class:`~soundtok.codec.model.SoundCodec` meets the
:class:`~soundtok.codecs.Codec` protocol: its one windowing of long audio
(:class:`StreamEncoder`), batches of equal-length clips, chunked decoding.

Long audio is encoded in chunks of ``chunk_tokens`` token frames, each with
``ENCODE_CONTEXT_TOKENS`` frames of real audio on both sides, keeping only the
chunk's own frames.  Every encoder layer is local and the context exceeds its
receptive field (about 16 frames), so the pre-quantisation features equal
whole-file encoding up to float rounding.  :class:`StreamEncoder` does this as
blocks arrive; :meth:`SoundCodec.encode_long` is the same encoder fed the whole
signal at once, so the two cannot drift apart.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..codecs import CodecBase

ENCODE_CONTEXT_TOKENS = 32  # > the encoder's receptive field (about 16 token frames)

__all__ = ["ENCODE_CONTEXT_TOKENS", "StreamEncoder", "SoundCodecInterface"]


class StreamEncoder:
    """Encode a signal that arrives in blocks in chunks of ``chunk_tokens`` frames.

    A chunk of frames ``[a, b)`` is encoded with ``context_tokens`` frames of
    real audio on each side (zeros beyond the signal's ends); it is encoded as
    soon as the audio up to its right context has arrived, and audio no chunk
    needs any more is dropped, so memory holds about one chunk whatever the
    duration.
    """

    def __init__(self, model: Any, chunk_tokens: int, context_tokens: int | None = None) -> None:
        self.model, self.chunk = model, max(1, int(chunk_tokens))
        self.ctx = ENCODE_CONTEXT_TOKENS if context_tokens is None else context_tokens
        self.hop, self.edge = model.cfg.token_hop, model.edge
        self.buf = np.zeros(0, np.float32)
        self.buf_start = 0  # absolute sample index of buf[0]
        self.n = 0  # samples received
        self.a = 0  # next chunk's first frame
        self.codes: list[Any] = []

    def push(self, block: Any) -> None:
        """Append samples ``(n,)`` (numpy, or a CPU tensor)."""
        block = block.detach().cpu().numpy() if hasattr(block, "detach") else block
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

    def finish_tensor(self) -> Any:
        """Codes ``(1, T)`` (a long tensor) once the input has ended."""
        import torch

        total = self.model.num_frames(self.n)
        while self.a < total:
            b = min(total, self.a + self.chunk)
            self._encode(self.a, b, min(total, b + self.ctx))
            self.a = b
        self.buf = np.zeros(0, np.float32)
        return torch.cat(self.codes, dim=-1) if self.codes else torch.zeros(1, 0, dtype=torch.long)

    def finish(self) -> tuple[list[list[int]], int]:
        """``(codes as a (1, T) list, number of samples)`` once the input has ended."""
        return self.finish_tensor().tolist(), self.n

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


class SoundCodecInterface(CodecBase):
    """The :class:`~soundtok.codecs.Codec` side of ``SoundCodec`` (a mixin: it
    reads ``self.cfg`` and calls the model's ``encode`` / ``encode_long`` /
    ``iter_decode_long``)."""

    batches = True

    @property
    def decoders(self) -> tuple[str, ...]:
        """``flow`` and ``mse``, the codec's default (its config's ``decoder``) first."""
        return tuple(sorted(("flow", "mse"), key=lambda d: d != self.cfg.decoder))

    @property
    def hop_lengths(self) -> list[int]:
        return [self.cfg.token_hop]

    @property
    def frame_rates(self) -> list[float]:
        return [self.cfg.frame_rate]

    @property
    def codebook_sizes(self) -> list[int]:
        return [self.cfg.codebook_size]

    def header(self, extra: dict | None = None):
        """The :class:`~soundtok.tokens.Header` of the streams this codec writes."""
        from ..tokens import Header
        from .config import ARCHITECTURE

        cfg = self.cfg
        return Header(codec={"name": cfg.name, "sha256": self.sha256, "arch": ARCHITECTURE},
                      sample_rate=cfg.sample_rate, hop_lengths=[cfg.token_hop],
                      codebook_sizes=[cfg.codebook_size], extra=dict(extra or {}))

    def chunk_tokens(self, chunk_seconds: float) -> int:
        """Token frames per chunk of long-audio coding (at least one)."""
        return max(1, int(chunk_seconds * self.cfg.frame_rate))

    def stream_encoder(self, chunk_seconds: float = 30.0) -> StreamEncoder:
        return StreamEncoder(self, self.chunk_tokens(chunk_seconds))

    def encode_clips(self, wavs: list[np.ndarray], chunk_seconds: float = 30.0,
                     batch_size: int = 16) -> list[list[list[int]]]:
        """Codes of each clip, as one-by-one encoding gives them.

        Clips with the *same number of token frames* are encoded together,
        ``batch_size`` at a time; only equal lengths are batched, because
        padding a shorter clip to a longer one changes its last codes (the
        encoder would see silence instead of its zero-padded edge), while
        equal-length batches give exactly the codes of one-by-one encoding.
        Clips longer than one chunk are encoded alone, in chunks."""
        import torch

        chunk = self.chunk_tokens(chunk_seconds)
        out: list[Any] = [None] * len(wavs)
        groups: dict[int, list[int]] = collections.defaultdict(list)
        for i, w in enumerate(wavs):
            t = self.num_frames(w.shape[0])
            if t > chunk:  # several chunks: the long-signal path, alone
                out[i] = self.encode_long(torch.from_numpy(w), chunk_tokens=chunk).tolist()
            else:
                groups[t].append(i)
        hop, size = self.cfg.token_hop, max(1, int(batch_size))
        for t, idx in groups.items():
            for j in range(0, len(idx), size):
                part = idx[j:j + size]
                x = np.zeros((len(part), t * hop), np.float32)
                for r, i in enumerate(part):
                    x[r, :wavs[i].shape[0]] = wavs[i]
                codes = self.encode(torch.from_numpy(x))  # (B, 1, t), pads to t*hop itself
                for r, i in enumerate(part):
                    out[i] = codes[r].tolist()
        return out

    def decode_codes(self, codes: list[list[int]], num_samples: int, chunk_seconds: float = 30.0,
                     decoder: str | None = None, steps: int | None = None, seed: int = 0,
                     guidance: float | None = None, solver: str = "euler",
                     **_: Any) -> Iterator[Any]:
        """Waveform pieces ``(n,)`` of one item, decoded ``chunk_seconds`` at a time
        (see ``SoundCodec.iter_decode_long``); ``decoder`` is ``flow`` (``steps``,
        ``seed``, ``guidance``, ``solver`` apply) or ``mse``.  ``None``: the
        codec's own choice (its config's ``decoder``, ``fm_steps``, ``fm_guidance``)."""
        import torch

        from ..errors import UsageError

        decoder = decoder or self.decoders[0]
        if decoder not in self.decoders:
            raise UsageError(f"unknown decoder {decoder!r}: use {' or '.join(self.decoders)}")
        if steps is not None and steps < 1:
            raise UsageError("--steps must be at least 1")
        t = torch.tensor(codes, dtype=torch.long).reshape(len(codes), -1)
        return self.iter_decode_long(t, num_samples=num_samples,
                                     chunk_tokens=self.chunk_tokens(chunk_seconds),
                                     decoder=decoder, steps=steps, seed=seed, guidance=guidance,
                                     solver=solver)

    def describe_decoder(self, decoder: str | None = None, steps: int | None = None, seed: int = 0,
                         guidance: float | None = None, **_: Any) -> str:
        decoder = decoder or self.decoders[0]
        extra = ""
        if decoder == "flow":
            g = self.cfg.fm_guidance if guidance is None else guidance
            extra = f", {steps or self.cfg.fm_steps} steps, seed {seed}" + (f", guidance {g:g}" if g != 1 else "")
            if self.cfg.fm_prior == "mse":
                extra += ", on the MSE prior" + (" (residual)" if self.cfg.fm_residual else "")
        return f"{decoder} decoder{extra}"
