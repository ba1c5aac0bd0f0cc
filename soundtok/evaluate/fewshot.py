"""Few-shot evaluation of in-context audio tasks (``soundtok evaluate fewshot``).

A frozen LLM answers N-way K-shot episodes over llm-codec tokens (the prompts
and answers are :mod:`soundtok.llmcodec.incontext`'s):

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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import UsageError
from ..llmcodec.incontext import build_prompt, check_streams, generate_answer, match_answer, rank_labels_shared
from ..llmcodec.templates import USE_INSTRUCTION
from ..llmcodec.text import codes_to_parts
from .tokenstats import token_stats

__all__ = ["Episode", "sample_episodes", "wilson_interval", "bootstrap_interval", "FewShotResult",
           "run_fewshot"]


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
    # code use of the query stream, per scale: size, used (rows), perplexity (effective rows)
    code_use: list[dict] = field(default_factory=list)

    def row(self) -> dict:
        d = asdict(self)
        d.pop("predictions")
        return d


# -------------------------------------------------------------------- runs
def run_fewshot(model: Any, tokenizer: Any, header, items: list, ways: int = 5, shots: int = 1,
                episodes: int = 100, seed: int = 0, repeats: int = 1, instruction: bool = USE_INSTRUCTION,
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
    check_streams(model, header, demo_header if demo_items is not None else None, check)
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
    use = [{"scale": t.codebook, "size": t.size, "used": t.used, "perplexity": round(t.perplexity, 4)}
           for t in token_stats(header.codebook_sizes, [it.codes for it in items])]
    return FewShotResult(ways, shots, episodes, repeats, judged, correct, correct / judged,
                         lo, hi, wl, wh, 1.0 / ways, mode, instruction, per_episode, preds, use)
