"""An LLM that reads and writes audio tokens: base model + LoRA + audio rows.

:class:`AudioLM` wraps a Hugging Face causal LM (usually with LoRA adapters
injected by peft) and adds one small trainable matrix, ``audio_embed``
(``vocab.size x hidden``), holding the input embeddings of the audio tokens
(:mod:`soundtok.audiolm.vocabulary`).  When the LLM ties its input and output
embeddings (Gemma, SmolLM2) the same matrix scores audio tokens at the output;
otherwise a second matrix ``audio_head`` does.  The LLM's own 262k-row
embedding stays frozen and untouched.

Text and audio have separate output softmaxes: a position whose next token is
text is scored by the LLM's head over its own vocabulary, a position whose
next token is audio by the audio rows only.  This matches decoding (captions
never emit audio tokens; generation is restricted to audio tokens) and lets
training compute the expensive text head only where a text token is
predicted.
"""

from __future__ import annotations

import functools
import inspect

import torch
import torch.nn.functional as F
from torch import nn

from ..thirdparty import quiet_libraries
from .vocabulary import AudioVocab


@functools.cache
def _cache_argument(decoder_class: type) -> str:
    """``cache`` where the decoder's ``forward`` takes it (newer transformers), else ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(decoder_class.forward).parameters else "past_key_values"


class AudioLM(nn.Module):
    """``lm`` (a peft model or a plain HF causal LM) + audio-token rows."""

    def __init__(self, lm: nn.Module, vocab: AudioVocab, *, seed: int = 0, init_rows: bool = True) -> None:
        """``init_rows`` False leaves the audio rows uninitialised, for a caller that loads
        them next (:func:`~.adapter.load_audio_weights`)."""
        super().__init__()
        self.lm = lm
        self.vocab = vocab
        base = self.base_model
        emb = base.get_input_embeddings()
        if emb.num_embeddings != vocab.base_size:
            raise ValueError(f"LLM has {emb.num_embeddings} embedding rows, vocabulary expects {vocab.base_size}")
        rows = _init_rows if init_rows else _empty_rows
        self.audio_embed = nn.Parameter(rows(emb.weight, vocab.size, seed))
        out = base.get_output_embeddings()
        if out is not None:
            contiguous_head(out)
        tied = out is None or out.weight is emb.weight
        self.audio_head = None if tied else nn.Parameter(rows(out.weight, vocab.size, seed + 1))
        scale = getattr(emb, "embed_scale", None)
        self._embed_scale = float(scale) if scale is not None else 1.0
        cfg = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
        self._softcap = getattr(cfg, "final_logit_softcapping", None)
        self.meta: dict = {}  # adapter metadata; saved and loaded by soundtok.audiolm.adapter

    @property
    def base_model(self) -> nn.Module:
        """The HF causal LM (with LoRA layers injected when there are any)."""
        get = getattr(self.lm, "get_base_model", None)
        return get() if get is not None else self.lm

    @property
    def dtype(self) -> torch.dtype:
        return self.base_model.get_input_embeddings().weight.dtype

    @property
    def device(self) -> torch.device:
        return self.audio_embed.device

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # -- pieces ------------------------------------------------------------------------

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings of a mix of text ids (< base_size) and audio ids."""
        base_size = self.vocab.base_size
        is_audio = ids >= base_size
        text = self.base_model.get_input_embeddings()(ids.masked_fill(is_audio, 0))
        if not bool(is_audio.any()):
            return text
        audio = F.embedding((ids - base_size).clamp(min=0), self.audio_embed) * self._embed_scale
        return torch.where(is_audio.unsqueeze(-1), audio.to(text.dtype), text)

    @quiet_libraries()
    def hidden(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               position_ids: torch.Tensor | None = None, past_key_values=None,
               use_cache: bool = False):
        """Final hidden states ``(B, L, H)`` and the KV cache (None without ``use_cache``)."""
        decoder = self.base_model.get_decoder()
        name = _cache_argument(type(decoder))  # transformers renamed past_key_values to cache
        out = decoder(inputs_embeds=self.embed(ids), attention_mask=attention_mask,
                      position_ids=position_ids, use_cache=use_cache, **{name: past_key_values})
        return out.last_hidden_state, (getattr(out, name) if use_cache else None)

    def _cap(self, logits: torch.Tensor) -> torch.Tensor:
        if self._softcap:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return logits

    def text_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Scores over the LLM's own vocabulary (the big head)."""
        return self._cap(self.base_model.get_output_embeddings()(h))

    def audio_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Scores over the audio tokens only (``vocab.size`` columns)."""
        w = self.audio_head if self.audio_head is not None else self.audio_embed
        return self._cap(F.linear(h, w.to(h.dtype)))

    # -- training ----------------------------------------------------------------------

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
        """Summed cross-entropy over the positions where ``targets >= 0``.

        ``targets[b, t]`` is the id that should follow position ``t`` (-100
        elsewhere).  Hidden states are gathered at those positions before any
        head runs, so prompt positions cost no head computation at all.
        """
        h, _ = self.hidden(ids, attention_mask)
        sel = targets >= 0
        hs, tgt = h[sel], targets[sel]
        is_audio = tgt >= self.vocab.base_size
        loss = torch.zeros((), dtype=torch.float32, device=h.device)
        if bool((~is_audio).any()):
            logits = self.text_logits(hs[~is_audio]).float()
            loss = loss + F.cross_entropy(logits, tgt[~is_audio], reduction="sum")
        if bool(is_audio.any()):
            logits = self.audio_logits(hs[is_audio]).float()
            loss = loss + F.cross_entropy(logits, tgt[is_audio] - self.vocab.base_size, reduction="sum")
        return loss


def contiguous_head(head: nn.Module) -> None:
    """Make ``head`` copy a strided input first (once per module).

    generate() feeds the head a strided slice (last position); for such input torch's CPU
    linear copies the whole 262k-row weight on every call (~3 s). A copy of the small input
    avoids that."""
    if not getattr(head, "_soundtok_contiguous", False):
        head.register_forward_pre_hook(_contiguous_input)
        head._soundtok_contiguous = True


def _contiguous_input(module, args):
    return (args[0].contiguous(), *args[1:])


def _empty_rows(weight: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    return torch.empty(n, weight.shape[1], dtype=torch.float32, device=weight.device)


@torch.no_grad()
def _init_rows(weight: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """New rows: the mean of existing rows plus noise of their per-dimension spread.

    Statistics come from at most 16k rows so a 262k-row matrix is never copied
    to float32 in full.
    """
    gen = torch.Generator().manual_seed(seed)
    rows = weight.shape[0]
    idx = torch.randperm(rows, generator=gen)[: min(rows, 16384)].to(weight.device)
    sample = weight.detach()[idx].float().cpu()
    mean, std = sample.mean(0), sample.std(0).clamp_min(1e-6)
    noise = torch.randn(n, weight.shape[1], generator=gen)
    return (mean + 0.5 * std * noise).to(weight.device)
