"""Which corpus rows the adapter trains on, how the kinds are balanced, the training stream.

**Held out, never trained on** (:func:`held_out_reason`): every row whose ``split`` is not
``train``; FSDD's official test split (recording index 0-4, from the id or file name, and
from ``fsdd/labels.csv`` when the shared data is there); ESC-10 fold 4 (``fold`` 4, ids and
file names ``4-*``, and ``esc10/labels.csv``); augmented copies made from such a clip or
mixed with one as background noise (``augment.of`` / ``augment.noise``).  The corpus
itself already puts FSDD test in its ``test`` split and ESC-10 fold 4 in ``val``
(docs/corpus.md); these checks make the recipe safe on any manifest.

**Balance** (:data:`QUOTAS`): rows fall into groups (:func:`group_of`: TTS sentences,
TTS digits, TTS letters, recorded digits, recorded letters, recorded words, ESC-10, other
sounds, music); each recipe epoch draws a fixed number of captioning and of generation
examples from every group -- small groups are repeated (sound and music repeats as
random crops), large ones subsampled, a different subsample each epoch.  Within a group
clips are weighted by 1/sqrt(size of their stratum) (speaker, class, piece group), so one
voice (Piper joe) does not fill the TTS groups.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

from .captions import ESC_LABELS, content_of, texts_for

#: Per recipe epoch: (captioning examples, generation examples) drawn from each group.
QUOTAS: dict[str, tuple[int, int]] = {
    "tts-sentences": (1200, 300),
    "tts-digits": (900, 600),
    "tts-letters": (600, 150),
    "rec-digits": (500, 300),
    "rec-letters": (200, 50),
    "rec-words": (200, 50),
    "esc10": (720, 240),
    "sounds": (240, 120),
    "music": (600, 300),
}
#: Per-group validation examples (caption, generate), drawn once from the val split.
VAL_QUOTAS = {g: (24, 8) for g in QUOTAS}
#: Groups whose repeated clips are random crops, and the longest window kept (s).
CROP_GROUPS = ("esc10", "sounds", "music")
MAX_SOUND_SECONDS = 6.0
#: A repeated sound/music clip keeps this share of its length (at least).
CROP_KEEP = 0.7

_FSDD_NAME = re.compile(r"(?:^|/)(\d)_([A-Za-z]+)_(\d+)(?:\.\w+)?$")
_ESC_NAME = re.compile(r"(?:^|/)([1-5])-\d+-[A-Z](?:-\d+)?(?:\.\w+)?$")


# --------------------------------------------------------------------------- held out

def _fsdd_test_name(name: str) -> bool:
    m = _FSDD_NAME.search(name)
    return bool(m) and int(m.group(3)) < 5


def _esc_fold4_name(name: str) -> bool:
    m = _ESC_NAME.search(name)
    return bool(m) and m.group(1) == "4"


def shared_held_out(data: str | Path | None) -> set[str]:
    """File stems of FSDD's test split and ESC-10 fold 4 in the shared data (empty when absent)."""
    out: set[str] = set()
    if data is None:
        return out
    data = Path(data)
    try:
        with open(data / "fsdd" / "labels.csv", newline="") as f:
            out |= {Path(r["path"]).stem for r in csv.DictReader(f) if r["official_split"] != "train"}
    except OSError:
        pass
    try:
        with open(data / "esc10" / "labels.csv", newline="") as f:
            out |= {Path(r["path"]).stem for r in csv.DictReader(f) if int(r["fold"]) not in (1, 2, 3)}
    except OSError:
        pass
    return out


def _names(row: dict) -> list[str]:
    return [str(x) for x in (row.get("id"), row.get("path")) if x]


def _clip_reason(name: str, stems: set[str]) -> str | None:
    stem = Path(name).stem
    if _fsdd_test_name(name) or (stem in stems and _FSDD_NAME.search(name)):
        return "FSDD test split"
    if _esc_fold4_name(name) or (stem in stems and _ESC_NAME.search(name)):
        return "ESC-10 fold 4"
    if stem in stems:
        return "held out in the shared data"
    return None


def held_out_reason(row: dict, stems: set[str] = frozenset(), rows_by_id: dict | None = None) -> str | None:
    """Why ``row`` must not be trained on, or None.  ``stems``: :func:`shared_held_out`;
    ``rows_by_id``: every corpus row (all splits), to follow augmented copies to their
    source and noise clips."""
    if str(row.get("split") or "train") != "train":
        return f"{row.get('split')} split"
    source = str(row.get("source") or "")
    if source == "esc10" and row.get("fold") is not None and int(row["fold"]) not in (1, 2, 3):
        return "ESC-10 fold 4"
    for name in _names(row):
        reason = _clip_reason(name, stems)
        if reason:
            return reason
    aug = row.get("augment") or {}
    for key in ("of", "noise"):
        ref = aug.get(key)
        if not ref:
            continue
        reason = _clip_reason(str(ref), stems)
        if reason is None and rows_by_id is not None and ref in rows_by_id:
            other = rows_by_id[ref]
            reason = held_out_reason(other, stems, None) if other is not row else None
        if reason:
            return f"augmented from a held-out clip ({reason})"
    return None


def training_rows(rows: list[dict], stems: set[str] = frozenset(), all_rows: list[dict] | None = None
                  ) -> tuple[list[dict], Counter]:
    """The rows that may be trained on and a count of the others by reason."""
    by_id = {r["id"]: r for r in (all_rows if all_rows is not None else rows) if r.get("id")}
    kept, dropped = [], Counter()
    for r in rows:
        reason = held_out_reason(r, stems, by_id)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(r)
    return kept, dropped


def assert_no_leak(rows: list[dict], stems: set[str] = frozenset()) -> None:
    """Raise SystemExit if any row is FSDD test / ESC-10 fold 4 material (the last guard)."""
    bad = [r.get("id") for r in rows if held_out_reason({**r, "split": "train"}, stems)]
    if bad:
        raise SystemExit(f"error: {len(bad)} held-out clips in the training data, e.g. {bad[:3]}")


# --------------------------------------------------------------------------- shared data

def shared_rows(data: str | Path, sources: tuple[str, ...] = ("fsdd", "esc10")) -> list[dict]:
    """FSDD (both splits) and ESC-10 (folds 1-4) as corpus rows (``path`` absolute, the
    corpus's captions and splits: FSDD test -> ``test``, fold 4 -> ``val``), for a corpus
    built without them."""
    import corpus.recorded as rec

    out = []
    rng = random.Random(0)
    for source, plan in (("fsdd", rec.plan_fsdd), ("esc10", rec.plan_esc10)):
        if source not in sources:
            continue
        jobs, problem = plan(Path(data), rng)
        if problem:
            continue
        for job in jobs:
            out.append({**job.outputs[0]["row"], "path": str(Path(job.spec["src"]).resolve())})
    return out


def missing_sources(rows: list[dict]) -> tuple[str, ...]:
    """Which of FSDD and ESC-10 a corpus lacks (then they come from the shared data)."""
    have = {r.get("source") for r in rows}
    return tuple(s for s in ("fsdd", "esc10") if s not in have)


# --------------------------------------------------------------------------- groups

def group_of(row: dict) -> str:
    kind = str(row.get("kind") or "")
    content = content_of(row)
    if kind == "speech-tts":
        return {"digit": "tts-digits", "digits": "tts-digits", "letter": "tts-letters",
                "letters": "tts-letters", "spell": "tts-letters"}.get(content or "", "tts-sentences")
    if kind == "speech":
        return {"digit": "rec-digits", "digits": "rec-digits", "letter": "rec-letters",
                "letters": "rec-letters", "spell": "rec-letters"}.get(content or "", "rec-words")
    if kind == "sound":
        return "esc10" if str(row.get("label") or "").lower() in ESC_LABELS else "sounds"
    if kind == "music":
        return "music"
    return "other"


def stratum_of(row: dict) -> str:
    """What one clip of a group shares with others that the balance should not over-weight."""
    kind = str(row.get("kind") or "")
    if kind.startswith("speech"):
        return str(row.get("speaker") or row.get("voice") or row.get("language") or "")
    if kind == "music":
        return str(row.get("group") or row.get("ensemble") or "")
    return str(row.get("label") or row.get("category") or "")


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")


def pick(pool: list[dict], n: int, rng: random.Random) -> list[dict]:
    """``n`` rows of ``pool``: whole passes when ``n`` exceeds it, the rest drawn without
    replacement with weights 1/sqrt(stratum size) (Efraimidis-Spirakis keys)."""
    if n <= 0 or not pool:
        return []
    sizes = Counter(stratum_of(r) for r in pool)
    full, rest = divmod(n, len(pool))
    out = [r for _ in range(full) for r in pool]
    if rest:
        keyed = sorted(pool, key=lambda r: -math.log(max(rng.random(), 1e-300)) * math.sqrt(sizes[stratum_of(r)]))
        out += keyed[:rest]
    return out


def plan_epoch(rows: list[dict], epoch: int, seed: int = 0, quotas: dict | None = None
               ) -> list[tuple[dict, str, int]]:
    """One recipe epoch: ``(row, task, repeat)`` triples, ``repeat`` counting the earlier
    uses of that row for that task within the epoch (0 = first)."""
    quotas = QUOTAS if quotas is None else quotas
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["id"]):
        groups[group_of(r)].append(r)
    out = []
    for g in sorted(groups):
        pool = groups[g]
        cap_n, gen_n = quotas.get(g, (len(pool), len(pool)))
        for task, n in (("caption", cap_n), ("generate", gen_n)):
            seen: Counter = Counter()
            for r in pick(pool, n, random.Random(_seed(seed, epoch, g, task))):
                out.append((r, task, seen[r["id"]]))
                seen[r["id"]] += 1
    return out


def share_by_kind(plan: list[tuple[dict, str, int]]) -> dict[str, float]:
    c = Counter(str(r.get("kind") or "other") for r, _, _ in plan)
    return {k: round(v / max(1, len(plan)), 4) for k, v in sorted(c.items())}


# --------------------------------------------------------------------------- stream

def item_row(item) -> dict:
    """The manifest row a token-stream item was made from (``soundtok tokenize`` keeps
    ``text``/``label`` on the item and every other field in ``meta``)."""
    row = {**item.meta, "id": item.id}
    for k in ("text", "label"):
        v = getattr(item, k)
        if v is not None:
            row[k] = v
    return row


def crop_item(item, header, start_s: float, seconds: float):
    """``item`` cut to ``[start_s, start_s + seconds)`` on each codebook's frame grid."""
    codes = []
    for k, row in enumerate(item.codes):
        rate = header.frame_rates[k]
        n = max(1, int(round(seconds * rate)))
        a = max(0, min(len(row) - n, int(round(start_s * rate))))
        b = min(len(row), a + n)
        codes.append(row[a:b])
    hop = header.hop_lengths[0]
    return codes, len(codes[0]) * hop


def _window(row: dict, duration: float, group: str, repeat: int, rng: random.Random) -> tuple[float, float] | None:
    """Crop window (start, length) in seconds for a sound/music example, or None (whole)."""
    if group not in CROP_GROUPS:
        return None
    keep = min(duration, MAX_SOUND_SECONDS)
    if repeat > 0:
        keep = min(keep, max(duration * CROP_KEEP, duration - 1.5))
    if keep >= duration - 1e-6:
        return None
    if group == "sounds" and repeat == 0:
        return 0.0, keep  # one-shot samples: keep the onset
    return rng.uniform(0.0, duration - keep), keep


def build_records(items: list, header, epochs: int, seed: int = 0, quotas: dict | None = None) -> list:
    """Training items for ``epochs`` recipe epochs: one item per (clip, task, repeat) with
    ``meta.captions`` / ``meta.prompts`` from :func:`texts_for` and ``meta.tasks`` naming
    its one task (``finetune-llm --task mixed`` then makes exactly that example)."""
    from soundtok.tokens import Item

    by_id = {it.id: it for it in items}
    rows = []
    for it in items:
        row = item_row(it)
        caps, prompts = texts_for(row)
        if caps:
            rows.append({**row, "_captions": caps, "_prompts": prompts})
    out = []
    for epoch in range(epochs):
        rng = random.Random(_seed(seed, epoch, "crop"))
        for row, task, repeat in plan_epoch(rows, epoch, seed, quotas):
            it = by_id[row["id"]]
            duration = it.num_samples / header.sample_rate
            codes, n = it.codes, it.num_samples
            win = _window(row, duration, group_of(row), repeat, rng)
            if win is not None:
                codes, n = crop_item(it, header, *win)
            meta = {k: v for k, v in it.meta.items() if k != "captions"}
            meta.update(captions=row["_captions"], prompts=row["_prompts"], tasks=[task])
            if win is not None:
                meta["crop"] = [round(win[0], 3), round(win[1], 3)]
            out.append(Item(id=f"{it.id}#e{epoch}{task[0]}{repeat}", num_samples=n, codes=codes,
                            source=it.source, text=it.text, label=it.label, meta=meta))
    return out


def recipe_fingerprint(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
