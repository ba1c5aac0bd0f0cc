"""Semantic and text heads: what the tokens must say about the teacher's features and the words.

Semantic distillation (X-Codec, SpeechTokenizer): a small network reads the
*quantised* token embedding ``(B, tok_dim, Tt)`` and predicts the frozen
teacher's features on the same 25 Hz grid ``(B, teacher_dim, Tt)``; the loss
flows through the straight-through VQ into the tokenizer encoder, so the codes
must carry what the teacher hears (phones, words), not only the spectrum. The
head is used in training only (its loss is :func:`soundtok.train.codec_stages.semantic_loss`);
decoding never runs it.

The text head (``text_weight > 0``) reads the same quantised embedding and
gives per-token log-probabilities over :data:`ALPHABET` plus the CTC blank
(index 0); trained with CTC on transcripts, it makes the codes spell the words
directly.  Also training only.
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



#: The text head's characters (index i+1; 0 is the CTC blank): space, apostrophe, a-z.
ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"


class TextHead(nn.Module):
    """Quantised token features ``(B, tok_dim, Tt)`` -> character log-probabilities
    ``(B, Tt, len(ALPHABET) + 1)`` (index 0: the CTC blank)."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        d = cfg.tok_dim
        self.inp = nn.Conv1d(cfg.tok_dim, d, 3, padding=1)
        self.stack = Stack(d, cfg.text_layers, cfg.kernel_size)
        self.out = nn.Sequential(ChannelNorm(d), nn.Conv1d(d, len(ALPHABET) + 1, 1))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.out(self.stack(self.inp(q))).float().transpose(1, 2).log_softmax(-1)
