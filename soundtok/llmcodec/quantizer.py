"""Multi-scale residual VQ whose codebooks are frozen LLM embedding rows.

Scale ``k`` (coarsest first) sees the residual ``r`` of the encoder features
``(B, dim, Tm)`` at the mel frame rate:

1. ``x = down_k(r)`` -- strided conv to ``Tm / strides[k]`` frames
   (depthwise + 1x1 when ``resampler="separable"``);
2. ``e = normalise(proj_in_k(x))`` -- into the lookup space: the LLM hidden
   size, or with ``lookup_dim = d`` a ``d``-dimensional projection ``P_k`` of
   the scale's (centred) rows: their top ``d`` principal directions
   (``projection="pca"``, fixed) or a learned ``(d, hidden)`` matrix that starts
   there (``projection="learned"``: factorised codes as in ViT-VQGAN / DAC --
   the rows are frozen, the view of them is trained);
3. code = the nearest codebook row by cosine similarity in that space; the
   codebook is ``(V_k, hidden)`` rows of the LLM's input embedding matrix, a
   non-persistent buffer: never trained, never saved.  With ``center=True``
   the rows' mean is subtracted first (a fixed shift of the frozen rows:
   codes still index the LLM's tokens);
4. ``q = normalise(P_k row)``; straight-through ``q_st = e + (q - e).detach()``;
5. ``y = up_k(proj_out_k(q_st))`` back to ``Tm`` frames; ``r <- r - y``.

The quantised features are ``sum_k y_k``.  Losses: the commitment loss
``mean ||e - sg(q)||^2``; with a learned projection the codebook loss
``mean ||sg(e) - q||^2``, which trains ``P_k`` only (the rows cannot move);
and, in training, a code-usage loss per scale: the mean per-frame
entropy of ``softmax(cos / temperature)`` minus the entropy of its batch mean,
divided by ``log V`` (low when each frame is sure of its row and the batch
spreads over many rows).  The forward pass also returns how often each row
was chosen (:func:`code_perplexity` turns counts into the effective number of rows).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..codec.layers import Upsample, downsample


class SeparableDown(nn.Module):
    """Depthwise strided conv then 1x1: ``(B, dim, T) -> (B, dim, T // stride)``."""

    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.dw = nn.Conv1d(dim, dim, 2 * stride, stride=stride, padding=stride // 2, groups=dim)
        self.pw = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class SeparableUp(nn.Module):
    """Repeat ``stride`` times, depthwise conv, 1x1: ``(B, dim, T) -> (B, dim, T * stride)``."""

    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.stride = stride
        self.dw = nn.Conv1d(dim, dim, 2 * stride + 1, padding=stride, groups=dim)
        self.pw = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x.repeat_interleave(self.stride, dim=-1)))


def _resamplers(kind: str, dim: int, stride: int) -> tuple[nn.Module, nn.Module]:
    if stride == 1:
        return nn.Identity(), nn.Identity()
    if kind == "separable":
        return SeparableDown(dim, stride), SeparableUp(dim, stride)
    return downsample(dim, stride), Upsample(dim, stride)


def usage_loss(e: torch.Tensor, cb: torch.Tensor, temperature: float) -> torch.Tensor:
    """Code-usage loss of unit vectors ``e (B, T, H)`` against unit rows ``cb (V, H)``:
    ``(mean_frames H(p) - H(mean_frames p)) / log V`` with ``p = softmax(e cb^T / temperature)``."""
    logp = torch.log_softmax((e.reshape(-1, e.shape[-1]) @ cb.t()) / temperature, dim=-1)
    p = logp.exp()
    frame_h = -(p * logp).sum(-1).mean()
    avg = p.mean(0)
    batch_h = -(avg * torch.log(avg.clamp_min(1e-12))).sum()
    return (frame_h - batch_h) / math.log(cb.shape[0])


def code_perplexity(counts: torch.Tensor) -> tuple[float, int]:
    """``(perplexity, rows used)`` of code counts ``(V,)``: ``exp`` of the entropy of
    the empirical distribution (the effective number of equally used rows) and the
    number of rows chosen at least once."""
    c = counts.double()
    total = float(c.sum())
    if total <= 0:
        return float("nan"), 0
    p = c[c > 0] / total
    return float(torch.exp(-(p * p.log()).sum())), int((c > 0).sum())


class FrozenEmbeddingRVQ(nn.Module):
    """``forward(h (B, dim, Tm)) -> (h_q, codes, quantized, losses)``.

    ``codes[k]`` is ``(B, Tm / strides[k])`` indices into scale ``k``'s
    codebook; ``quantized[k]`` the straight-through unit vectors
    ``(B, Tk, lookup_dim)`` in the lookup space (the LLM embedding space when
    ``lookup_dim`` is the hidden size).  ``losses["counts"]`` holds, per scale,
    how often each row was chosen ``(V_k,)`` (int64, no gradient).
    """

    def __init__(self, dim: int, hidden: int, strides: list[int], vocab_sizes: list[int],
                 commitment_weight: float = 0.25, resampler: str = "conv",
                 center: bool = False, entropy_weight: float = 0.0,
                 entropy_temperature: float = 0.05, lookup_dim: int = 0,
                 projection: str = "pca"):
        super().__init__()
        self.strides, self.hidden = list(strides), hidden
        self.lookup_dim = lookup_dim if 0 < lookup_dim < hidden else hidden
        ld = self.lookup_dim
        self.learned = projection == "learned" and ld < hidden
        self.commitment_weight = commitment_weight
        self.center, self.entropy_weight = center, entropy_weight
        self.entropy_temperature = entropy_temperature
        pairs = [_resamplers(resampler, dim, s) for s in strides]
        self.down = nn.ModuleList(d for d, _ in pairs)
        self.proj_in = nn.ModuleList(nn.Conv1d(dim, ld, 1) for _ in strides)
        self.proj_out = nn.ModuleList(nn.Conv1d(ld, dim, 1) for _ in strides)
        self.up = nn.ModuleList(u for _, u in pairs)
        # learned lookup projections P_k (lookup_dim, hidden), set from the rows by init_projections()
        self.row_proj = (nn.ParameterList(nn.Parameter(torch.zeros(ld, hidden)) for _ in strides)
                         if self.learned else None)
        for k, n in enumerate(vocab_sizes):
            self.register_buffer(f"codebook_{k}", torch.zeros(n, hidden), persistent=False)
            self.register_buffer(f"lookup_{k}", torch.zeros(n, ld), persistent=False)
            self.register_buffer(f"row_mean_{k}", torch.zeros(hidden), persistent=False)

    @property
    def num_scales(self) -> int:
        return len(self.strides)

    def codebook(self, k: int) -> torch.Tensor:
        """Raw LLM embedding rows of scale ``k``, ``(V_k, hidden)``."""
        return getattr(self, f"codebook_{k}")

    def set_codebooks(self, rows: list[torch.Tensor]) -> None:
        """Copy the frozen LLM rows in (shapes must match the vocab sizes) and
        derive the unit lookup rows from them (:meth:`lookup_rows`).  A learned
        projection is left as it is (see :meth:`init_projections`)."""
        for k, r in enumerate(rows):
            cb = self.codebook(k)
            if tuple(r.shape) != tuple(cb.shape):
                raise ValueError(f"scale {k}: codebook rows {tuple(r.shape)} != {tuple(cb.shape)}")
            cb.copy_(r.detach().to(cb.dtype))
            mean = getattr(self, f"row_mean_{k}")
            mean.copy_(cb.mean(dim=0)) if self.center else mean.zero_()
            if not self.learned:
                getattr(self, f"lookup_{k}").copy_(self.lookup_rows(cb))

    @torch.no_grad()
    def init_projections(self) -> None:
        """A learned projection's starting point: each scale's top ``lookup_dim``
        principal directions (:meth:`principal_directions`).  Called once, for a new codec."""
        if self.learned:
            for k in range(self.num_scales):
                self.row_proj[k].copy_(self.principal_directions(self.codebook(k)).float())

    def principal_directions(self, rows: torch.Tensor) -> torch.Tensor:
        """The top ``lookup_dim`` principal directions of ``rows (V, hidden)``, ``(lookup_dim,
        hidden)`` float64 (SVD, each direction's sign fixed so that its largest entry is
        positive: the same on every machine)."""
        x = rows.detach().double()
        _, _, vh = torch.linalg.svd(x - x.mean(dim=0, keepdim=True), full_matrices=False)
        p = vh[:self.lookup_dim]
        return p * torch.sign(p.gather(1, p.abs().argmax(dim=1, keepdim=True)))

    def lookup_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Raw rows ``(V, hidden)`` -> unit lookup rows ``(V, lookup_dim)``: minus
        their mean (``center``), projected on their top ``lookup_dim`` principal
        directions (:meth:`principal_directions`), normalised."""
        x = rows.detach().double()
        if self.center:
            x = x - x.mean(dim=0, keepdim=True)
        if self.lookup_dim < self.hidden:
            x = x @ self.principal_directions(rows).t()
        return F.normalize(x, dim=-1).float()

    def normalized_codebook(self, k: int) -> torch.Tensor:
        """Unit lookup rows of scale ``k``, ``(V_k, lookup_dim)`` (with a learned
        projection: ``normalise((row - mean) P_k^T)``, differentiable in ``P_k``)."""
        if self.learned:
            rows = self.codebook(k) - getattr(self, f"row_mean_{k}")
            return F.normalize(rows @ self.row_proj[k].t(), dim=-1)
        return getattr(self, f"lookup_{k}")

    def embed(self, k: int, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, Tk)`` of scale ``k`` -> features ``(B, dim, Tk * stride)``."""
        q = F.embedding(codes, self.normalized_codebook(k))
        return self.up[k](self.proj_out[k](q.transpose(1, 2)))

    def forward(self, h: torch.Tensor):
        r, total = h, torch.zeros_like(h)
        codes, quantized, counts = [], [], []
        commit = h.new_zeros((), dtype=torch.float32)
        codebook = h.new_zeros((), dtype=torch.float32)
        usage = h.new_zeros((), dtype=torch.float32)
        for k in range(self.num_scales):
            e = F.normalize(self.proj_in[k](self.down[k](r)).float().transpose(1, 2), dim=-1)
            cb = self.normalized_codebook(k)
            idx = (e @ cb.t().detach()).argmax(dim=-1)
            if self.training and self.entropy_weight > 0:
                usage = usage + usage_loss(e, cb, self.entropy_temperature)
            q = F.embedding(idx, cb)
            commit = commit + F.mse_loss(e, q.detach())
            if self.learned:
                codebook = codebook + F.mse_loss(q, e.detach())
            q_st = e + (q - e).detach()
            y = self.up[k](self.proj_out[k](q_st.transpose(1, 2).to(h.dtype)))
            r = r - y
            total = total + y
            codes.append(idx)
            quantized.append(q_st)
            counts.append(torch.bincount(idx.flatten().detach(), minlength=cb.shape[0]))
        losses = {"commit": commit * self.commitment_weight / self.num_scales, "counts": counts}
        if self.learned:
            losses["codebook"] = codebook / self.num_scales
        if self.training and self.entropy_weight > 0:
            losses["usage"] = usage / self.num_scales
        return total, codes, quantized, losses

    def decode(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Codes of every scale (full padded lengths) -> quantised features ``(B, dim, Tm)``."""
        return sum(self.embed(k, c) for k, c in enumerate(codes))
