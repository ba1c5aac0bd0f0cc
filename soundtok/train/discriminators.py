"""Discriminators for adversarial vocoder training (training only).

* :class:`PeriodDiscriminator` / multi-period (HiFi-GAN): the waveform
  ``(B, T)`` folded into ``(B, 1, T/p, p)`` for periods 2, 3, 5, 7, 11, then
  2-D convolutions along time -- judges periodic (pitch) structure.
* :class:`ResolutionDiscriminator` / multi-resolution (UnivNet, Vocos): 2-D
  convolutions over STFT magnitudes ``(B, 1, F, frames)`` at several FFT sizes --
  judges the spectrum at several time/frequency trade-offs (noise bands, onsets).

Losses are least-squares GAN (HiFi-GAN): ``D`` pushes real to 1 and generated
to 0, ``G`` pushes generated to 1; feature matching is the L1 distance between
the discriminators' intermediate activations on real and generated audio.
Every discriminator returns ``(logits, [feature maps])``. Widths are far below
HiFi-GAN's (``dim`` = 8 channels, 4 ``dim`` at most): a CPU-sized budget, about
1 GMAC per forward pass of a 16 x 0.64 s batch for all eight.
:class:`Adversary` holds them, their optimizer and their checkpoint files while
the vocoder stage (:mod:`.codec_stages`, :mod:`.codec_trainer`) trains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

PERIODS = (2, 3, 5, 7, 11)
RESOLUTIONS = ((512, 128), (1024, 256), (256, 64))


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's period discriminator. Its 2-D kernels are ``(k, 1)``, so each of the
    ``p`` columns of the folded signal is convolved alone: computed here as 1-D
    convolutions over the ``B * p`` columns (the same function, faster on CPU)."""

    def __init__(self, period: int, dim: int = 8):
        super().__init__()
        self.period = period
        chans = [1, dim, 2 * dim, 4 * dim, 4 * dim]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv1d(a, b, 5, 3 if i < 3 else 1, padding=2))
            for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])))
        self.out = weight_norm(nn.Conv1d(chans[-1], 1, 3, padding=1))

    def forward(self, x: torch.Tensor):
        b, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        p = self.period
        h = x.view(b, -1, p).transpose(1, 2).reshape(b * p, 1, -1)  # (B*p, 1, T/p)
        fmaps = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
            fmaps.append(h)
        return self.out(h).reshape(b, -1), fmaps


class ResolutionDiscriminator(nn.Module):
    def __init__(self, n_fft: int, hop: int, dim: int = 8):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, dim, (9, 3), stride=(2, 1), padding=(4, 1))),
            weight_norm(nn.Conv2d(dim, dim, (9, 3), stride=(2, 1), padding=(4, 1))),
            weight_norm(nn.Conv2d(dim, dim, (9, 3), stride=(2, 1), padding=(4, 1))),
            weight_norm(nn.Conv2d(dim, dim, (3, 3), padding=(1, 1))),
        ])
        self.out = weight_norm(nn.Conv2d(dim, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor):
        spec = torch.stft(x.float(), self.n_fft, self.hop, window=self.window, return_complex=True)
        h = torch.log1p(spec.abs())[:, None]  # (B, 1, F, frames), log-compressed magnitude
        fmaps = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
            fmaps.append(h)
        return self.out(h).flatten(1), fmaps


class Discriminators(nn.Module):
    """All period and resolution discriminators: ``forward(wav (B, T)) -> [(logits, fmaps)]``."""

    def __init__(self, dim: int = 8, periods=PERIODS, resolutions=RESOLUTIONS):
        super().__init__()
        self.discs = nn.ModuleList([PeriodDiscriminator(p, dim) for p in periods] +
                                   [ResolutionDiscriminator(n, h, dim) for n, h in resolutions])

    def forward(self, x: torch.Tensor):
        return [d(x) for d in self.discs]


def discriminator_loss(real, fake) -> torch.Tensor:
    """LSGAN loss of the discriminators: outputs of ``Discriminators`` on real and on
    (detached) generated audio."""
    return sum(torch.mean((1 - r) ** 2) + torch.mean(f ** 2) for (r, _), (f, _) in zip(real, fake))


def generator_losses(real, fake) -> tuple[torch.Tensor, torch.Tensor]:
    """``(adversarial, feature matching)`` losses of the generator; ``real`` is computed
    without gradient, ``fake`` with."""
    adv = sum(torch.mean((1 - f) ** 2) for f, _ in fake)
    fm = sum(F.l1_loss(ff, rf.detach()) for (_, rfs), (_, ffs) in zip(real, fake)
             for rf, ff in zip(rfs, ffs))
    return adv, fm


class Adversary:
    """The discriminators' side of adversarial vocoder training: :class:`Discriminators`
    of width ``dim``, their AdamW optimizer (betas 0.8, 0.99, as the generator's) and,
    in a distributed run, their DDP wrapper (``model``).  Their weights and optimizer
    state travel with the vocoder's checkpoints (``discriminator*.safetensors``)."""

    KEY = "discriminator"  # the checkpoint files' name

    def __init__(self, dim: int, lr: float, device, world: int = 1):
        self.disc = Discriminators(dim).to(device).train()
        self.opt = torch.optim.AdamW(self.disc.parameters(), lr=lr, betas=(0.8, 0.99),
                                     weight_decay=1e-2)
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.model = DDP(self.disc)
        else:
            self.model = self.disc

    def restore(self, ckpt) -> bool:
        """Weights and optimizer state from checkpoint ``ckpt``; False if it has none."""
        from .checkpoint import load_extra

        return load_extra(ckpt, self.KEY, self.disc, self.opt)

    def checkpoint_extra(self) -> dict:
        """``save_checkpoint``'s ``extra``."""
        return {self.KEY: (self.disc, self.opt)}

    def freeze(self) -> None:
        """No gradients into the discriminators (during the generator's step)."""
        self.disc.requires_grad_(False)

    def step(self, real: torch.Tensor, fake: torch.Tensor, lr: float, autocast) -> torch.Tensor:
        """One discriminator update on real and (detached) generated audio ``(B, T)`` at
        learning rate ``lr``; returns the loss (detached)."""
        self.disc.requires_grad_(True)
        for g in self.opt.param_groups:
            g["lr"] = lr
        with autocast:
            d_loss = discriminator_loss(self.model(real), self.model(fake))
        self.opt.zero_grad(set_to_none=True)
        d_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.disc.parameters(), 1.0)
        self.opt.step()
        return d_loss.detach()
