"""Vector quantiser with factorised, L2-normalised codes.

The encoder output ``(B, D, T)`` is projected to a low dimension
(``codebook_dim``), normalised, and snapped to the nearest of
``codebook_size`` normalised code vectors (cosine similarity). Low-dimensional
normalised lookups keep codebook usage high (as in Improved VQGAN / DAC).
Unused codes are restarted from recent encoder outputs during training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    """``forward(z (B, dim, T)) -> (z_q (B, dim, T), codes (B, T), losses dict)``."""

    def __init__(self, dim: int, codebook_size: int, codebook_dim: int,
                 commitment_weight: float = 0.25):
        super().__init__()
        self.codebook_size = codebook_size
        self.commitment_weight = commitment_weight
        self.proj_in = nn.Conv1d(dim, codebook_dim, 1)
        self.proj_out = nn.Conv1d(codebook_dim, dim, 1)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)
        nn.init.normal_(self.codebook.weight)
        self.register_buffer("usage", torch.ones(codebook_size), persistent=False)

    def normalized_codebook(self) -> torch.Tensor:
        return F.normalize(self.codebook.weight.float(), dim=-1)

    def codes_from_latent(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codes: ``z (B, dim, T) -> (codes (B, T), normalised projection (B, T, cd))``."""
        e = F.normalize(self.proj_in(z).float().transpose(1, 2), dim=-1)
        sim = e @ self.normalized_codebook().t()
        return sim.argmax(dim=-1), e

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, T)`` -> quantised vectors ``(B, dim, T)``."""
        q = F.embedding(codes, self.normalized_codebook())
        return self.proj_out(q.transpose(1, 2))

    def forward(self, z: torch.Tensor):
        codes, e = self.codes_from_latent(z)
        q = F.embedding(codes, self.normalized_codebook())
        losses = {
            "vq_codebook": F.mse_loss(q, e.detach()),
            "vq_commit": F.mse_loss(e, q.detach()) * self.commitment_weight,
        }
        q = e + (q - e).detach()  # straight-through estimator
        if self.training:
            with torch.no_grad():
                counts = torch.bincount(codes.flatten(), minlength=self.codebook_size)
                self.usage.mul_(0.99).add_(counts.float(), alpha=0.01)
        return self.proj_out(q.transpose(1, 2)), codes, losses

    @torch.no_grad()
    def restart_dead_codes(self, z: torch.Tensor, threshold: float = 1e-3) -> int:
        """Re-seed codes whose running usage fell below ``threshold`` with random
        encoder outputs from ``z (B, dim, T)``. Returns how many were restarted."""
        dead = torch.nonzero(self.usage < threshold).flatten()
        if dead.numel() == 0:
            return 0
        e = self.proj_in(z).float().transpose(1, 2).reshape(-1, self.codebook.weight.shape[1])
        pick = torch.randint(0, e.shape[0], (dead.numel(),), device=e.device)
        self.codebook.weight.data[dead] = e[pick] + 0.01 * torch.randn_like(e[pick])
        self.usage[dead] = 1.0
        return int(dead.numel())
