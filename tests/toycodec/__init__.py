"""A toy codec that lives outside soundtok, to show what adding one takes.

Two codebooks at two rates, 8 kHz audio, no torch model at all:

* codebook 0, one code per 2 samples (4000 Hz), 256 codes: 8-bit mu-law of
  every even sample;
* codebook 1, one code per 4 samples (2000 Hz), 16 codes: the mean error of
  the held codebook-0 signal over those 4 samples, in 16 steps.

Decoding holds each codebook-0 value for 2 samples and adds the codebook-1
correction.  The package is what a codec needs: a class implementing
:class:`soundtok.codecs.Codec`, ``load(path, device)``, and a ``config.json``
naming :data:`ARCHITECTURE`; a test registers it with
:func:`soundtok.registry.register_codec`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ARCHITECTURE = "toy-mulaw"
HOPS = (2, 4)
SIZES = (256, 16)
MU = 255.0
STEP = 0.02  # codebook 1: error per step


def _mulaw(x: np.ndarray) -> np.ndarray:
    y = np.sign(x) * np.log1p(MU * np.abs(np.clip(x, -1, 1))) / np.log1p(MU)
    return np.clip(np.round((y + 1) / 2 * 255), 0, 255).astype(np.int64)


def _unmulaw(c: np.ndarray) -> np.ndarray:
    y = c.astype(np.float32) / 255 * 2 - 1
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(MU)) / MU).astype(np.float32)


def _encode_groups(x: np.ndarray) -> tuple[list[int], list[int]]:
    """Codes of whole 4-sample groups (``len(x)`` a multiple of 4)."""
    c0 = _mulaw(x[0::2])
    held = np.repeat(_unmulaw(c0), 2)
    err = (x - held).reshape(-1, 4).mean(axis=1)
    c1 = np.clip(np.round(err / STEP) + 8, 0, 15).astype(np.int64)
    return c0.tolist(), c1.tolist()


class ToyStreamEncoder:
    """Encodes whole 4-sample groups as they arrive; the rest waits for more."""

    def __init__(self) -> None:
        self.rest = np.zeros(0, np.float32)
        self.codes: list[list[int]] = [[], []]
        self.n = 0

    def push(self, block: Any) -> None:
        block = np.asarray(block, np.float32).reshape(-1)
        self.n += block.shape[0]
        x = np.concatenate([self.rest, block])
        whole = x.shape[0] - x.shape[0] % 4
        self._add(x[:whole])
        self.rest = x[whole:]

    def _add(self, x: np.ndarray) -> None:
        c0, c1 = _encode_groups(x)
        self.codes[0] += c0
        self.codes[1] += c1

    def finish(self) -> tuple[list[list[int]], int]:
        if self.rest.shape[0]:
            self._add(np.pad(self.rest, (0, 4 - self.rest.shape[0])))
            self.rest = np.zeros(0, np.float32)
        want = [-(-self.n // h) for h in HOPS]
        return [c[:t] for c, t in zip(self.codes, want)], self.n


class ToyCodec:
    decoders = ("hold",)
    batches = False

    def __init__(self, path: Path) -> None:
        from soundtok.modelfiles import file_sha256

        self.cfg = json.loads((path / "config.json").read_text())
        self.sha256 = file_sha256(path / "model.safetensors")

    name = property(lambda self: self.cfg["name"])
    sample_rate = property(lambda self: self.cfg["sample_rate"])
    hop_lengths = property(lambda self: list(HOPS))
    frame_rates = property(lambda self: [self.sample_rate / h for h in HOPS])
    codebook_sizes = property(lambda self: list(SIZES))

    def header(self, extra: dict | None = None):
        from soundtok.tokens import Header

        return Header(codec={"name": self.name, "sha256": self.sha256, "arch": ARCHITECTURE},
                      sample_rate=self.sample_rate, hop_lengths=self.hop_lengths,
                      codebook_sizes=self.codebook_sizes, extra=dict(extra or {}))

    def stream_encoder(self, chunk_seconds: float = 30.0) -> ToyStreamEncoder:
        return ToyStreamEncoder()

    def encode_clips(self, wavs, chunk_seconds: float = 30.0, batch_size: int = 16):
        out = []
        for w in wavs:
            enc = self.stream_encoder(chunk_seconds)
            enc.push(w)
            out.append(enc.finish()[0])
        return out

    def decode_codes(self, codes, num_samples: int, chunk_seconds: float = 30.0,
                     **_: Any) -> Iterator[Any]:
        import torch

        c0, c1 = (np.asarray(c, np.int64) for c in codes)
        step = max(4, int(chunk_seconds * self.sample_rate) // 4 * 4)
        for a in range(0, num_samples, step):
            b = min(num_samples, a + step)
            held = np.repeat(_unmulaw(c0[a // 2:-(-b // 2)]), 2)
            corr = np.repeat((c1[a // 4:-(-b // 4)] - 8) * STEP, 4).astype(np.float32)
            m = min(held.shape[0], corr.shape[0], b - a)
            yield torch.from_numpy(np.ascontiguousarray(held[:m] + corr[:m]))

    def describe_decoder(self, decoder: str, **_: Any) -> str:
        return "sample-and-hold decoder"

    def to(self, device: Any) -> ToyCodec:
        return self

    def eval(self) -> ToyCodec:
        return self


def save(directory: Path, name: str = "toy-8k") -> Path:
    """A toy codec directory (its "weights" are a few bytes: the sha256 needs a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(
        {"architecture": ARCHITECTURE, "name": name, "sample_rate": 8000}))
    (directory / "model.safetensors").write_bytes(b"toy codec, no weights\n")
    return directory


def load(path: str | Path, device: str = "cpu") -> ToyCodec:
    p = Path(path)
    return ToyCodec(p.parent if p.is_file() else p)
