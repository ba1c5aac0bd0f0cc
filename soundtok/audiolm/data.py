"""Training data for ``finetune-llm``: records, examples, batches.

Two input formats:

* a **token stream** (docs/token-format.md) whose items carry ``text`` (or
  ``label``).  ``meta.captions`` (a list of strings) gives alternative
  captions and ``meta.prompts`` alternative generation prompts; one of each is
  drawn per epoch.  ``meta.tasks`` (``["caption"]`` or ``["generate"]``)
  limits the examples an item makes under ``--task mixed``.  ``--task caption`` makes audio->text examples,
  ``generate`` text->audio, ``mixed`` both;
* a **pair file**: JSON Lines of ``{"prompt": ..., "response": ...}`` whose
  strings may hold audio as ``<audio><a0_5>...</audio>``.  The codec is named
  by a token-stream header as the first line, or by ``--codec``.

Batches group examples of similar length (less padding); their order depends
only on the seed and the epoch, so a resumed run sees the same batches.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field

from ..errors import FormatError, UsageError
from ..fileio import iter_jsonl
from ..tokens import Header, TokenReader
from .prompts import Example, PromptBuilder

TASKS = ("caption", "generate", "mixed")


@dataclass
class Record:
    """One training unit before tokenization of its text."""

    audio_ids: list[int] | None = None
    captions: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    pair: tuple[str, str] | None = None
    id: str = ""
    tasks: tuple[str, ...] = ("caption", "generate")


def _strings(v) -> list[str]:
    if isinstance(v, str):
        return [v] if v.strip() else []
    if isinstance(v, list):
        return [x for x in v if isinstance(x, str) and x.strip()]
    return []


def peek_header(path: str | os.PathLike, codec_header: Header | None = None) -> tuple[Header, str]:
    """The codec header of a training file and its kind (``stream`` or ``pairs``)."""
    first, second = _first_records(path)
    if first is None:
        raise FormatError(f"{path}: empty file")
    if "soundtok" in first:
        header = Header.from_json(first)
        kind = "pairs" if second is not None and "prompt" in second else "stream"
        return header, kind
    if "prompt" in first:
        if codec_header is None:
            raise UsageError(f"{path}: a prompt/response file needs a codec: put a token-stream header "
                             f"on its first line or pass --codec")
        return codec_header, "pairs"
    raise FormatError(f"{path}: neither a token stream nor a prompt/response JSON Lines file")


def _first_records(path) -> tuple[dict | None, dict | None]:
    out: list[dict] = []
    try:
        with open(path, encoding="utf-8-sig") as f:
            for n, obj in iter_jsonl(f, f"{path}:", FormatError):
                if not isinstance(obj, dict):
                    raise FormatError(f"{path}: line {n}: not a JSON object")
                out.append(obj)
                if len(out) == 2:
                    break
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        from ..sniff import audio_file_kind

        kind = audio_file_kind(path)
        if kind:
            raise FormatError(f"{path}: this is audio ({kind}), not a token stream or prompt/response "
                              f"pairs (soundtok tokenize turns audio into a token stream)") from None
        raise FormatError(f"{path}: not valid UTF-8") from None
    return (out + [None, None])[0], (out + [None, None])[1]


def load_records(path: str | os.PathLike, builder: PromptBuilder, kind: str) -> tuple[list[Record], int]:
    """Records of a training file and how many items were skipped (no text)."""
    vocab = builder.vocab
    records, skipped = [], 0
    if kind == "stream":
        with TokenReader(path, expect_codec_sha256=vocab.codec_sha256,
                         expect_codec_name=vocab.codec_name) as reader:
            for item in reader:
                captions = _strings(item.meta.get("captions")) or _strings(item.text) or _strings(item.label)
                if not captions:
                    skipped += 1
                    continue
                prompts = _strings(item.meta.get("prompts")) or captions
                tasks = tuple(t for t in _strings(item.meta.get("tasks")) if t in ("caption", "generate"))
                records.append(Record(audio_ids=vocab.item_ids(item), captions=captions, prompts=prompts,
                                      id=item.id, tasks=tasks or ("caption", "generate")))
        if not records and not skipped:
            raise FormatError(f"{path}: the token stream holds no items")
        if not records:
            raise FormatError(f"{path}: no item carries a text or label to train on")
        return records, skipped
    with open(path, encoding="utf-8-sig") as f:
        for n, obj in iter_jsonl(f, f"{path}:", FormatError):
            if not isinstance(obj, dict):
                raise FormatError(f"{path}: line {n}: not a JSON object")
            if "soundtok" in obj:
                continue
            prompt, response = obj.get("prompt"), obj.get("response")
            if not isinstance(prompt, str) or not isinstance(response, str) or not response.strip():
                raise FormatError(f"{path}: line {n}: needs string \"prompt\" and non-empty \"response\"")
            builder.pair(prompt, response)  # validates audio spans now, with the line number
            records.append(Record(pair=(prompt, response), id=str(obj.get("id", n))))
    if not records:
        raise FormatError(f"{path}: no prompt/response pairs")
    return records, 0


def make_examples(records: list[Record], task: str, builder: PromptBuilder, rng: random.Random
                  ) -> list[Example]:
    """This epoch's examples (one caption / prompt drawn per record)."""
    out = []
    for r in records:
        if r.pair is not None:
            out.append(builder.pair(*r.pair))
            continue
        if task in ("caption", "mixed") and "caption" in r.tasks:
            out.append(Example(builder.caption_prompt(r.audio_ids),
                               builder.caption_response(rng.choice(r.captions)), "caption"))
        if task in ("generate", "mixed") and "generate" in r.tasks:
            out.append(Example(builder.generate_prompt(rng.choice(r.prompts)),
                               builder.generate_response(r.audio_ids), "generate"))
    return out


def make_batches(lengths: list[int], batch_size: int, rng: random.Random, pool: int = 50) -> list[list[int]]:
    """Index batches: shuffle, sort by length within pools of ``pool`` batches, shuffle batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    span = batch_size * pool
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: list[Example], pad_id: int):
    """``(ids, attention_mask, targets)``, right-padded.

    Inputs are each sequence without its last token; ``targets[b, t]`` is the
    token after position ``t`` when that token belongs to the response, else
    -100.  So the loss covers exactly the response tokens.
    """
    import torch

    seqs = [e.prompt + e.response for e in examples]
    width = max(len(s) for s in seqs) - 1
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    targets = torch.full((len(seqs), width), -100, dtype=torch.long)
    for b, (e, s) in enumerate(zip(examples, seqs)):
        n = len(s) - 1
        ids[b, :n] = torch.tensor(s[:-1])
        mask[b, :n] = 1
        start = len(e.prompt) - 1  # position whose next token is the first response token
        targets[b, start:n] = torch.tensor(s[start + 1:])
    return ids, mask, targets


# --------------------------------------------------------------------------- vocabulary

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
#: Words that say nothing about a sound; a prompt made only of these is not judged.
STOPWORDS = frozenset(
    "a an the of and or to in on at by with for from is are was be being been it its this that "
    "some someone somebody something sound sounds noise recording audio clip".split())
VOCABULARY_CAP = 20000


def words(text: str) -> list[str]:
    """Lower-case word tokens of ``text`` (letters, digits, inner apostrophes)."""
    return _WORD.findall(text.lower())


def text_vocabulary(records: list[Record]) -> list[str]:
    """The words of every caption, prompt and pair text of ``records``, most frequent first
    (at most :data:`VOCABULARY_CAP`): what ``generate`` compares prompts with."""
    from collections import Counter

    counts: Counter = Counter()
    for r in records:
        for text in (*r.captions, *r.prompts, *(r.pair or ())):
            counts.update(w for w in words(text) if not text.startswith("<audio>"))
    return [w for w, _ in counts.most_common(VOCABULARY_CAP)]


def unfamiliar_words(prompt: str, vocabulary: list[str] | set[str]) -> list[str]:
    """The words of ``prompt`` that say something (not :data:`STOPWORDS`) and never occur
    in ``vocabulary`` (the adapter's training texts), in prompt order."""
    known = vocabulary if isinstance(vocabulary, set) else set(vocabulary)
    return list(dict.fromkeys(w for w in words(prompt) if w not in STOPWORDS and w not in known))
