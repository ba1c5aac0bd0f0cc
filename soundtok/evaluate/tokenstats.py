"""Exact bitrate and per-codebook statistics of token streams.

* bitrate (bit/s) = sum over items and codebooks k of
  len(codes[k]) * log2(codebook_sizes[k]), divided by the summed duration
  (num_samples / sample_rate) of the items;
* usage of codebook k = (number of distinct codes that occur) / codebook size;
* entropy (bits) of the empirical code distribution p: -sum p log2 p;
* perplexity = 2 ** entropy (the effective number of equally likely codes).

Pure Python + numpy; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["CodebookStats", "stream_bitrate", "token_stats", "stream_stats"]


@dataclass
class CodebookStats:
    """Statistics of codebook ``codebook`` over a set of items."""

    codebook: int
    size: int
    tokens: int
    used: int
    usage: float
    entropy_bits: float
    perplexity: float

    def to_dict(self) -> dict:
        return asdict(self)


def stream_bitrate(codebook_sizes: Sequence[int], sample_rate: int,
                   items: Iterable[tuple[Sequence[Sequence[int]], int]]) -> float:
    """Bits per second of ``items`` given as ``(codes, num_samples)``; NaN when
    the items hold no audio."""
    bits, samples = 0.0, 0
    for codes, num_samples in items:
        bits += sum(len(row) * math.log2(size) for row, size in zip(codes, codebook_sizes))
        samples += num_samples
    return bits * sample_rate / samples if samples else math.nan


def token_stats(codebook_sizes: Sequence[int],
                codes_per_item: Iterable[Sequence[Sequence[int]]]) -> list[CodebookStats]:
    """Per-codebook usage, entropy and perplexity, pooled over all items."""
    counts = [np.zeros(size, dtype=np.int64) for size in codebook_sizes]
    for codes in codes_per_item:
        for k, row in enumerate(codes):
            if len(row):
                counts[k] += np.bincount(np.asarray(row, dtype=np.int64),
                                         minlength=codebook_sizes[k])[:codebook_sizes[k]]
    out = []
    for k, c in enumerate(counts):
        total = int(c.sum())
        used = int((c > 0).sum())
        if total:
            p = c[c > 0] / total
            h = float(-(p * np.log2(p)).sum()) + 0.0
        else:
            h = math.nan
        out.append(CodebookStats(codebook=k, size=int(codebook_sizes[k]), tokens=total, used=used,
                                 usage=used / codebook_sizes[k], entropy_bits=h,
                                 perplexity=2.0 ** h if total else math.nan))
    return out


def stream_stats(path: str) -> tuple[float, list[CodebookStats], int]:
    """(bitrate, per-codebook stats, number of items) of a token stream file."""
    from ..tokens import TokenReader

    with TokenReader(path) as reader:
        header = reader.header
        items = [(item.codes, item.num_samples) for item in reader]
    rate = stream_bitrate(header.codebook_sizes, header.sample_rate, items)
    return rate, token_stats(header.codebook_sizes, [c for c, _ in items]), len(items)
