"""Configuration of the sound-token codec (one dataclass, saved as ``config.json``).

The codec works at ``sample_rate`` Hz. Audio is analysed into a log-mel
spectrogram at ``sample_rate / hop_length`` frames per second (100 fps at the
defaults). The VAE compresses the mel frames by ``vae_stride`` into a continuous
latent (50 Hz, ``latent_dim`` channels); the tokenizer compresses the latent by
``token_stride`` and quantises it with one VQ codebook of ``codebook_size``
entries (25 tokens/s, 9 bits each = 225 bit/s at the defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ..modelconfig import MelConfig

#: ``config.json`` "architecture" (and a stream's ``codec.arch``) of this codec.
ARCHITECTURE = "soundtok-fm"


@dataclass
class CodecConfig(MelConfig):
    """All hyper-parameters of :class:`soundtok.codec.model.SoundCodec` (the front-end
    fields and the ``config.json`` round trip come from :class:`~soundtok.modelconfig.MelConfig`).

    Units: ``sample_rate`` in Hz; ``hop_length`` and ``n_fft`` in samples;
    strides are integer frame-rate divisors.
    """

    ARCHITECTURE: ClassVar[str] = ARCHITECTURE

    name: str = "soundtok-fm-16k"
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
