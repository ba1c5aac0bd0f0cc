"""What a caption says, measured against a held-out row (the pure side of eval_adapter.py).

* :func:`caption_kind`: ``speech``, ``music`` or ``sound`` -- a caption with a quotation
  or a speech word (says, speech, voice, spoken, digits, letters, ...) is speech; else one
  with a music word (music, melody, playing, chorale, quartet, ...) is music; else sound;
* :func:`said_text`: what the caption says is spoken -- the first double-quoted span, else
  what follows the first colon (``spoken digits: 1 3 9``), else what follows "says the
  digit(s)/letter(s)/word" and the like; a trailing augmentation phrase ("with rain in the
  background", "in a reverberant room") is dropped;
* :func:`said_errors`: word edits of :func:`said_text` against the row's ``text``
  (``label`` for spelled words), after :func:`soundtok.evaluate.asr.normalize_text`
  (case, punctuation, digit words as numerals: "one, three" = "1 3"); no said text
  counts as every reference word deleted.  WER of a set = total edits / total words;
* :func:`digits_said` / :func:`letters_said`: the digit / letter string of the said text;
* :func:`esc_class`: the ESC-10 class a caption names (:func:`match_label` with a few
  synonyms); :func:`instrument_named`, :func:`style_named`, :func:`gender_named`;
* :func:`score_row` applies all that fit to one (row, caption); :func:`summarize` turns
  scored rows into a set's rates; :func:`confusion` / :func:`confusion_markdown` count
  (truth, prediction) pairs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from soundtok.evaluate.captions import canon_word, match_label, normalize_text

from .captions import ESC_LABELS, content_of

SPEECH_WORDS = frozenset(
    "say says said saying speak speaks speaking speech spoken speaker voice reads reading read spell spells "
    "spelling spelled counting alphabet syllable letter letters digit digits word words".split())
MUSIC_WORDS = frozenset(
    "music musical melody tune tunes song playing played plays chorale madrigal quartet piece aria chanson "
    "sonata symphony jig reel hornpipe strathspey orchestra ensemble instrumental".split())
KINDS = ("speech", "music", "sound")

ESC_SYNONYMS = {"dog bark": ["dog", "barking"], "sea waves": ["waves", "sea"], "baby cry": ["baby", "crying"],
                "clock tick": ["clock", "ticking"], "person sneeze": ["sneeze", "sneezing"],
                "chainsaw": ["chain saw"], "rooster": ["crow", "cock"],
                "fire crackling": ["fire", "crackling", "flames"]}

_QUOTED = re.compile(r'"([^"]+)"')
_AUGMENT_TAIL = re.compile(r",\s*(?:with\b.*\bin the background|in a reverberant room|over a telephone line|muffled)"
                           r"\b.*$")
_AFTER_VERB = re.compile(
    r"\b(?:says|said|reads|spells|names|counting out|reading out|reads out)\b(?:\s+(?:quickly|slowly))?"
    r"(?:\s+the\s+(?:[a-z]+\s+){0,2}?(?:digits?|letters?|numbers?|words?))?\s+(.+)$", re.IGNORECASE)
_STOP = frozenset("a an the of and in on by with played playing music".split())


def _words(caption: str) -> list[str]:
    return normalize_text(caption)


def caption_kind(caption: str) -> str:
    """``speech``, ``music`` or ``sound``: what kind of audio the caption describes."""
    if _QUOTED.search(caption):
        return "speech"
    words = set(_words(caption))
    if words & SPEECH_WORDS:
        return "speech"
    if words & MUSIC_WORDS:
        return "music"
    return "sound"


def said_text(caption: str) -> str | None:
    """What the caption says is spoken, or None when it quotes nothing."""
    m = _QUOTED.search(caption)
    if m:
        return m.group(1).strip()
    caption = _AUGMENT_TAIL.sub("", caption.strip())
    if ":" in caption:
        tail = caption.split(":", 1)[1].strip()
        return tail or None
    m = _AFTER_VERB.search(caption)
    return m.group(1).strip() if m else None


def reference_text(row: dict) -> str:
    """What the row says is spoken: its ``text`` (the word, ``label``, for spelled words)."""
    if content_of(row) == "spell" and row.get("label"):
        return str(row["label"])
    return str(row.get("text") or "")


def said_errors(caption: str, reference: str) -> tuple[int, int]:
    """``(word edits, reference words)`` of the caption's said text against ``reference``."""
    from soundtok.evaluate.asr import error_counts

    said = said_text(caption)
    c = error_counts(reference, said or "")
    return c.word_edits, c.ref_words


def _said_tokens(caption: str) -> list[str]:
    from soundtok.evaluate.asr import normalize_text as asr_normalize

    said = said_text(caption)
    return asr_normalize(said if said is not None else caption).split()


def digits_said(caption: str) -> str:
    """The digits the caption says are spoken, as one numeral string ("1 3 9" -> "139")."""
    return "".join(t for t in _said_tokens(caption) if len(t) == 1 and t.isdigit())


def letters_said(caption: str) -> str:
    """The letters the caption says are spoken, upper case ("K G" -> "KG")."""
    said = said_text(caption)
    return "".join(t.upper() for t in _words(said if said is not None else caption) if len(t) == 1 and t.isalpha())


def esc_class(caption: str) -> str | None:
    """The ESC-10 class the caption names (what is in the background does not count)."""
    return match_label(_AUGMENT_TAIL.sub("", caption), ESC_LABELS, ESC_SYNONYMS)


def gender_named(caption: str) -> str | None:
    """``male`` / ``female`` when the caption calls the speaker a man / a woman (words
    inside what is said do not count), else None."""
    words = set(_words(_QUOTED.sub(" ", caption).split(":", 1)[0]))
    if words & {"man", "male", "boy"}:
        return "male"
    if words & {"woman", "female", "girl"}:
        return "female"
    return None


def _names(row: dict) -> list[list[str]]:
    names = [str(i) for i in row.get("instruments") or []]
    ensemble = re.sub(r"^(a |an |solo )", "", str(row.get("ensemble") or "")).strip()
    if ensemble:
        names.append(ensemble)
    return [[canon_word(w) for w in normalize_text(n)] for n in names if normalize_text(n)]


def instrument_named(caption: str, row: dict) -> tuple[bool, bool]:
    """``(strict, lenient)``: the caption names one of the row's instruments (or its
    ensemble) in full ("alto saxophone"), or at least its head noun ("saxophone")."""
    words = {canon_word(w) for w in _words(caption)}
    names = _names(row)
    strict = any(all(w in words for w in n) for n in names)
    lenient = strict or any(n[-1] in words for n in names)
    return strict, lenient


def style_named(caption: str, row: dict) -> bool:
    """The caption holds every content word of the row's style (``label``, e.g. "a
    baroque chorale" -> baroque, chorale)."""
    words = {canon_word(w) for w in _words(caption)}
    want = [canon_word(w) for w in normalize_text(str(row.get("label") or "")) if w not in _STOP]
    return bool(want) and all(w in words for w in want)


def true_kind(row: dict) -> str:
    kind = str(row.get("kind") or "")
    return "speech" if kind.startswith("speech") else kind if kind in KINDS else "sound"


def score_row(row: dict, caption: str) -> dict:
    """Every measure that fits the row: kind, said-text word edits, digits, letters, ESC-10
    class, instrument, style, gender."""
    out: dict = {"id": row.get("id"), "caption": caption, "kind": true_kind(row),
                 "kind_pred": caption_kind(caption)}
    content = content_of(row)
    if out["kind"] == "speech" and row.get("text") and content == "spell":
        word = [canon_word(w) for w in normalize_text(reference_text(row))]
        out.update(word=True, word_pred={canon_word(w) for w in _words(caption)} >= set(word))
    elif out["kind"] == "speech" and row.get("text"):
        edits, words = said_errors(caption, reference_text(row))
        out.update(said=said_text(caption), reference=reference_text(row), edits=edits, ref_words=words)
        if content in ("digit", "digits"):
            want = re.sub(r"\D", "", str(row.get("label") or "")) or digits_said(f'"{row["text"]}"')
            out.update(digits=want, digits_pred=digits_said(caption))
        elif content in ("letter", "letters") and row.get("source") != "klettres":
            out.update(letters=str(row.get("label") or "").upper(), letters_pred=letters_said(caption))
    if out["kind"] == "speech" and row.get("gender") in ("male", "female"):
        out.update(gender=row["gender"], gender_pred=gender_named(caption))
    if out["kind"] == "sound" and str(row.get("label") or "").lower() in ESC_LABELS:
        out.update(label=str(row["label"]).lower(), label_pred=esc_class(caption))
    if out["kind"] == "music":
        strict, lenient = instrument_named(caption, row)
        out.update(instrument=strict, instrument_head=lenient, style=style_named(caption, row))
    return out


def _rate(rows: list[dict], key: str, want_key: str | None = None) -> float | None:
    got = [r for r in rows if key in r]
    if not got:
        return None
    if want_key is None:
        return round(sum(bool(r[key]) for r in got) / len(got), 4)
    return round(sum(r[key] == r[want_key] for r in got) / len(got), 4)


def summarize(rows: list[dict]) -> dict:
    """A set's rates: ``kind_rate`` (captioned as its own kind), ``wer`` (total said-text
    edits / total reference words), ``digit_accuracy`` (the whole digit string right),
    ``letter_accuracy``, ``class_accuracy`` (ESC-10), ``instrument_named`` (strict and
    head noun), ``style_named``, ``gender_accuracy`` (man/woman named right where known)."""
    out: dict = {"items": len(rows)}
    if not rows:
        return out
    out["kind_rate"] = round(sum(r["kind_pred"] == r["kind"] for r in rows) / len(rows), 4)
    words = sum(r.get("ref_words", 0) for r in rows)
    if words:
        out["wer"] = round(sum(r.get("edits", 0) for r in rows) / words, 4)
        out["said_exact"] = _rate([{"ok": r["edits"] == 0} for r in rows if "edits" in r], "ok")
    for name, key, want in (("digit_accuracy", "digits_pred", "digits"), ("letter_accuracy", "letters_pred", "letters"),
                            ("class_accuracy", "label_pred", "label"), ("gender_accuracy", "gender_pred", "gender"),
                            ("spelled_word_named", "word_pred", "word")):
        v = _rate(rows, key, want)
        if v is not None:
            out[name] = v
    for name, key in (("instrument_named", "instrument"), ("instrument_head_named", "instrument_head"),
                      ("style_named", "style")):
        v = _rate(rows, key)
        if v is not None:
            out[name] = v
    return {k: v for k, v in out.items() if v is not None}


def confusion(pairs: Iterable[tuple[str, str | None]], labels: list[str] | None = None,
              other: str = "(none)") -> dict:
    """Counts of ``(truth, prediction)`` pairs: ``{"rows": truths, "columns": predictions,
    "counts": [[...]]}``.  Rows are ``labels`` (default: every truth, sorted) and columns
    the same plus ``other`` for predictions outside them (None included)."""
    pairs = list(pairs)
    rows = list(labels) if labels is not None else sorted({t for t, _ in pairs})
    cols = rows + [other]
    index = {c: i for i, c in enumerate(cols)}
    counts = [[0] * len(cols) for _ in rows]
    for t, p in pairs:
        if t not in rows:
            continue
        counts[rows.index(t)][index.get(p, index[other]) if p is not None else index[other]] += 1
    if not any(row[-1] for row in counts):
        cols, counts = cols[:-1], [row[:-1] for row in counts]
    return {"rows": rows, "columns": cols, "counts": counts}


def confusion_markdown(table: dict, corner: str = "truth \\ caption") -> str:
    """A confusion table as Markdown (rows: truth; columns: prediction; the diagonal bold)."""
    cols = table["columns"]
    lines = [f"| {corner} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, row in zip(table["rows"], table["counts"]):
        cells = [f"**{n}**" if cols[j] == name else str(n) for j, n in enumerate(row)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- held-out sets

#: The held-out caption sets, in report order, with their titles.
EVAL_SETS = {
    "fsdd_test": "FSDD test split (5 speakers, recordings 0-4): spoken digits",
    "voices_digits": "held-out corpus voices: digits and digit strings",
    "voices_sentences": "held-out corpus voices: read sentences",
    "voices_letters": "held-out corpus voices: letters and spelled words",
    "klettres_test": "held-out languages (klettres en_GB, it, ru): letters and syllables",
    "esc10_fold4": "ESC-10 fold 4 (10 classes)",
    "music_test": "held-out music pieces",
    "sounds_test": "held-out sound samples (sonic-pi)",
}


def eval_set_of(row: dict) -> str | None:
    """The held-out set a corpus row belongs to (None: not held out, or no set)."""
    split, source, kind = row.get("split"), str(row.get("source") or ""), str(row.get("kind") or "")
    if source == "esc10":
        fold4 = str(row.get("fold")) == "4" or (row.get("fold") is None and
                                                 re.search(r"(?:^|/)4-\d+-[A-Z]", str(row.get("id"))))
        return "esc10_fold4" if fold4 and not row.get("augment") else None
    if split != "test" or row.get("augment"):
        return None
    content = content_of(row)
    if source == "fsdd":
        return "fsdd_test"
    if kind == "speech-tts":
        return {"digit": "voices_digits", "digits": "voices_digits", "sentence": "voices_sentences",
                "letter": "voices_letters", "letters": "voices_letters", "spell": "voices_letters"}.get(content or "")
    if kind == "speech":
        return "klettres_test"
    if kind == "music":
        return "music_test"
    if kind == "sound":
        return "sounds_test"
    return None


def spread(rows: list, limit: int | None) -> list:
    """``limit`` evenly spaced rows (all when ``limit`` is None or not smaller)."""
    if not limit or len(rows) <= limit:
        return list(rows)
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


HOMOPHONES = {"oh": "0", "o": "0", "won": "1", "to": "2", "too": "2", "for": "4", "fore": "4", "ate": "8"}


def whisper_digit(text: str, lenient: bool = False) -> str | None:
    """The first digit a transcript names (a numeral string), or None; ``lenient`` also
    reads homophones ("to" -> 2, "for" -> 4, "ate" -> 8, "oh" -> 0, ...)."""
    for w in normalize_text(text):
        c = canon_word(w)
        if c.isdigit() and len(c) == 1:
            return c
        if lenient and w in HOMOPHONES:
            return HOMOPHONES[w]
    return None


# --------------------------------------------------------------------------- report

_COLUMNS = [("items", "clips"), ("kind_rate", "captioned as its kind"), ("wer", "WER of the quoted text"),
            ("digit_accuracy", "digits right"), ("letter_accuracy", "letters right"),
            ("spelled_word_named", "spelled word named"), ("class_accuracy", "class right"),
            ("instrument_named", "instrument named"), ("instrument_head_named", "instrument (head noun)"),
            ("style_named", "style named"), ("gender_accuracy", "man/woman right"),
            ("unsure_rate", "flagged unsure"), ("median_score", "median score")]


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def results_markdown(results: dict) -> str:
    """results.json as Markdown tables for a model card: captions per held-out set, the
    kind and ESC-10 confusion tables, generation, references."""
    out = [f"# Held-out results: {results.get('adapter', '?')}", ""]
    meta = [f"codec `{results['codec']}`" if results.get("codec") else None,
            f"{results['threads']} threads" if results.get("threads") else None,
            f"limit {results['limit']} clips per set" if results.get("limit") else "every held-out clip"]
    out += ["; ".join(m for m in meta if m) + ".", ""]
    sets = results.get("captions") or {}
    if sets:
        cols = [(k, t) for k, t in _COLUMNS if any(k in s for s in sets.values())]
        out += ["## Captions", "", "| set | " + " | ".join(t for _, t in cols) + " |",
                "|---|" + "---:|" * len(cols)]
        for name, s in sets.items():
            out.append(f"| {EVAL_SETS.get(name, name)} | " + " | ".join(_cell(s.get(k)) for k, _ in cols) + " |")
        out.append("")
    for key, title in (("kind_confusion", "Kind named by the caption (all sets)"),
                       ("esc10_confusion", "ESC-10 fold 4: class named by the caption"),
                       ("fsdd_confusion", "FSDD test split: digit named by the caption")):
        if results.get(key):
            out += [f"## {title}", "", confusion_markdown(results[key]), ""]
    gen = results.get("generation") or {}
    if gen:
        out += ["## Generation", "", "| prompts | clips | measure | value |", "|---|---:|---|---:|"]
        for name, g in gen.items():
            for measure, value in g.get("measures", {}).items():
                out.append(f"| {g.get('title', name)} | {g.get('items', '–')} | {measure} | {_cell(value)} |")
        out.append("")
    ref = results.get("reference") or {}
    if ref:
        out += ["## Reference (real clips, not generated)", "", "| clips | measure | value |", "|---:|---|---:|"]
        for measure, value in ref.get("measures", {}).items():
            out.append(f"| {ref.get('items', '–')} | {measure} | {_cell(value)} |")
        out.append("")
    if results.get("latency_5s_clip_s") is not None:
        out += [f"Caption latency of a 5 s clip after loading: {results['latency_5s_clip_s']} s "
                f"(median of 5, {results.get('threads')} threads).", ""]
    return "\n".join(out)
