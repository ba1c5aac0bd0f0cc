"""Configuration of the sound-token codec (one dataclass, saved as ``config.json``).

The codec works at ``sample_rate`` Hz. Audio is analysed into a log-mel
spectrogram at ``sample_rate / hop_length`` frames per second (100 fps at the
defaults). The VAE compresses the mel frames by ``vae_stride`` into a continuous
latent (50 Hz, ``latent_dim`` channels); the tokenizer compresses the latent by
``token_stride`` and quantises it with one VQ codebook of ``codebook_size``
entries (25 tokens/s, 10 bits each = 250 bit/s at the defaults).

Keys absent from a saved ``config.json`` take the value in :data:`LEGACY`
(what codecs written before those keys existed did, i.e. the first built-in
codec ``soundtok-fm-16k``), not the dataclass default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ..modelconfig import MelConfig

#: ``config.json`` "architecture" (and a stream's ``codec.arch``) of this codec.
ARCHITECTURE = "soundtok-fm"

#: What a config.json written before these keys existed meant (the first codec, soundtok-fm-16k).
LEGACY = {"teacher": None, "semantic_weight": 0.0, "fm_prior": "none", "fm_residual": False,
          "fm_guidance": 1.0, "decoder": "flow", "level_weight": 0.0, "voc_adv_weight": 0.0,
          "fm_cond_dropout": 0.1, "codebook_size": 512, "name": "soundtok-fm-16k",
          "voc_mel_weight": 0.5, "vae_mel_offset": 0.0, "vae_mel_scale": 1.0,
          "text_weight": 0.0}


@dataclass
class CodecConfig(MelConfig):
    """All hyper-parameters of :class:`soundtok.codec.model.SoundCodec` (the front-end
    fields and the ``config.json`` round trip come from :class:`~soundtok.modelconfig.MelConfig`).

    Units: ``sample_rate`` in Hz; ``hop_length`` and ``n_fft`` in samples;
    strides are integer frame-rate divisors.
    """

    ARCHITECTURE: ClassVar[str] = ARCHITECTURE
    LEGACY: ClassVar[dict] = LEGACY

    name: str = "soundtok-sem-16k"
    # VAE: mel (B, n_mels, Tm) <-> latent (B, latent_dim, Tm / vae_stride)
    latent_dim: int = 32
    vae_dim: int = 128
    vae_layers: int = 2
    vae_stride: int = 2
    kl_weight: float = 1e-3
    # The VAE sees (log_mel - vae_mel_offset) / vae_mel_scale and its output is mapped back:
    # natural-log mels sit around -5.7 (std ~2.5), far from what its layers start near.
    vae_mel_offset: float = -5.0
    vae_mel_scale: float = 2.5
    # Tokenizer: latent -> (B, codebook_dim, Tl / token_stride) -> VQ codes (B, 1, Tt)
    token_stride: int = 2
    tok_dim: int = 128
    tok_layers: int = 3
    codebook_size: int = 1024
    codebook_dim: int = 8
    commitment_weight: float = 0.25
    # Semantic distillation (training only): a head from the quantised embedding
    # (B, tok_dim, Tt) predicts the frozen teacher's features (B, teacher_dim, Tt),
    # loss = semantic_weight * (L1 + (1 - cosine)) on per-channel standardised features.
    teacher: str | None = "whisper-base"
    teacher_dim: int = 512
    semantic_weight: float = 1.0
    sem_layers: int = 2
    # Text distillation (training only): a head from the same quantised embedding gives
    # per-token character log-probabilities (B, Tt, 29); loss = text_weight * CTC against
    # the clip's normalised English transcript (soundtok.train.text), on whole utterances.
    text_weight: float = 0.0
    text_layers: int = 2
    # Flow-matching decoder: generates the latent from the tokens
    fm_dim: int = 192
    fm_layers: int = 6
    fm_cond_layers: int = 2
    fm_sigma_min: float = 1e-4
    fm_cond_dropout: float = 0.2
    fm_steps: int = 6
    # Frame-aligned prior: "mse" feeds the MSE decoder's predicted latent to the
    # flow as extra conditioning; with fm_residual the flow generates latent - prior.
    fm_prior: str = "mse"
    fm_residual: bool = True
    fm_guidance: float = 1.0  # classifier-free guidance scale used when none is given
    # Decoder used when none is asked for: "flow" or "mse"
    decoder: str = "flow"
    # Deterministic VQ+MSE baseline decoder (same conditioning, predicts the latent)
    mse_layers: int = 3
    # Vocoder: mel (B, n_mels, Tm) -> waveform (B, Tm * hop_length)
    voc_dim: int = 192
    voc_layers: int = 8
    kernel_size: int = 7
    # Training-only loss weights of the level (frame log-energy) terms (VAE, tokenizer
    # and vocoder stages) and of the vocoder's adversarial training (0 = no GAN).
    level_weight: float = 1.0
    voc_adv_weight: float = 1.0
    voc_feat_weight: float = 2.0
    voc_mel_weight: float = 45.0
    disc_dim: int = 8
    voc_gan_start: int = 0  # vocoder steps before adversarial training starts

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

    def validate(self) -> None:
        """ValueError (one line) for inconsistent settings."""
        if not (math.isfinite(self.vae_mel_scale) and self.vae_mel_scale > 0
                and math.isfinite(self.vae_mel_offset)):
            raise ValueError("vae_mel_scale must be a positive number and vae_mel_offset finite")
        if self.fm_prior not in ("none", "mse"):
            raise ValueError(f"fm_prior must be 'none' or 'mse', not {self.fm_prior!r}")
        if self.decoder not in ("flow", "mse"):
            raise ValueError(f"decoder must be 'flow' or 'mse', not {self.decoder!r}")
        if self.fm_residual and self.fm_prior == "none":
            raise ValueError("fm_residual needs fm_prior 'mse'")
        if not (math.isfinite(self.text_weight) and self.text_weight >= 0):
            raise ValueError("text_weight must be a non-negative number")
        if self.semantic_weight > 0:
            from ..teacher import TEACHERS

            if not self.teacher:
                raise ValueError("semantic_weight > 0 but no teacher is named (set \"teacher\", "
                                 "e.g. \"whisper-base\", or semantic_weight 0)")
            if self.teacher not in TEACHERS:
                raise ValueError(f"unknown teacher {self.teacher!r} (known: {', '.join(TEACHERS)})")
            if TEACHERS[self.teacher][1] != self.teacher_dim:
                raise ValueError(f"teacher {self.teacher} has {TEACHERS[self.teacher][1]} "
                                 f"channels, not teacher_dim {self.teacher_dim}")
