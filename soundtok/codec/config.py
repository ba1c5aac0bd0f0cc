"""Configuration of the sound-token codec (one dataclass, saved as ``config.json``).

The codec works at ``sample_rate`` Hz. Audio is analysed into a log-mel
spectrogram at ``sample_rate / hop_length`` frames per second (100 fps at the
defaults). The VAE compresses the mel frames by ``vae_stride`` into a continuous
latent (50 Hz, ``latent_dim`` channels); the tokenizer compresses the latent by
``token_stride`` and quantises it with one VQ codebook of ``codebook_size``
entries (25 tokens/s, 9 bits each = 225 bit/s at the defaults).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

#: ``config.json`` "architecture" (and a stream's ``codec.arch``) of this codec.
ARCHITECTURE = "soundtok-fm"


@dataclass
class CodecConfig:
    """All hyper-parameters of :class:`soundtok.codec.model.SoundCodec`.

    Units: ``sample_rate`` in Hz; ``hop_length`` and ``n_fft`` in samples;
    strides are integer frame-rate divisors.
    """

    name: str = "soundtok-fm-16k"
    sample_rate: int = 16000
    n_fft: int = 640
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    # VAE: mel (B, n_mels, Tm) <-> latent (B, latent_dim, Tm / vae_stride)
    latent_dim: int = 32
    vae_dim: int = 128
    vae_layers: int = 2
    vae_stride: int = 2
    kl_weight: float = 1e-3
    # Tokenizer: latent -> (B, codebook_dim, Tl / token_stride) -> VQ codes (B, 1, Tt)
    token_stride: int = 2
    tok_dim: int = 128
    tok_layers: int = 3
    codebook_size: int = 512
    codebook_dim: int = 8
    commitment_weight: float = 0.25
    # Flow-matching decoder: generates the latent from the tokens
    fm_dim: int = 192
    fm_layers: int = 6
    fm_cond_layers: int = 2
    fm_sigma_min: float = 1e-4
    fm_cond_dropout: float = 0.1
    fm_steps: int = 6
    # Deterministic VQ+MSE baseline decoder (same conditioning, predicts the latent)
    mse_layers: int = 3
    # Vocoder: mel (B, n_mels, Tm) -> waveform (B, Tm * hop_length)
    voc_dim: int = 192
    voc_layers: int = 8
    kernel_size: int = 7

    @property
    def token_hop(self) -> int:
        """Audio samples per token frame (640 at the defaults)."""
        return self.hop_length * self.vae_stride * self.token_stride

    @property
    def latent_hop(self) -> int:
        """Audio samples per latent frame (320 at the defaults)."""
        return self.hop_length * self.vae_stride

    @property
    def frame_rate(self) -> float:
        """Token frames per second."""
        return self.sample_rate / self.token_hop

    @property
    def bitrate(self) -> float:
        """Bits per second of the token stream: frame_rate * log2(codebook_size)."""
        return self.frame_rate * math.log2(self.codebook_size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CodecConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known - {"architecture", "soundtok_version"})
        if unknown:
            raise ValueError(f"unknown codec config keys: {', '.join(unknown)}")
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, path: str | Path) -> None:
        data = {"architecture": ARCHITECTURE, **self.to_dict()}
        Path(path).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> CodecConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))
