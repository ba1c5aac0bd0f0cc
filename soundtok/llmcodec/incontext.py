"""In-context audio tasks with a frozen LLM over llm-codec tokens.

* Prompts (:func:`build_prompt`): optional instruction, then demonstrations
  ("audio words" + answer), then the query.  Templates live in
  :mod:`.templates`; audio goes in as the LLM token ids the codes stand for.
* Answers: :func:`rank_labels` scores every candidate label by the sum of
  the log-probabilities of its tokens (``" " + label``) given the prompt,
  all candidates in one padded batch; the best is the answer.  Or
  :func:`generate_answer`: greedy decoding up to a newline, matched to a label
  by :func:`match_answer`.
* :func:`answer_stream` answers every item of a stream (``caption --shots``).

Measuring it -- N-way K-shot episodes, accuracy with confidence intervals --
is :mod:`soundtok.evaluate.fewshot`.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import FormatError, UsageError
from ..thirdparty import quiet_libraries
from . import templates as P


# ------------------------------------------------------------------ prompts
def build_prompt(demos: list[tuple[list, str]], query: list, labels: list[str] | None = None,
                 instruction: bool = P.USE_INSTRUCTION) -> list:
    """Prompt parts from ``demos`` (``(audio parts, answer)`` pairs) and the
    ``query``'s audio parts; ``labels`` fill the instruction."""
    parts: list = []
    if instruction:
        parts += P.fill(P.INSTRUCTION, labels=P.LABEL_JOINER.join(labels or []))
    for audio, answer in demos:
        parts += P.fill(P.DEMO, audio, answer=answer)
    parts += P.fill(P.QUERY, query)
    return _merge_text(parts)


def _merge_text(parts: list) -> list:
    out: list = []
    for p in parts:
        if isinstance(p, str) and out and isinstance(out[-1], str):
            out[-1] += p
        else:
            out.append(p)
    return out


def render_prompt(parts: list, tokenizer: Any) -> str:
    """The prompt as a string (audio id parts decoded) -- for people and logs."""
    from .text import decode_ids

    return "".join(p if isinstance(p, str) else decode_ids(p, tokenizer) for p in parts)


def prompt_ids(parts: list, tokenizer: Any, bos: bool = True) -> list[int]:
    """The token ids the LLM reads: ``<bos>``, then each text part tokenized
    without special tokens and each audio part as it is."""
    ids: list[int] = []
    if bos and getattr(tokenizer, "bos_token_id", None) is not None:
        ids.append(tokenizer.bos_token_id)
    for p in parts:
        ids += tokenizer.encode(p, add_special_tokens=False) if isinstance(p, str) else list(p)
    return ids


def label_ids(label: str, tokenizer: Any) -> list[int]:
    """Token ids of the continuation that stands for ``label``."""
    ids = tokenizer.encode(P.ANSWER_PREFIX + label, add_special_tokens=False)
    if not ids:
        raise UsageError(f"label {label!r} tokenizes to nothing")
    return ids


# ------------------------------------------------------------------ answers
@quiet_libraries()
def rank_labels(model: Any, tokenizer: Any, prompt: list, labels: list[str],
                batch_size: int = 32) -> list[float]:
    """Sum of log-probs of each label's tokens given ``prompt`` (parts or ids)."""
    import torch

    ids = prompt if prompt and all(isinstance(i, int) for i in prompt) else prompt_ids(prompt, tokenizer)
    cands = [label_ids(lab, tokenizer) for lab in labels]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    scores: list[float] = []
    n = len(ids)
    with torch.inference_mode():
        for a in range(0, len(cands), batch_size):
            chunk = cands[a:a + batch_size]
            width = n + max(len(c) for c in chunk)
            x = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros_like(x)
            for i, c in enumerate(chunk):
                x[i, :n + len(c)] = torch.tensor(ids + c)
                mask[i, :n + len(c)] = 1
            logits = model(input_ids=x.to(device), attention_mask=mask.to(device)).logits.float()
            logp = torch.log_softmax(logits, dim=-1).cpu()
            for i, c in enumerate(chunk):
                pos = torch.arange(n - 1, n - 1 + len(c))
                scores.append(float(logp[i, pos, torch.tensor(c)].sum()))
    return scores


@quiet_libraries()
def rank_labels_shared(model: Any, tokenizer: Any, prompts: list[list], labels: list[str]) -> list[list[float]]:
    """:func:`rank_labels` for several prompts that share a beginning (one
    episode's queries after the same demonstrations): the longest common
    prefix of their token ids runs through the LLM once and its key/value
    cache is reused, so each query costs only its own tokens.  Exact: the
    scores equal :func:`rank_labels`' up to float rounding (tested)."""
    import copy

    import torch

    ids = [p if p and all(isinstance(i, int) for i in p) else prompt_ids(p, tokenizer) for p in prompts]
    if len(ids) < 2:
        return [rank_labels(model, tokenizer, i, labels) for i in ids]
    n = 0
    shortest = min(len(i) for i in ids)
    while n < shortest - 1 and all(i[n] == ids[0][n] for i in ids):
        n += 1
    if n < 2:
        return [rank_labels(model, tokenizer, i, labels) for i in ids]
    cands = [label_ids(lab, tokenizer) for lab in labels]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        prefix = model(input_ids=torch.tensor([ids[0][:n]], device=device), use_cache=True)
        for full in ids:
            # the query's own tokens once (batch 1) ...
            cache = copy.deepcopy(prefix.past_key_values)
            q = model(input_ids=torch.tensor([full[n:]], device=device), past_key_values=cache, use_cache=True)
            first = torch.log_softmax(q.logits[0, -1].float(), dim=-1).cpu()
            scores = [float(first[c[0]]) for c in cands]
            # ... then every candidate's later tokens (batch N) on that cache; right padding keeps
            # real tokens from attending to pads (causal attention)
            longest = max(len(c) for c in cands)
            if longest > 1:
                cache.batch_repeat_interleave(len(cands))
                x = torch.full((len(cands), longest - 1), pad, dtype=torch.long)
                for i, c in enumerate(cands):
                    x[i, :len(c) - 1] = torch.tensor(c[:-1])
                logp = torch.log_softmax(model(input_ids=x.to(device), past_key_values=cache,
                                               use_cache=True).logits.float(), dim=-1).cpu()
                for i, c in enumerate(cands):
                    scores[i] += sum(float(logp[i, j - 1, c[j]]) for j in range(1, len(c)))
            out.append(scores)
    return out


@quiet_libraries()
def generate_answer(model: Any, tokenizer: Any, prompt: list, max_new_tokens: int = 8) -> str:
    """Greedy continuation of ``prompt`` up to the first newline, stripped."""
    import torch

    ids = prompt if prompt and all(isinstance(i, int) for i in prompt) else prompt_ids(prompt, tokenizer)
    device = next(model.parameters()).device
    x = torch.tensor([ids], device=device)
    with torch.inference_mode():
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x),
                             max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    text = tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)
    return text.split("\n", 1)[0].strip()


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def match_answer(text: str, labels: list[str]) -> str | None:
    """The label ``text`` names: exact (case/punctuation-insensitive), else the
    label that ``text`` starts with (longest first), else None."""
    t = _norm(text)
    by_norm = {_norm(lab): lab for lab in labels}
    if t in by_norm:
        return by_norm[t]
    for key in sorted(by_norm, key=len, reverse=True):
        if key and (t + " ").startswith(key + " "):
            return by_norm[key]
    return None


def check_streams(model: Any, header, demo_header=None, check_model: bool = True):
    """Check that ``header`` (the queries') and ``demo_header`` (the
    demonstrations', default the same) are one llm-codec's streams, and with
    ``check_model`` that ``model`` is its LLM; returns the demonstrations' header."""
    from .model import check_llm
    from .text import header_vocabularies

    header_vocabularies(header)
    demo_header = demo_header or header
    header_vocabularies(demo_header)
    if demo_header.codec.get("sha256") != header.codec.get("sha256"):
        raise FormatError(f"the demonstrations were tokenized by codec {demo_header.codec.get('name')!r}, "
                          f"the queries by {header.codec.get('name')!r}; use one llm-codec for both")
    if check_model:
        check_llm(header.codec.get("llm") or {}, model, where="the token stream's llm-codec")
    return demo_header


def answer_stream(model: Any, tokenizer: Any, header, queries, demo_items: list, demo_header=None,
                  labels: list[str] | None = None, instruction: bool = P.USE_INSTRUCTION, scales=(0,),
                  max_new_tokens: int = 8, batch_size: int = 8, check: bool = True):
    """In-context answers for every item of ``queries`` (an iterable of items of
    an llm-codec stream with ``header``), the prompt holding all ``demo_items``
    (labelled, in their order) as demonstrations.

    With ``labels`` each query's answer is the label of highest log-likelihood
    and the scores are returned too; without, the LLM generates greedily up
    to a newline.  Yields ``(item, answer, scores or None)`` in input order."""
    from .text import codes_to_parts

    demo_header = check_streams(model, header, demo_header, check)
    if not demo_items or any(it.label is None for it in demo_items):
        raise FormatError("every demonstration needs a label (the answer it shows)")
    named = labels or list(dict.fromkeys(it.label for it in demo_items))
    demos = [(codes_to_parts(it, demo_header, scales), it.label) for it in demo_items]

    def flush(batch):
        prompts = [build_prompt(demos, codes_to_parts(it, header, scales), named, instruction) for it in batch]
        if labels:
            for it, sc in zip(batch, rank_labels_shared(model, tokenizer, prompts, labels)):
                best = max(range(len(sc)), key=sc.__getitem__)
                yield it, labels[best], dict(zip(labels, sc))
        else:
            for it, prompt in zip(batch, prompts):
                yield it, generate_answer(model, tokenizer, prompt, max_new_tokens), None

    batch: list = []
    for item in queries:
        batch.append(item)
        if len(batch) >= batch_size:
            yield from flush(batch)
            batch = []
    if batch:
        yield from flush(batch)


def read_labelled_stream(path: str):
    """``(header, items with a label)`` of an llm-codec token stream."""
    from ..tokens import TokenReader
    from .text import header_vocabularies

    with TokenReader(path) as reader:
        header = reader.header
        header_vocabularies(header)
        items = [it for it in reader if it.label is not None]
    if not items:
        raise FormatError(f"{path}: no item has a label")
    return header, items
