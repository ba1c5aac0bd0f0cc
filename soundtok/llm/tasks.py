"""Library functions behind ``soundtok caption`` and ``soundtok generate``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from ..errors import FormatError, UsageError
from ..tokens import Header, Item, TokenReader
from .decoding import generate_audio, generate_text
from .prompts import PromptBuilder, PromptFormat
from .vocab import AudioVocab


@dataclass
class CaptionOptions:
    max_new_tokens: int = 32
    beams: int = 1
    sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 8


@dataclass
class GenerateOptions:
    duration: float = 10.0
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    greedy: bool = False
    batch_size: int = 8


def _builder(alm, tokenizer) -> PromptBuilder:
    return PromptBuilder(tokenizer, alm.vocab, PromptFormat.from_dict(alm.meta.get("prompts")))


def _pad_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id
    return pad if pad is not None else tokenizer.eos_token_id


def _batches(it: Iterable, size: int) -> Iterator[list]:
    batch = []
    for x in it:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def caption_items(alm, tokenizer, items: Iterable[Item], opts: CaptionOptions | None = None
                  ) -> Iterator[tuple[Item, str]]:
    """``(item, caption)`` for each item (items must be valid for ``alm.vocab.header``)."""
    import torch

    opts = opts or CaptionOptions()
    if opts.beams > 1 and opts.sample:
        raise UsageError("--beams and --sample cannot be combined")
    builder = _builder(alm, tokenizer)
    if opts.sample:
        torch.manual_seed(opts.seed)
    for batch in _batches(items, opts.batch_size):
        prompts = [builder.caption_prompt(alm.vocab.item_ids(item)) for item in batch]
        outs = generate_text(alm, prompts, eos_id=builder.eos, pad_id=_pad_id(tokenizer),
                             max_new_tokens=opts.max_new_tokens, beams=opts.beams, sample=opts.sample,
                             temperature=opts.temperature, top_p=opts.top_p)
        for item, ids in zip(batch, outs):
            yield item, tokenizer.decode(ids, skip_special_tokens=True).strip()


def open_stream(source: str | os.PathLike | IO[Any] | TokenReader, vocab: AudioVocab) -> TokenReader:
    """A reader whose header has been checked against the adapter's codec (read before
    any model is loaded, so a wrong stream fails fast)."""
    reader = source if isinstance(source, TokenReader) else TokenReader(
        source, expect_codec_sha256=vocab.codec_sha256, expect_codec_name=vocab.codec_name)
    _check_header(reader.header, vocab.header, reader.name)
    return reader


def caption_stream(alm, tokenizer, source: str | os.PathLike | IO[Any] | TokenReader = "-",
                   opts: CaptionOptions | None = None) -> Iterator[tuple[Item, str]]:
    """Caption every item of a token stream; the stream must come from the adapter's codec."""
    with open_stream(source, alm.vocab) as reader:
        count = 0
        for pair in caption_items(alm, tokenizer, reader, opts):
            count += 1
            yield pair
        if count == 0:
            raise FormatError(f"{reader.name}: the token stream holds no items")


def _check_header(got: Header, want: Header, name: str) -> None:
    if (got.sample_rate, got.hop_lengths, got.codebook_sizes) != (
            want.sample_rate, want.hop_lengths, want.codebook_sizes):
        raise FormatError(f"{name}: stream layout (rate {got.sample_rate}, hops {got.hop_lengths}, "
                          f"codebooks {got.codebook_sizes}) differs from the adapter's codec")


def max_audio_tokens(header: Header, seconds: float) -> int:
    """Audio tokens in ``seconds`` of audio (all codebooks), e.g. 25/s for the default codec."""
    samples = int(round(seconds * header.sample_rate))
    return sum(samples // hop for hop in header.hop_lengths)


def generate_items(alm, tokenizer, prompts: Iterable[tuple[str, str]],
                   opts: GenerateOptions | None = None) -> Iterator[Item]:
    """One generated :class:`Item` per ``(id, prompt)``; prompt ``i`` (0-based) samples with seed ``seed + i``."""
    opts = opts or GenerateOptions()
    if opts.duration <= 0:
        raise UsageError("--duration must be positive")
    vocab = alm.vocab
    header = vocab.header
    builder = _builder(alm, tokenizer)
    max_tokens = max(1, max_audio_tokens(header, opts.duration))
    index = 0
    for batch in _batches(prompts, opts.batch_size):
        for pid, text in batch:
            if not text or not text.strip():
                raise UsageError(f"prompt {pid!r} is empty")
        seeds = None if opts.greedy else [opts.seed + index + i for i in range(len(batch))]
        outs = generate_audio(alm, [builder.generate_prompt(text) for _, text in batch],
                              pad_id=_pad_id(tokenizer), max_tokens=max_tokens, seeds=seeds,
                              temperature=opts.temperature, top_p=opts.top_p)
        for i, ((pid, text), ids) in enumerate(zip(batch, outs)):
            codes = vocab.ids_to_codes(ids)
            periods = len(ids) // len(vocab.schedule())
            meta = {"prompt": text, "seed": None if seeds is None else seeds[i],
                    "temperature": None if seeds is None else opts.temperature, "top_p": opts.top_p}
            yield Item(id=pid, num_samples=periods * vocab.period_samples, codes=codes, text=text, meta=meta)
        index += len(batch)
