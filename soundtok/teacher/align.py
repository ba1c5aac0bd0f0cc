"""Teacher frames (50 Hz) onto the codec's frame grid, and onto coarser grids.

A teacher frame ``k`` is centred on sample ``320 k``; codec frame ``i`` of hop
``H`` samples (320 = latent, 50 Hz; 640 = tokens, 25 Hz at the defaults) spans
samples ``[i H, (i + 1) H)`` and is centred on ``(i + 0.5) H``. Each codec
frame is a triangular-weighted mean of the teacher frames within ``H`` samples
of its centre: for ``H = 640`` the weights are 1/4, 1/2, 1/4 on teacher frames
``2i, 2i + 1, 2i + 2``; for ``H = 320`` 1/2, 1/2 on ``i, i + 1``.

Features already on a grid of hop ``H`` go to a grid of hop ``f H`` (e.g. the
LLM-Codec's 3.125 Hz word scale from the cached 25 Hz grid, ``f = 8``) by
:func:`pool_frames`: coarse frame ``j`` is the plain mean of fine frames
``f j .. f j + f - 1``, the ones inside its span.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TEACHER_HOP = 320


def align_weights(hop: int) -> tuple[int, torch.Tensor]:
    """``(first offset, weights)``: codec frame ``i`` = ``sum_j w_j f[r i + first + j]``, ``r = hop/320``."""
    if hop % TEACHER_HOP:
        raise ValueError(f"codec hop {hop} is not a multiple of the teacher hop {TEACHER_HOP}")
    r = hop // TEACHER_HOP
    centre = 0.5 * r  # codec frame 0's centre, in teacher frames
    first, last = math.floor(centre - r) + 1, math.ceil(centre + r) - 1
    w = torch.tensor([1.0 - abs(k - centre) / r for k in range(first, last + 1)])
    return first, w / w.sum()


def to_codec_frames(feats: torch.Tensor, hop: int, n_frames: int) -> torch.Tensor:
    """Teacher features ``(B, D, T50)`` -> ``(B, D, n_frames)`` on the grid of hop ``hop``.

    Teacher frames missing at either edge repeat the nearest one."""
    first, w = align_weights(hop)
    r = hop // TEACHER_HOP
    b, d, t = feats.shape
    need = r * (n_frames - 1) + first + w.numel()  # one past the last frame read
    left = max(0, -first)
    x = F.pad(feats.float(), (left, max(0, need - t)), mode="replicate")
    x = x[..., first + left:]
    kernel = w.to(x)[None, None].expand(d, 1, -1)
    return F.conv1d(x, kernel, stride=r, groups=d)[..., :n_frames]


def pool_frames(feats: torch.Tensor, factor: int) -> torch.Tensor:
    """``(B, D, T)`` on a grid of hop ``H`` -> ``(B, D, T // factor)`` on the grid of hop
    ``factor * H``: each coarse frame the mean of the ``factor`` fine frames it spans
    (a trailing remainder of fewer than ``factor`` frames is dropped)."""
    if factor < 1:
        raise ValueError(f"pooling factor {factor} must be >= 1")
    b, d, t = feats.shape
    n = t // factor
    return feats[..., :n * factor].float().reshape(b, d, n, factor).mean(dim=-1)
