"""Building blocks shared by the codec's networks.

All sequence tensors are channels-first ``(B, C, T)``. Every layer is local in
time (convolutions with "same" zero padding, per-frame LayerNorm), so a network
built from them has a finite receptive field: that is what makes chunked
encoding and decoding equal to whole-file processing (see ``model.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MelFrontend(nn.Module):
    """Log-mel spectrogram, frame-aligned for exact chunking.

    Input ``(B, N + n_fft - hop)`` samples, i.e. the signal already padded with
    ``(n_fft - hop) // 2`` samples on each side; output ``(B, n_mels, N // hop)``
    natural-log mel magnitudes. Frame ``k`` is centred on sample ``k*hop + hop/2``
    of the unpadded signal.
    """

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int,
                 f_min: float = 0.0, f_max: float | None = None):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max or sample_rate / 2)
        self.register_buffer("fb", fb, persistent=False)

    def forward(self, padded: torch.Tensor) -> torch.Tensor:
        x = padded.float()
        spec = torch.stft(x, self.n_fft, self.hop, window=self.window, center=False,
                          return_complex=True).abs()
        mel = torch.einsum("mf,bft->bmt", self.fb, spec)
        return torch.log(mel.clamp_min(1e-5))


def hz_to_mel(f: torch.Tensor | float) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f) / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Slaney-normalised triangular mel filters (HTK mel scale), shape ``(n_mels, n_fft//2+1)``."""
    freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1, dtype=torch.float64)
    mels = torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2,
                          dtype=torch.float64)
    hz = mel_to_hz(mels)
    lower = (freqs[None] - hz[:-2, None]) / (hz[1:-1, None] - hz[:-2, None])
    upper = (hz[2:, None] - freqs[None]) / (hz[2:, None] - hz[1:-1, None])
    fb = torch.clamp(torch.minimum(lower, upper), min=0.0)
    fb = fb * (2.0 / (hz[2:] - hz[:-2]))[:, None]
    return fb.float()


class ConvNeXtBlock(nn.Module):
    """1-D ConvNeXt block: depthwise conv, LayerNorm, MLP, layer scale, residual.

    With ``cond_dim`` the LayerNorm is adaptive: a vector ``c (B, cond_dim)``
    (e.g. a flow-matching time embedding) sets per-channel scale and shift.
    """

    def __init__(self, dim: int, kernel_size: int = 7, mult: int = 4,
                 cond_dim: int | None = None):
        super().__init__()
        self.dw = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=cond_dim is None)
        self.film = nn.Linear(cond_dim, 2 * dim) if cond_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        self.pw1 = nn.Linear(dim, mult * dim)
        self.pw2 = nn.Linear(mult * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm(self.dw(x).transpose(1, 2))
        if self.film is not None:
            scale, shift = self.film(c).unsqueeze(1).chunk(2, dim=-1)
            h = h * (1 + scale) + shift
        h = self.pw2(F.gelu(self.pw1(h))) * self.gamma
        return x + h.transpose(1, 2)


class Stack(nn.Module):
    """``n`` ConvNeXt blocks in sequence, optionally all conditioned on ``c``."""

    def __init__(self, dim: int, n: int, kernel_size: int = 7, cond_dim: int | None = None):
        super().__init__()
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, kernel_size, cond_dim=cond_dim)
                                    for _ in range(n))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, c)
        return x


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over channels of a ``(B, C, T)`` tensor, per frame."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def downsample(dim: int, stride: int) -> nn.Module:
    """Strided conv: ``(B, dim, T) -> (B, dim, T // stride)`` for ``T`` divisible by stride."""
    if stride == 1:
        return nn.Identity()
    return nn.Conv1d(dim, dim, 2 * stride, stride=stride, padding=stride // 2)


class Upsample(nn.Module):
    """Nearest-neighbour repeat then conv: ``(B, dim, T) -> (B, dim, T * stride)``."""

    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(dim, dim, 2 * stride + 1, padding=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x
        return self.conv(x.repeat_interleave(self.stride, dim=-1))


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of flow time ``t (B,)`` in [0, 1] -> ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
