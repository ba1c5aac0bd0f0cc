"""The VAE (mel <-> continuous latent) and the tokenizer's encoder.

Shapes at the default config (16 kHz, hop 160): mel ``(B, 80, Tm)`` at 100 fps;
latent ``(B, 32, Tm/2)`` at 50 Hz; tokenizer features ``(B, 128, Tm/4)`` at 25 Hz.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import CodecConfig
from .layers import ChannelNorm, Stack, Upsample, downsample


class VAE(nn.Module):
    """KL-regularised autoencoder of log-mel frames.

    ``encode(mel (B, n_mels, Tm)) -> (mean, logvar)`` each ``(B, latent_dim, Tm/vae_stride)``;
    ``decode(z (B, latent_dim, Tl)) -> mel (B, n_mels, Tl*vae_stride)``.
    """

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        d, k, n = cfg.vae_dim, cfg.kernel_size, cfg.vae_layers
        self.enc_in = nn.Conv1d(cfg.n_mels, d, k, padding=k // 2)
        self.enc_a = Stack(d, n, k)
        self.enc_down = downsample(d, cfg.vae_stride)
        self.enc_b = Stack(d, n, k)
        self.enc_out = nn.Sequential(ChannelNorm(d), nn.Conv1d(d, 2 * cfg.latent_dim, 1))
        self.dec_in = nn.Conv1d(cfg.latent_dim, d, k, padding=k // 2)
        self.dec_a = Stack(d, n, k)
        self.dec_up = Upsample(d, cfg.vae_stride)
        self.dec_b = Stack(d, n, k)
        self.dec_out = nn.Sequential(ChannelNorm(d), nn.Conv1d(d, cfg.n_mels, 1))
        self.mel_offset, self.mel_scale = cfg.vae_mel_offset, cfg.vae_mel_scale

    def encode(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mel = (mel - self.mel_offset) / self.mel_scale
        h = self.enc_b(self.enc_down(self.enc_a(self.enc_in(mel))))
        mean, logvar = self.enc_out(h).float().chunk(2, dim=1)
        return mean, logvar.clamp(-20.0, 5.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dec_b(self.dec_up(self.dec_a(self.dec_in(z))))
        return self.dec_out(h).float() * self.mel_scale + self.mel_offset


class TokenEncoder(nn.Module):
    """Normalised latent ``(B, latent_dim, Tl)`` -> features ``(B, tok_dim, Tl/token_stride)``
    ready for the vector quantiser."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        d, k, n = cfg.tok_dim, cfg.kernel_size, cfg.tok_layers
        self.inp = nn.Conv1d(cfg.latent_dim, d, k, padding=k // 2)
        self.a = Stack(d, n, k)
        self.down = downsample(d, cfg.token_stride)
        self.b = Stack(d, n, k)
        self.out = ChannelNorm(d)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.b(self.down(self.a(self.inp(z)))))
