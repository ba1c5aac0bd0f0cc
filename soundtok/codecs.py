"""What a codec is: the :class:`Codec` protocol every codec implements.

A codec turns mono audio at ``sample_rate`` Hz into ``K`` codebooks of integer
codes and back.  Codebook ``k`` has one code per ``hop_lengths[k]`` samples
(``frame_rates[k]`` = ``sample_rate / hop_lengths[k]`` codes per second) with
values in ``[0, codebook_sizes[k])``; a clip of ``N`` samples has
``ceil(N / hop_lengths[k])`` codes in codebook ``k`` (the token format's rule,
:mod:`soundtok.tokens`).  Codes travel as ``list[list[int]]``, one list per
codebook, so codebooks may run at different rates.

Everything above the codecs -- :mod:`soundtok.api` (tokenize, detokenize),
:mod:`soundtok.pipeline`, :mod:`soundtok.evaluate` -- uses only this protocol
(in the spirit of Moshi's ``CompressionModel``); only a codec's own package
knows how it windows long audio, what its decoders are called and what its
``config.json`` holds.

How a codec is found and loaded (``--codec``) is :mod:`soundtok.registry`'s
business; this module sits below the codec packages, which may use
:class:`CodecBase`, and imports none of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .tokens import Header

__all__ = ["Codec", "StreamingEncoder", "CodecBase", "is_codec"]


class StreamingEncoder(Protocol):
    """Encodes one signal that arrives in blocks; the codes equal what
    :meth:`Codec.encode_clips` gives for the whole signal, and memory holds
    about one chunk whatever the duration."""

    def push(self, block: np.ndarray) -> None:
        """Append a block of samples ``(n,)`` (float32 at the codec's rate)."""

    def finish(self) -> tuple[list[list[int]], int]:
        """``(codes per codebook, number of samples)`` once the signal has ended."""


@runtime_checkable
class Codec(Protocol):
    """A loaded codec (see the module docstring for shapes and rates).

    ``decoders`` names the ways it can decode, the default first (a codec with
    one deterministic decoder lists one name); ``decode_codes`` options other
    than ``decoder`` are the codec's own (e.g. ``steps``, ``seed``) and a codec
    ignores the ones it does not have; an option left out or ``None`` takes the
    codec's own default (``decoder``: ``decoders[0]``).
    """

    sha256: str  # of the weights file; streams record it and decoding checks it
    decoders: tuple[str, ...]
    batches: bool  # encode_clips encodes several clips at once (else it gets one at a time)

    @property
    def name(self) -> str: ...

    @property
    def sample_rate(self) -> int: ...

    @property
    def hop_lengths(self) -> list[int]: ...

    @property
    def frame_rates(self) -> list[float]: ...

    @property
    def codebook_sizes(self) -> list[int]: ...

    def header(self, extra: dict | None = None) -> Header:
        """The :class:`~soundtok.tokens.Header` of the streams this codec writes."""

    def encode_clips(self, wavs: list[np.ndarray], chunk_seconds: float = 30.0,
                     batch_size: int = 16) -> list[list[list[int]]]:
        """Codes of each clip ``(N_i,)`` (float32 at ``sample_rate``), exactly as
        encoding each alone gives them; long clips are encoded in chunks of about
        ``chunk_seconds``, up to ``batch_size`` clips may be encoded together."""

    def stream_encoder(self, chunk_seconds: float = 30.0) -> StreamingEncoder:
        """A :class:`StreamingEncoder` cutting the signal as :meth:`encode_clips` does."""

    def decode_codes(self, codes: list[list[int]], num_samples: int,
                     chunk_seconds: float = 30.0, **options: Any) -> Iterator[torch.Tensor]:
        """Decode one item chunk by chunk: waveform pieces ``(n,)`` (float32 at
        ``sample_rate``) that add up to ``num_samples`` samples."""

    def describe_decoder(self, decoder: str, **options: Any) -> str:
        """A few words on how ``decoder`` decodes with ``options`` (for reports)."""

    def to(self, device: Any) -> Any: ...

    def eval(self) -> Any: ...


def is_codec(obj: Any) -> bool:
    """True for a loaded codec (an object implementing :class:`Codec`)."""
    return isinstance(obj, Codec)


class CodecBase:
    """What codecs with a ``cfg`` holding ``name`` and ``sample_rate`` share
    (a mixin for their model classes)."""

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate
