"""Semantic head: what the tokens must say about the teacher's features.

Semantic distillation (X-Codec, SpeechTokenizer): a small network reads the
*quantised* token embedding ``(B, tok_dim, Tt)`` and predicts the frozen
teacher's features on the same 25 Hz grid ``(B, teacher_dim, Tt)``; the loss
flows through the straight-through VQ into the tokenizer encoder, so the codes
must carry what the teacher hears (phones, words), not only the spectrum. The
head is used in training only (its loss is :func:`soundtok.train.codec_stages.semantic_loss`);
decoding never runs it.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import CodecConfig
from .layers import ChannelNorm, Stack


class SemanticHead(nn.Module):
    """Quantised token features ``(B, tok_dim, Tt)`` -> teacher-feature estimate ``(B, teacher_dim, Tt)``."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        d = cfg.tok_dim
        self.inp = nn.Conv1d(cfg.tok_dim, d, 3, padding=1)
        self.stack = Stack(d, cfg.sem_layers, cfg.kernel_size)
        self.out = nn.Sequential(ChannelNorm(d), nn.Conv1d(d, cfg.teacher_dim, 1))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.out(self.stack(self.inp(q))).float()

