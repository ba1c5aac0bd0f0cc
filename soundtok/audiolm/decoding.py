"""Decoding: text from audio prompts (captions) and audio from text prompts.

Captions use transformers' ``generate`` on the prompt embeddings (greedy, beam
search or nucleus sampling); the LLM's own head is the only output, so a
caption can never contain audio tokens.

Audio generation has its own small loop with a KV cache: each step scores
only the audio rows (:meth:`AudioLM.audio_logits`), masks everything but the
codes of the codebook due at that position (and ``</audio>`` once a whole
frame period is complete), and stops at ``</audio>`` or the length cap.  Each
sequence samples from its own seeded generator, so a prompt's output does not
depend on what else is in the batch.
"""

from __future__ import annotations

import contextlib

import torch

from ..thirdparty import quiet_libraries


def left_pad(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``(ids, attention_mask)`` for a batch of id lists."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


@contextlib.contextmanager
def _quiet_generate():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


@torch.inference_mode()
@quiet_libraries()
def generate_text(alm, prompts: list[list[int]], *, eos_id: int, pad_id: int, max_new_tokens: int = 32,
                  beams: int = 1, sample: bool = False, temperature: float = 1.0,
                  top_p: float = 1.0) -> list[tuple[list[int], float]]:
    """Text continuations of a batch of prompts: ``(ids without <eos>, score)`` each.

    ``score`` is the mean natural-log probability per generated token (``<eos>``
    included) under the model's own distribution (before temperature or top-p): 0 is
    certain, about -1 or lower means the model was guessing.  With beam search it is the
    beam's length-normalised log probability, the same quantity."""
    ids, mask = left_pad(prompts, pad_id, alm.device)
    embeds = alm.embed(ids)
    if beams == 1 and getattr(alm.base_model, "soundtok_native", False):
        seqs, logits = _greedy_or_sampled(alm, embeds, mask, eos_id=eos_id, pad_id=pad_id,
                                          max_new_tokens=max_new_tokens, sample=sample,
                                          temperature=temperature, top_p=top_p)
        scores = _mean_logprobs(torch.stack(logits, dim=1), seqs, eos_id)
    else:
        from transformers import GenerationConfig

        config = GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=sample, num_beams=beams,
            temperature=temperature if sample else None, top_p=top_p if sample else None,
            top_k=None, eos_token_id=eos_id, pad_token_id=pad_id, num_return_sequences=1,
            bos_token_id=None, return_dict_in_generate=True, output_logits=beams == 1,
            output_scores=beams > 1, length_penalty=1.0)
        with _quiet_generate():
            out = _transformers_lm(alm).generate(inputs_embeds=embeds, attention_mask=mask,
                                                 generation_config=config)
        seqs = out.sequences
        if beams > 1:
            scores = [float(x) for x in out.sequences_scores]
        else:
            scores = _mean_logprobs(torch.stack(out.logits, dim=1), seqs[:, -len(out.logits):], eos_id)
    results = []
    for row, score in zip(seqs.tolist(), scores):
        if eos_id in row:
            row = row[: row.index(eos_id)]
        results.append(([t for t in row if t != pad_id], score))
    return results


#: The top-k cut of sampled captions: transformers' default, which its ``generate`` applies when
#: none is given (as ``generate_text`` does); kept for both decoders, so that the same seed
#: gives the same caption with either.
SAMPLE_TOP_K = 50


def _transformers_lm(alm):
    """A transformers causal LM for ``alm`` (the one it holds, or for a
    :mod:`soundtok.llm.gemma3` model the same weights loaded by transformers)."""
    lm = alm.base_model
    if not getattr(lm, "soundtok_native", False):
        return lm
    from .model import contiguous_head

    hf = lm.transformers_model()
    contiguous_head(hf.get_output_embeddings())
    return hf


def _greedy_or_sampled(alm, embeds: torch.Tensor, mask: torch.Tensor, *, eos_id: int, pad_id: int,
                       max_new_tokens: int, sample: bool, temperature: float, top_p: float
                       ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Greedy or sampled decoding with a KV cache from prompt embeddings ``(B, L, H)`` with
    left padding ``mask`` ``(B, L)``: the tokens ``(B, T)`` (``pad_id`` after a row's
    ``<eos>``) and the raw float32 logits ``(B, V)`` of each step.

    Step for step what transformers' ``generate`` does for these settings (positions from the
    mask, one new position per step, a finished row fed ``pad_id``, stop when every row has
    ended or after ``max_new_tokens``; sampling: temperature, the top-k cut of
    :data:`SAMPLE_TOP_K`, top-p, then one draw of ``torch.multinomial`` from the global
    generator), so the two give the same captions."""
    batch = embeds.shape[0]
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    out = alm.base_model.get_decoder()(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                                       use_cache=True)
    h, cache = out.last_hidden_state, out.cache
    unfinished = torch.ones(batch, dtype=torch.long, device=embeds.device)
    tokens: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    for step in range(max_new_tokens):
        step_logits = alm.text_logits(h[:, -1:, :])[:, -1].to(copy=True, dtype=torch.float32)
        logits.append(step_logits)
        if sample:
            probs = torch.softmax(_warp(step_logits, temperature, top_p), dim=-1)
            chosen = torch.multinomial(probs, num_samples=1).squeeze(1)
        else:
            chosen = torch.argmax(step_logits, dim=-1)
        chosen = chosen * unfinished + pad_id * (1 - unfinished)
        tokens.append(chosen)
        unfinished = unfinished & ~(chosen == eos_id)
        if step + 1 == max_new_tokens or int(unfinished.max()) == 0:
            break
        mask = torch.cat([mask, mask.new_ones((batch, 1))], dim=-1)
        positions = positions[:, -1:] + 1
        h, cache = alm.hidden(chosen[:, None], mask, positions, past_key_values=cache, use_cache=True)
    return torch.stack(tokens, dim=1), logits


def _tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` (float32 logits ``(..., V)``; -inf for cut tokens), for any
    finite temperature > 0.  Where the plain quotient overflows -- a temperature near 0
    (or below float32's range) or a huge one -- the same distribution is computed from
    the logits minus their maximum, in float64: its limits are the most likely token
    alone (temperature -> 0) and all tokens not cut alike (temperature -> inf)."""
    if temperature == 1.0:
        return logits
    out = logits / temperature
    if not bool(torch.isnan(out).any()) and bool(torch.isfinite(out.amax(-1)).all()):
        return out
    x = logits.double()
    return ((x - x.amax(-1, keepdim=True)) / temperature).to(logits.dtype)


def _warp(scores: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Temperature, then top-k (:data:`SAMPLE_TOP_K`), then top-p, on logits ``(B, V)``:
    tokens cut are set to -inf (the most likely token always stays)."""
    scores = _tempered(scores, temperature)
    k = min(SAMPLE_TOP_K, scores.size(-1))
    scores = scores.masked_fill(scores < torch.topk(scores, k)[0][..., -1, None], -float("inf"))
    if top_p < 1.0:
        ascending, order = torch.sort(scores, descending=False)
        cut = ascending.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
        cut[..., -1:] = 0
        scores = scores.masked_fill(cut.scatter(1, order, cut), -float("inf"))
    return scores


def _mean_logprobs(logits: torch.Tensor, tokens: torch.Tensor, eos_id: int) -> list[float]:
    """Mean log-probability of ``tokens`` ``(B, T)`` under ``logits`` ``(B, T, V)``, per row,
    up to and including the first ``eos_id`` (what follows it is padding)."""
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    is_eos = tokens == eos_id
    after = (is_eos.cumsum(dim=1) - is_eos.long()) > 0  # positions after the first <eos>
    keep = (~after).float()
    return [float(x) for x in (logp * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)]


def _pick(logits: torch.Tensor, gen: torch.Generator | None, temperature: float, top_p: float) -> int:
    """One token from a 1-D row of logits: argmax (``gen is None``) or nucleus sampling."""
    if gen is None or temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(_tempered(logits.float().cpu(), temperature), dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        keep = (sorted_p.cumsum(0) - sorted_p) < top_p
        keep[0] = True  # the most likely token always stays (a top-p below float32's range keeps only it)
        sorted_p = sorted_p * keep
        return int(order[torch.multinomial(sorted_p, 1, generator=gen)])
    return int(torch.multinomial(probs, 1, generator=gen))


@torch.inference_mode()
@quiet_libraries()
def generate_audio(alm, prompts: list[list[int]], *, pad_id: int, max_tokens: int,
                   seeds: list[int] | None = None, temperature: float = 1.0,
                   top_p: float = 1.0) -> list[list[int]]:
    """Audio ids (codes, without ``</audio>``) continuing prompts that end with ``<audio>``.

    ``max_tokens`` is rounded down to whole frame periods (at least one);
    ``seeds=None`` decodes greedily.
    """
    vocab = alm.vocab
    schedule = vocab.schedule()
    period = len(schedule)
    max_tokens = max(period, max_tokens - max_tokens % period)
    ids, mask = left_pad(prompts, pad_id, alm.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    h, cache = alm.hidden(ids, mask, positions, use_cache=True)
    last, next_pos = h[:, -1], positions[:, -1:] + 1
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds] if seeds is not None else None
    allowed = {}
    for k in set(schedule):
        a, b = vocab.codebook_range(k)
        m = torch.zeros(vocab.size, dtype=torch.bool)
        m[a:b] = True
        allowed[k] = m.to(alm.device)
    batch = len(prompts)
    out: list[list[int]] = [[] for _ in range(batch)]
    done = [False] * batch
    for t in range(max_tokens + 1):
        logits = alm.audio_logits(last).float()
        if t == max_tokens:
            keep = torch.zeros(vocab.size, dtype=torch.bool, device=logits.device)
            keep[1] = True
        else:
            keep = allowed[schedule[t % period]].clone()
            keep[1] = t > 0 and t % period == 0
        logits = logits.masked_fill(~keep, float("-inf"))
        step = []
        for i in range(batch):
            tok = 1 if done[i] else _pick(logits[i], gens[i] if gens else None, temperature, top_p)
            if not done[i]:
                if tok == 1:
                    done[i] = True
                else:
                    out[i].append(tok + vocab.base_size)
            step.append(tok)
        if all(done):
            break
        mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
        tokens = torch.tensor(step, dtype=torch.long, device=alm.device).unsqueeze(1) + vocab.base_size
        h, cache = alm.hidden(tokens, mask, next_pos, past_key_values=cache, use_cache=True)
        last, next_pos = h[:, -1], next_pos + 1
    return out
