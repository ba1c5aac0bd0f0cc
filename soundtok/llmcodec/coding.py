"""How :class:`~soundtok.llmcodec.model.LLMCodec` meets the
:class:`~soundtok.codecs.Codec` protocol: its one windowing of long audio
(:func:`span`), used by the streaming encoder and by chunked decoding, and the
token-stream side (header, items, the codes as the LLM's words).

Long audio is cut into chunks of ``cfg.chunk_step(chunk_seconds)`` samples (a
multiple of the coarsest hop, 0.32 s at the defaults), each coded within
``context_hops`` coarse hops of real audio on both sides; only the chunk's own
codes (or samples) are kept.  :class:`LLMStreamEncoder` encodes as blocks
arrive; :meth:`LLMCodecInterface.encode_long` is the same encoder fed the
whole signal, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..codecs import CodecBase

__all__ = ["span", "LLMStreamEncoder", "LLMCodecInterface"]


def span(a: int, step: int, ctx: int, total: int) -> tuple[int, int, int]:
    """The chunk starting at sample ``a`` of a (padded) signal of ``total``
    samples: ``(b, lo, hi)`` -- the chunk is ``[a, b)``, coded within ``[lo, hi)``."""
    b = min(total, a + step)
    return b, max(0, a - ctx), min(total, b + ctx)


class LLMStreamEncoder:
    """Encode a signal that arrives in blocks with an LLM-Codec.

    A chunk ``[a, b)`` is encoded, within ``[a - ctx, b + ctx)``, as soon as
    its right context has arrived; audio no later chunk needs is dropped, so
    memory holds about one chunk whatever the duration.
    """

    def __init__(self, model: Any, chunk_seconds: float, context_hops: int = 2) -> None:
        self.model = model
        self.step = model.cfg.chunk_step(chunk_seconds)
        self.ctx = context_hops * model.cfg.max_hop
        self.buf = np.zeros(0, np.float32)
        self.buf_start, self.n, self.a = 0, 0, 0
        self.pieces: list[list[Any]] = [[] for _ in model.cfg.hop_lengths]

    def push(self, block: Any) -> None:
        """Append samples ``(n,)`` (numpy, or a CPU tensor)."""
        block = block.detach().cpu().numpy() if hasattr(block, "detach") else block
        self.buf = np.concatenate([self.buf, np.asarray(block, np.float32)])
        self.n += int(block.shape[0])
        while self.n >= self.a + self.step + self.ctx:  # the whole right context is here
            b, lo, hi = span(self.a, self.step, self.ctx, self.n)
            self._encode(self.a, b, lo, hi)
            self.a = b
            keep = max(0, self.a - self.ctx)
            if keep > self.buf_start:
                self.buf = self.buf[keep - self.buf_start:].copy()
                self.buf_start = keep

    def finish_tensors(self) -> list[Any]:
        """Codes per scale ``[(1, ceil(N / hop_k)) for k]`` once the input has ended."""
        import torch

        total = self.model.padded_length(self.n)
        while self.a < total:
            b, lo, hi = span(self.a, self.step, self.ctx, total)
            self._encode(self.a, b, lo, hi)
            self.a = b
        self.buf = np.zeros(0, np.float32)
        frames = self.model.num_frames(self.n)
        return [torch.cat(p, dim=-1)[:, :t] for p, t in zip(self.pieces, frames)]

    def finish(self) -> tuple[list[list[int]], int]:
        """``(codes per scale, number of samples)`` once the input has ended."""
        return [c[0].tolist() for c in self.finish_tensors()], self.n

    def _encode(self, a: int, b: int, lo: int, hi: int) -> None:
        import torch

        seg = np.zeros(hi - lo, np.float32)
        top = min(hi, self.n)
        if top > lo:
            if lo < self.buf_start:
                raise AssertionError("LLMStreamEncoder dropped audio it still needed")
            seg[:top - lo] = self.buf[lo - self.buf_start:top - self.buf_start]
        codes = self.model.encode(torch.from_numpy(seg)[None])
        for k, (c, h) in enumerate(zip(codes, self.model.cfg.hop_lengths)):
            self.pieces[k].append(c[:, (a - lo) // h:(b - lo) // h])


class LLMCodecInterface(CodecBase):
    """The :class:`~soundtok.codecs.Codec` side of ``LLMCodec`` (a mixin: it reads
    ``self.cfg`` and calls the model's ``encode`` / ``decode``)."""

    decoders = ("default",)  # one deterministic decoder (mel decoder + vocoder)
    batches = False  # clips are encoded one by one
    tokenizer: Any = None  # the LLM's tokenizer, when the codec was loaded with one

    @property
    def hop_lengths(self) -> list[int]:
        return self.cfg.hop_lengths

    @property
    def frame_rates(self) -> list[float]:
        return self.cfg.frame_rates

    @property
    def codebook_sizes(self) -> list[int]:
        return self.cfg.vocab_sizes

    # ------------------------------------------------------ long audio
    def stream_encoder(self, chunk_seconds: float = 30.0, context_hops: int = 2) -> LLMStreamEncoder:
        return LLMStreamEncoder(self, chunk_seconds, context_hops)

    def encode_long(self, wav: Any, chunk_seconds: float = 30.0, context_hops: int = 2) -> list[Any]:
        """Encode one long signal ``(N,)`` chunk by chunk -> codes per scale
        ``[(1, ceil(N / hop_k)) for k]``.

        Memory is flat in duration.  Codes can differ from whole-clip encoding
        near chunk edges where the context is shorter than the encoder's
        receptive field (tested to agree on >= 95%)."""
        enc = LLMStreamEncoder(self, chunk_seconds, context_hops)
        enc.push(wav.reshape(-1))
        return enc.finish_tensors()

    def encode_clips(self, wavs: list[np.ndarray], chunk_seconds: float = 30.0,
                     batch_size: int = 16) -> list[list[list[int]]]:
        """Codes of each clip, encoded one by one (``encode_long``)."""
        import torch

        return [[c[0].tolist() for c in self.encode_long(torch.from_numpy(w), chunk_seconds)]
                for w in wavs]

    def iter_decode_long(self, codes: list, num_samples: int | None = None,
                         chunk_seconds: float = 30.0, context_hops: int = 2) -> Iterator[Any]:
        """Decode codes per scale chunk by chunk (cut as :meth:`encode_long` cuts
        the audio), yielding waveform pieces ``(n,)`` that add up to ``num_samples``."""
        full, n = self._full_codes(codes, num_samples)
        total, left = self.padded_length(n), n
        step, ctx = self.cfg.chunk_step(chunk_seconds), context_hops * self.cfg.max_hop
        for a in range(0, total, step):
            b, lo, hi = span(a, step, ctx, total)
            part = [c[:, lo // h:hi // h] for c, h in zip(full, self.cfg.hop_lengths)]
            wav = self.decode(part, hi - lo)[0]
            piece = wav[a - lo:b - lo][:left]
            left -= piece.shape[0]
            if piece.shape[0]:
                yield piece
            if left <= 0:
                return

    def decode_codes(self, codes: list[list[int]], num_samples: int, chunk_seconds: float = 30.0,
                     **_: Any) -> Iterator[Any]:
        """Waveform pieces ``(n,)`` of one item (the one decoder has no options)."""
        return self.iter_decode_long(codes, num_samples=num_samples, chunk_seconds=chunk_seconds)

    def describe_decoder(self, decoder: str = "default", **_: Any) -> str:
        return "its one deterministic decoder"

    # ---------------------------------------------------------- token stream
    def header(self, extra: dict | None = None):
        """The :class:`~soundtok.tokens.Header` of streams this codec writes."""
        from ..tokens import Header
        from .config import ARCHITECTURE

        codec = {"name": self.cfg.name, "sha256": self.sha256, "arch": ARCHITECTURE,
                 "llm": dict(self.cfg.llm)}
        ex = {"vocabularies": self.vocabularies,
              "scales": ["words"] + ["subwords"] * (len(self.cfg.strides) - 1), **(extra or {})}
        return Header(codec=codec, sample_rate=self.cfg.sample_rate,
                      hop_lengths=self.cfg.hop_lengths, codebook_sizes=self.cfg.vocab_sizes,
                      extra=ex)

    def item(self, id: str, wav: Any, **fields: Any) -> Any:
        """Encode one clip ``(N,)`` into a token-stream :class:`~soundtok.tokens.Item`."""
        from ..tokens import Item

        codes = self.encode(wav.reshape(1, -1))
        return Item(id=id, num_samples=int(wav.shape[-1]), codes=[c[0].tolist() for c in codes],
                    **fields)

    def words(self, item: Any, header: Any) -> str:
        """``item`` of a stream with ``header`` as the LLM's words
        (:func:`~.text.codes_to_words`); loads the LLM's tokenizer if the codec
        was not loaded with one."""
        from .text import codes_to_words

        if self.tokenizer is None:
            from ..llm.loader import load_llm

            self.tokenizer = load_llm(self.cfg.llm.get("name"), device="cpu", dtype="float32")[1]
        return codes_to_words(item, header, self.tokenizer)
