"""Few-shot in-context audio tasks with a frozen LLM over llm-codec tokens.

* Prompts (:func:`build_prompt`): optional instruction, then K demonstrations
  per label ("audio words" + answer), then the query.  Templates live in
  :mod:`.prompts`; audio goes in as the LLM token ids the codes stand for.
* Answers: :func:`rank_labels` scores every candidate label by the sum of
  the log-probabilities of its tokens (``" " + label``) given the prompt,
  all candidates in one padded batch; the best is the answer.  Or
  :func:`generate_answer`: greedy decoding up to a newline, matched to a label
  by :func:`match_answer`.
* Episodes (:func:`sample_episodes`): N-way K-shot, seeded.  Each episode
  draws N distinct labels, and per label K demonstrations plus one query
  (never among the demonstrations); demonstrations are shuffled.  Each
  episode is asked ``repeats`` times, its demonstrations reshuffled each time
  (ICL is sensitive to order).
* Accuracy (:class:`FewShotResult`): correct / judged; a 95% CI by
  bootstrap over episodes (answers within an episode share demonstrations, so
  they are not independent), and the Wilson interval over all judgements for
  reference; chance is 1/N.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import FormatError, UsageError
from ..thirdparty import quiet_libraries
from . import prompts as P


# ------------------------------------------------------------------ prompts
def build_prompt(demos: list[tuple[list, str]], query: list, labels: list[str] | None = None,
                 instruction: bool = True) -> list:
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


# ----------------------------------------------------------------- episodes
@dataclass
class Episode:
    """One N-way K-shot episode: item indices of demonstrations and queries."""

    labels: list[str]
    demos: list[int]
    queries: list[int]


def sample_episodes(labels: list[str | None], ways: int, shots: int, episodes: int,
                    seed: int = 0, demo_labels: list[str | None] | None = None) -> list[Episode]:
    """Seeded N-way K-shot episodes over items whose label is ``labels[i]``
    (``None`` = unlabelled, never used).  Each episode has N distinct labels,
    N*K shuffled demonstrations and one query per label.

    Without ``demo_labels`` demonstrations and queries come from the same
    items (a label needs ``shots + 1`` of them; a query is never one of its
    episode's demonstrations).  With ``demo_labels`` (a separate pool, e.g.
    training folds) demonstrations are indices into that pool and queries into
    ``labels``; a label needs ``shots`` demonstrations and one query."""
    if ways < 2 or shots < 0 or episodes < 1:
        raise UsageError("need --ways >= 2, --shots >= 0 and --episodes >= 1")

    def group(labs):
        by: dict[str, list[int]] = {}
        for i, lab in enumerate(labs):
            if lab is not None:
                by.setdefault(lab, []).append(i)
        return by

    by_label = group(labels)
    by_demo = group(demo_labels) if demo_labels is not None else None
    if by_demo is None:
        usable = sorted(lab for lab, ix in by_label.items() if len(ix) >= shots + 1)
        need = f"{shots + 1} items"
    else:
        usable = sorted(lab for lab, ix in by_label.items() if len(by_demo.get(lab, ())) >= shots)
        need = f"a query and {shots} demonstration(s)"
    if len(usable) < ways:
        raise UsageError(f"{ways}-way {shots}-shot needs {ways} labels with {need} each; "
                         f"there are {len(usable)}")
    rng = random.Random(seed)
    out = []
    for _ in range(episodes):
        chosen = rng.sample(usable, ways)
        demos, queries = [], []
        for lab in chosen:
            if by_demo is None:
                picked = rng.sample(by_label[lab], shots + 1)
                demos += picked[:shots]
                queries.append(picked[shots])
            else:
                demos += rng.sample(by_demo[lab], shots)
                queries.append(rng.choice(by_label[lab]))
        rng.shuffle(demos)
        out.append(Episode(chosen, demos, queries))
    return out


# --------------------------------------------------------------- statistics
def wilson_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% at the default z)."""
    if total <= 0:
        return (0.0, 1.0)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(values: list[float], seed: int = 0, n_boot: int = 2000,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (seeded)."""
    if not values:
        return (0.0, 1.0)
    if len(values) == 1:
        return (values[0], values[0])
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    lo = means[int(math.floor((1 - level) / 2 * (n_boot - 1)))]
    hi = means[int(math.ceil((1 + level) / 2 * (n_boot - 1)))]
    return (lo, hi)


@dataclass
class FewShotResult:
    ways: int
    shots: int
    episodes: int
    repeats: int
    judged: int
    correct: int
    accuracy: float
    ci_low: float  # bootstrap over episodes, 95%
    ci_high: float
    wilson_low: float
    wilson_high: float
    chance: float
    mode: str
    instruction: bool
    per_episode: list[float] = field(default_factory=list)
    predictions: list[dict] = field(default_factory=list)

    def row(self) -> dict:
        d = asdict(self)
        d.pop("predictions")
        return d


# -------------------------------------------------------------------- runs
def run_fewshot(model: Any, tokenizer: Any, header, items: list, ways: int = 5, shots: int = 1,
                episodes: int = 100, seed: int = 0, repeats: int = 1, instruction: bool = True,
                mode: str = "rank", scales=(0,), check: bool = True,
                progress: Callable[[int], None] | None = None,
                demo_items: list | None = None, demo_header=None, calibrate: bool = False) -> FewShotResult:
    """Run N-way K-shot episodes over labelled ``items`` of an llm-codec stream.

    ``demo_items`` (with its stream's ``demo_header``) is a separate pool of
    demonstrations; without it demonstrations come from ``items`` too.
    ``calibrate`` (rank mode): contextual calibration (Zhao et al., 2021) --
    every label's score has its score for a content-free query (the same
    prompt with no audio) subtracted, which removes the LLM's preference for
    some labels whatever the sound."""
    from .model import check_llm
    from .text import codes_to_parts, header_vocabularies

    header_vocabularies(header)
    if demo_items is not None:
        demo_header = demo_header or header
        header_vocabularies(demo_header)
        if demo_header.codec.get("sha256") != header.codec.get("sha256"):
            raise FormatError(f"the demonstrations were tokenized by codec {demo_header.codec.get('name')!r}, "
                              f"the queries by {header.codec.get('name')!r}; use one llm-codec for both")
    if check:
        check_llm(header.codec.get("llm") or {}, model, where="the token stream's llm-codec")
    if mode not in ("rank", "generate"):
        raise UsageError(f"unknown mode {mode!r} (rank or generate)")
    if repeats < 1:
        raise UsageError("--repeats must be >= 1")
    pool = items if demo_items is None else demo_items
    eps = sample_episodes([it.label for it in items], ways, shots, episodes, seed,
                          None if demo_items is None else [it.label for it in demo_items])
    audio: dict[tuple[int, int], list] = {}

    def parts(i: int, demo: bool = False) -> list:
        key = (int(demo and demo_items is not None), i)
        if key not in audio:
            audio[key] = codes_to_parts((pool if demo else items)[i], header, scales)
        return audio[key]

    rng = random.Random(seed + 1)
    correct = judged = 0
    per_episode, preds = [], []
    for e_no, ep in enumerate(eps):
        ep_correct = ep_judged = 0
        for r in range(repeats):
            order = list(ep.demos)
            if r:
                rng.shuffle(order)
            demos = [(parts(i, demo=True), pool[i].label) for i in order]
            prompts = [build_prompt(demos, parts(q), ep.labels, instruction) for q in ep.queries]
            if mode == "rank":
                extra = [build_prompt(demos, [], ep.labels, instruction)] if calibrate else []
                all_scores = rank_labels_shared(model, tokenizer, prompts + extra, ep.labels)
                if calibrate:
                    free = all_scores.pop()
                    all_scores = [[a - b for a, b in zip(sc, free)] for sc in all_scores]
            for j, (q, prompt) in enumerate(zip(ep.queries, prompts)):
                if mode == "rank":
                    scores = all_scores[j]
                    guess: str | None = ep.labels[max(range(len(scores)), key=scores.__getitem__)]
                    raw = guess
                else:
                    raw = generate_answer(model, tokenizer, prompt)
                    guess = match_answer(raw, ep.labels)
                ok = guess == items[q].label
                ep_correct += ok
                ep_judged += 1
                preds.append({"episode": e_no, "repeat": r, "id": items[q].id,
                              "label": items[q].label, "predicted": guess, "output": raw,
                              "correct": ok})
        correct += ep_correct
        judged += ep_judged
        per_episode.append(ep_correct / ep_judged)
        if progress:
            progress(1)
    lo, hi = bootstrap_interval(per_episode, seed)
    wl, wh = wilson_interval(correct, judged)
    return FewShotResult(ways, shots, episodes, repeats, judged, correct, correct / judged,
                         lo, hi, wl, wh, 1.0 / ways, mode, instruction, per_episode, preds)


def answer_stream(model: Any, tokenizer: Any, header, queries, demo_items: list, demo_header=None,
                  labels: list[str] | None = None, instruction: bool = True, scales=(0,),
                  max_new_tokens: int = 8, batch_size: int = 8, check: bool = True):
    """In-context answers for every item of ``queries`` (an iterable of items of
    an llm-codec stream with ``header``), the prompt holding all ``demo_items``
    (labelled, in their order) as demonstrations.

    With ``labels`` each query's answer is the label of highest log-likelihood
    and the scores are returned too; without, the LLM generates greedily up
    to a newline.  Yields ``(item, answer, scores or None)`` in input order."""
    from .model import check_llm
    from .text import codes_to_parts, header_vocabularies

    header_vocabularies(header)
    demo_header = demo_header or header
    header_vocabularies(demo_header)
    if demo_header.codec.get("sha256") != header.codec.get("sha256"):
        raise FormatError(f"the demonstrations were tokenized by codec {demo_header.codec.get('name')!r}, "
                          f"the queries by {header.codec.get('name')!r}; use one llm-codec for both")
    if not demo_items or any(it.label is None for it in demo_items):
        raise FormatError("every demonstration needs a label (the answer it shows)")
    if check:
        check_llm(header.codec.get("llm") or {}, model, where="the token stream's llm-codec")
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
