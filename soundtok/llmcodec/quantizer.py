"""Multi-scale residual VQ whose codebooks are frozen LLM embedding rows.

Scale ``k`` (coarsest first) sees the residual ``r`` of the encoder features
``(B, dim, Tm)`` at the mel frame rate:

1. ``x = down_k(r)`` -- strided conv to ``Tm / strides[k]`` frames;
2. ``e = normalise(proj_in_k(x))`` -- into the LLM hidden size;
3. code = the nearest codebook row by cosine similarity; the codebook is
   ``(V_k, hidden)`` rows of the LLM's input embedding matrix, a
   non-persistent buffer: never trained, never saved;
4. ``q = normalise(row)``; straight-through ``q_st = e + (q - e).detach()``;
5. ``y = up_k(proj_out_k(q_st))`` back to ``Tm`` frames; ``r <- r - y``.

The quantised features are ``sum_k y_k``.  The only loss here is the
commitment loss ``mean ||e - sg(q)||^2`` (the codebook cannot move, so there is
no codebook loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..codec.layers import Upsample, downsample


class FrozenEmbeddingRVQ(nn.Module):
    """``forward(h (B, dim, Tm)) -> (h_q, codes, quantized, losses)``.

    ``codes[k]`` is ``(B, Tm / strides[k])`` indices into scale ``k``'s
    codebook; ``quantized[k]`` the straight-through unit vectors
    ``(B, Tk, hidden)`` in the LLM embedding space.
    """

    def __init__(self, dim: int, hidden: int, strides: list[int], vocab_sizes: list[int],
                 commitment_weight: float = 0.25):
        super().__init__()
        self.strides, self.hidden = list(strides), hidden
        self.commitment_weight = commitment_weight
        self.down = nn.ModuleList(downsample(dim, s) for s in strides)
        self.proj_in = nn.ModuleList(nn.Conv1d(dim, hidden, 1) for _ in strides)
        self.proj_out = nn.ModuleList(nn.Conv1d(hidden, dim, 1) for _ in strides)
        self.up = nn.ModuleList(Upsample(dim, s) for s in strides)
        for k, n in enumerate(vocab_sizes):
            self.register_buffer(f"codebook_{k}", torch.zeros(n, hidden), persistent=False)

    @property
    def num_scales(self) -> int:
        return len(self.strides)

    def codebook(self, k: int) -> torch.Tensor:
        """Raw LLM embedding rows of scale ``k``, ``(V_k, hidden)``."""
        return getattr(self, f"codebook_{k}")

    def set_codebooks(self, rows: list[torch.Tensor]) -> None:
        """Copy the frozen LLM rows in (shapes must match the vocab sizes)."""
        for k, r in enumerate(rows):
            cb = self.codebook(k)
            if tuple(r.shape) != tuple(cb.shape):
                raise ValueError(f"scale {k}: codebook rows {tuple(r.shape)} != {tuple(cb.shape)}")
            cb.copy_(r.detach().to(cb.dtype))

    def normalized_codebook(self, k: int) -> torch.Tensor:
        return F.normalize(self.codebook(k).float(), dim=-1)

    def embed(self, k: int, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, Tk)`` of scale ``k`` -> features ``(B, dim, Tk * stride)``."""
        q = F.embedding(codes, self.normalized_codebook(k))
        return self.up[k](self.proj_out[k](q.transpose(1, 2)))

    def forward(self, h: torch.Tensor):
        r, total = h, torch.zeros_like(h)
        codes, quantized = [], []
        commit = h.new_zeros((), dtype=torch.float32)
        for k in range(self.num_scales):
            e = F.normalize(self.proj_in[k](self.down[k](r)).float().transpose(1, 2), dim=-1)
            cb = self.normalized_codebook(k)
            idx = (e @ cb.t()).argmax(dim=-1)
            q = F.embedding(idx, cb)
            commit = commit + F.mse_loss(e, q.detach())
            q_st = e + (q - e).detach()
            y = self.up[k](self.proj_out[k](q_st.transpose(1, 2).to(h.dtype)))
            r = r - y
            total = total + y
            codes.append(idx)
            quantized.append(q_st)
        losses = {"commit": commit * self.commitment_weight / self.num_scales}
        return total, codes, quantized, losses

    def decode(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Codes of every scale (full padded lengths) -> quantised features ``(B, dim, Tm)``."""
        return sum(self.embed(k, c) for k, c in enumerate(codes))
