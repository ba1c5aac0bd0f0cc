"""Decoders from tokens back to the VAE latent.

* :class:`FlowDecoder` -- conditional flow matching (Lipman et al. 2023, the
  "optimal transport" path with ``sigma_min``): a velocity network
  ``v(x_t, t | tokens)`` is trained to move Gaussian noise to the latent; decoding
  integrates the ODE from ``t=0`` to ``1`` in ``steps`` Euler or midpoint steps.
  Classifier-free guidance: conditioning is dropped with probability
  ``fm_cond_dropout`` during training; ``guidance > 1`` extrapolates at sampling.
  With ``fm_prior="mse"`` the conditioning also holds a frame-aligned prior,
  the MSE decoder's predicted latent ``mu (B, latent_dim, Tl)`` (as CosyVoice
  conditions on its encoder's mu); with ``fm_residual`` the flow generates the
  residual ``z - mu`` and the decoded latent is ``mu + x``. Dropping the
  condition drops tokens and prior together.
* :class:`MSEDecoder` -- the deterministic baseline: the same conditioning
  network regressing the latent directly with an MSE loss (it over-smooths).

Latents here are the VAE means normalised per channel: ``(B, latent_dim, Tl)``.
Token features arrive as ``(B, tok_dim, Tt)`` with ``Tl = Tt * token_stride``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import CodecConfig
from .layers import ChannelNorm, Stack, Upsample, timestep_embedding

NOISE_BLOCK = 256  # latent frames per independently seeded noise block


class TokenConditioner(nn.Module):
    """Quantised token features ``(B, tok_dim, Tt)`` -> ``(B, fm_dim, Tt*token_stride)``."""

    def __init__(self, cfg: CodecConfig, layers: int):
        super().__init__()
        self.inp = nn.Conv1d(cfg.tok_dim, cfg.fm_dim, 3, padding=1)
        self.up = Upsample(cfg.fm_dim, cfg.token_stride)
        self.stack = Stack(cfg.fm_dim, layers, cfg.kernel_size)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.stack(self.up(self.inp(q)))


class FlowDecoder(nn.Module):
    """Conditional flow-matching generator of latents from token features."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        d = cfg.fm_dim
        self.sigma_min, self.cond_dropout = cfg.fm_sigma_min, cfg.fm_cond_dropout
        self.cond = TokenConditioner(cfg, cfg.fm_cond_layers)
        self.prior_in = (nn.Conv1d(cfg.latent_dim, d, cfg.kernel_size, padding=cfg.kernel_size // 2)
                         if cfg.fm_prior == "mse" else None)
        self.residual = cfg.fm_residual
        self.null_cond = nn.Parameter(torch.zeros(d, 1))
        self.x_in = nn.Conv1d(cfg.latent_dim, d, 3, padding=1)
        self.t_mlp = nn.Sequential(nn.Linear(128, d), nn.SiLU(), nn.Linear(d, d))
        self.stack = Stack(d, cfg.fm_layers, cfg.kernel_size, cond_dim=d)
        self.out = nn.Sequential(ChannelNorm(d), nn.Conv1d(d, cfg.latent_dim, 1))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``x (B, latent_dim, Tl)``, ``t (B,)``, conditioning ``h (B, fm_dim, Tl)`` -> velocity."""
        c = self.t_mlp(timestep_embedding(t, 128).to(h.dtype))
        return self.out(self.stack(self.x_in(x) + h, c)).float()

    def condition(self, q: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        """Token features ``(B, tok_dim, Tt)`` (+ prior latent ``(B, latent_dim, Tl)``) -> ``(B, fm_dim, Tl)``."""
        h = self.cond(q)
        if self.prior_in is not None:
            if prior is None:
                raise ValueError("this flow decoder is conditioned on a prior latent (fm_prior)")
            h = h + self.prior_in(prior.to(h.dtype))
        return h

    def loss(self, z: torch.Tensor, q: torch.Tensor, prior: torch.Tensor | None = None,
             drop: torch.Tensor | None = None) -> torch.Tensor:
        """Flow-matching loss for target latents ``z`` given token features ``q``
        (and the prior, detached by the caller). ``drop (B,)`` bool forces which
        items lose their condition (default: random, probability ``cond_dropout``)."""
        h = self.condition(q, prior)
        if self.residual:
            z = z - prior
        if drop is not None:
            h = torch.where(drop[:, None, None], self.null_cond.to(h.dtype).expand_as(h), h)
        elif self.training and self.cond_dropout > 0:
            drop = torch.rand(h.shape[0], 1, 1, device=h.device) < self.cond_dropout
            h = torch.where(drop, self.null_cond.to(h.dtype).expand_as(h), h)
        b = z.shape[0]
        t = torch.sigmoid(torch.randn(b, device=z.device))  # logit-normal times
        x0 = torch.randn_like(z)
        tt = t[:, None, None]
        xt = (1 - (1 - self.sigma_min) * tt) * x0 + tt * z
        target = z - (1 - self.sigma_min) * x0
        return F.mse_loss(self.velocity(xt, t, h), target)

    @torch.no_grad()
    def sample(self, q: torch.Tensor, steps: int = 6, guidance: float = 1.0,
               noise: torch.Tensor | None = None, solver: str = "euler",
               prior: torch.Tensor | None = None) -> torch.Tensor:
        """Integrate the ODE: token features ``q (B, tok_dim, Tt)`` (+ prior) -> latents ``(B, latent_dim, Tl)``.

        ``guidance`` w: ``v = v_uncond + w (v_cond - v_uncond)`` (1 = plain conditional)."""
        h = self.condition(q, prior)
        x = noise if noise is not None else torch.randn(
            h.shape[0], self.out[1].out_channels, h.shape[-1], device=h.device)
        null = self.null_cond.to(h.dtype).expand_as(h) if guidance != 1.0 else None

        def v(x_: torch.Tensor, t_: float) -> torch.Tensor:
            t = torch.full((x_.shape[0],), t_, device=x_.device)
            vc = self.velocity(x_, t, h)
            if null is None:
                return vc
            return self.velocity(x_, t, null) + guidance * (vc - self.velocity(x_, t, null))

        dt = 1.0 / steps
        for i in range(steps):
            t0 = i * dt
            if solver == "midpoint":
                x = x + dt * v(x + 0.5 * dt * v(x, t0), t0 + 0.5 * dt)
            else:
                x = x + dt * v(x, t0)
        return prior + x if self.residual else x


class MSEDecoder(nn.Module):
    """Deterministic baseline: token features ``(B, tok_dim, Tt)`` -> latent ``(B, latent_dim, Tl)``."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cond = TokenConditioner(cfg, cfg.mse_layers)
        self.out = nn.Sequential(ChannelNorm(cfg.fm_dim), nn.Conv1d(cfg.fm_dim, cfg.latent_dim, 1))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.out(self.cond(q)).float()

    def loss(self, z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self(q), z)


def block_noise(shape: tuple[int, int, int], start: int, seed: int) -> torch.Tensor:
    """Gaussian noise ``(B, C, T)`` for latent frames ``start .. start+T`` of a stream.

    Noise is drawn in blocks of :data:`NOISE_BLOCK` frames, each from a generator
    seeded by ``(seed, block index)``, so any window of the stream receives the
    same noise whether it is decoded whole or in chunks.
    """
    b, c, t = shape
    first, last = start // NOISE_BLOCK, (start + t - 1) // NOISE_BLOCK
    parts = []
    for blk in range(first, last + 1):
        g = torch.Generator().manual_seed((seed * 1_000_003 + blk) % (2**63))
        parts.append(torch.randn(b, c, NOISE_BLOCK, generator=g))
    full = torch.cat(parts, dim=-1)
    off = start - first * NOISE_BLOCK
    return full[..., off:off + t]
