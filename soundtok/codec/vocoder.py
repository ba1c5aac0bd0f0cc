"""Learned vocoder: log-mel frames -> waveform through an inverse-STFT head.

A Vocos-style design: a ConvNeXt backbone at the mel frame rate predicts, per
frame, the log-magnitude and phase of an ``n_fft``-point spectrum; windowed
inverse FFT frames are overlap-added (weighted overlap-add with the squared
window envelope), so the network never runs at the audio sample rate.

Input ``(B, n_mels, Tm)`` at ``sample_rate / hop_length`` fps; output
``(B, Tm * hop_length)`` samples, aligned with :class:`~.layers.MelFrontend`
(frame ``k`` covers samples ``k*hop - (n_fft-hop)/2 .. k*hop + (n_fft+hop)/2``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import CodecConfig
from .layers import ChannelNorm, Stack


class Vocoder(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        d = cfg.voc_dim
        self.n_fft, self.hop = cfg.n_fft, cfg.hop_length
        self.inp = nn.Conv1d(cfg.n_mels, d, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.norm_in = ChannelNorm(d)
        self.stack = Stack(d, cfg.voc_layers, cfg.kernel_size)
        self.norm_out = ChannelNorm(d)
        self.head = nn.Conv1d(d, cfg.n_fft + 2, 1)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.norm_out(self.stack(self.norm_in(self.inp(mel))))
        logmag, phase = self.head(h).float().chunk(2, dim=1)
        spec = torch.polar(torch.exp(logmag.clamp(max=8.0)), phase)  # (B, F, Tm)
        return self.overlap_add(spec)

    def overlap_add(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex spectra ``(B, n_fft//2+1, Tm)`` -> samples ``(B, Tm*hop)``."""
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[None, :, None]
        tm = frames.shape[-1]
        total = (tm - 1) * self.hop + self.n_fft
        out = F.fold(frames, (1, total), (1, self.n_fft), stride=(1, self.hop))[:, 0, 0]
        env = F.fold(self.window.square()[None, :, None].expand(1, -1, tm), (1, total),
                     (1, self.n_fft), stride=(1, self.hop))[:, 0, 0]
        pad = (self.n_fft - self.hop) // 2
        return (out / env.clamp_min(1e-3))[:, pad:pad + tm * self.hop]


def stft_loss(y_hat: torch.Tensor, y: torch.Tensor,
              resolutions=((256, 64), (512, 128), (1024, 256), (2048, 512))) -> torch.Tensor:
    """Multi-resolution STFT loss (spectral convergence + log-magnitude L1) of ``(B, T)`` signals."""
    total = y.new_zeros(())
    for n_fft, hop in resolutions:
        win = torch.hann_window(n_fft, device=y.device)
        s_hat = torch.stft(y_hat.float(), n_fft, hop, window=win, return_complex=True).abs()
        s = torch.stft(y.float(), n_fft, hop, window=win, return_complex=True).abs()
        sc = torch.linalg.norm(s - s_hat) / torch.linalg.norm(s).clamp_min(1e-6)
        mag = F.l1_loss(torch.log(s_hat.clamp_min(1e-5)), torch.log(s.clamp_min(1e-5)))
        total = total + sc + mag
    return total / len(resolutions)
