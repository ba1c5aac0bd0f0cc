"""Library functions behind ``soundtok caption`` and ``soundtok generate``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from ..errors import FormatError, UsageError
from ..tokens import Header, Item, TokenReader
from .decoding import generate_audio, generate_text
from .prompts import PromptBuilder, PromptFormat
from .vocabulary import AudioVocab


@dataclass
class CaptionOptions:
    max_new_tokens: int = 32
    beams: int = 1
    sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 8


@dataclass(frozen=True)
class Caption:
    """One caption: ``text``; ``score``, the mean log-probability per token the model gave
    it (0 = certain; see :func:`~.decoding.generate_text`); ``unsure``, whether the score is
    below the adapter's calibrated threshold (audio unlike what it was trained on), or None
    for an adapter without a calibration."""

    text: str
    score: float
    unsure: bool | None = None

    def __str__(self) -> str:
        return self.text


def score_threshold(meta: dict) -> float | None:
    """The adapter's calibrated ``min_score`` (None: not calibrated)."""
    cal = meta.get("calibration") if isinstance(meta, dict) else None
    value = cal.get("min_score") if isinstance(cal, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


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
                  ) -> Iterator[tuple[Item, Caption]]:
    """``(item, caption)`` for each item (items must be valid for ``alm.vocab.header``)."""
    import torch

    opts = opts or CaptionOptions()
    if opts.beams > 1 and opts.sample:
        raise UsageError("--beams and --sample cannot be combined")
    builder = _builder(alm, tokenizer)
    threshold = score_threshold(alm.meta)
    # sampling draws from one generator per call: item i (0-based) samples alone, seeded
    # seed + i, so that its caption does not depend on the batch
    size = 1 if opts.sample else opts.batch_size
    for index, batch in enumerate(_batches(items, size)):
        if opts.sample:
            torch.manual_seed(opts.seed + index)
        prompts = [builder.caption_prompt(alm.vocab.item_ids(item)) for item in batch]
        outs = generate_text(alm, prompts, eos_id=builder.eos, pad_id=_pad_id(tokenizer),
                             max_new_tokens=opts.max_new_tokens, beams=opts.beams, sample=opts.sample,
                             temperature=opts.temperature, top_p=opts.top_p)
        for item, (ids, score) in zip(batch, outs):
            text = tokenizer.decode(ids, skip_special_tokens=True).strip()
            score = round(score, 4)  # as printed; the flag follows the printed score
            yield item, Caption(text, score, None if threshold is None else score < threshold)


def open_stream(source: str | os.PathLike | IO[Any] | TokenReader, vocab: AudioVocab) -> TokenReader:
    """A reader whose header has been checked against the adapter's codec (read before
    any model is loaded, so a wrong stream fails fast)."""
    reader = source if isinstance(source, TokenReader) else TokenReader(
        source, expect_codec_sha256=vocab.codec_sha256, expect_codec_name=vocab.codec_name)
    _check_header(reader.header, vocab.header, reader.name)
    return reader


def open_and_load(source: str | os.PathLike | IO[Any], adapter=None, *, llm: str | None = None,
                  device="auto", progress: Callable[[str], None] | None = None):
    """``(reader, (audio_lm, tokenizer, meta))`` for captioning the token stream ``source``:
    the stream opened with its header checked against the adapter's codec (as
    :func:`open_stream`), and the adapter loaded (as :func:`~.adapter.load_adapter`, for
    decoding only).

    Reading a header from a pipe waits for its writer (``soundtok tokenize`` writes it with
    the first item, after loading its codec and encoding that item).  Where the merged model
    is cached (a load of a second or so), the header is therefore read in a background
    thread while the model loads in this one, and a stream of another codec is reported
    once the load is done.  Otherwise the header comes first, so that such a stream fails
    before the merged model is built and written (~1 GB)."""
    from concurrent.futures import Future
    from threading import Thread

    from .adapter import load_adapter, merged_cached, read_meta, resolve_adapter

    vocab = AudioVocab.from_dict(read_meta(resolve_adapter(adapter)).get("codec") or {})
    if not merged_cached(adapter, llm=llm, device=device):
        reader = open_stream(source, vocab)
        try:
            return reader, load_adapter(adapter, llm=llm, device=device, progress=progress, decode_only=True)
        except BaseException:
            reader.close()
            raise
    opened: Future = Future()

    def read_header() -> None:
        try:
            opened.set_result(open_stream(source, vocab))
        except BaseException as e:  # noqa: BLE001 - raised in the caller's thread below
            opened.set_exception(e)

    Thread(target=read_header, name="soundtok-header", daemon=True).start()  # may wait on a pipe forever
    try:
        loaded = load_adapter(adapter, llm=llm, device=device, progress=progress, decode_only=True)
    except BaseException:
        if opened.done() and opened.exception() is None:
            opened.result().close()
        raise
    return opened.result(), loaded


def caption_stream(alm, tokenizer, source: str | os.PathLike | IO[Any] | TokenReader = "-",
                   opts: CaptionOptions | None = None) -> Iterator[tuple[Item, Caption]]:
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


def unfamiliar_prompts(meta: dict, prompts: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """``(prompt, words)`` for each prompt with words the adapter's training texts never
    used (its ``training.vocabulary``; an adapter without one judges nothing): the adapter
    has not learnt what they sound like, so expect audio unrelated to them."""
    from .data import unfamiliar_words

    vocabulary = ((meta or {}).get("training") or {}).get("vocabulary")
    if not vocabulary:
        return []
    known = set(vocabulary)
    found = [(text, unfamiliar_words(text, known)) for _, text in prompts]
    return [(text, new) for text, new in found if new]


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


# --------------------------------------------------------------------------- Python API
# soundtok.caption / soundtok.generate: load the adapter (or take a loaded one), run, return.


def _loaded(adapter, llm, device, progress, decode_only=False):
    """``(audio_lm, tokenizer)`` from a loaded ``load_adapter`` result or by loading one."""
    if isinstance(adapter, tuple) and len(adapter) >= 2 and hasattr(adapter[0], "vocab"):
        if llm is not None:
            raise UsageError("llm= applies when the adapter is loaded here, not to a loaded adapter")
        return adapter[0], adapter[1]
    from .adapter import load_adapter

    alm, tokenizer, _ = load_adapter(adapter, llm=llm, device=device, progress=progress, decode_only=decode_only)
    return alm, tokenizer


def _adapter_vocab(adapter) -> AudioVocab:
    """The audio vocabulary an adapter (loaded or a directory) was trained with, without loading the LLM."""
    if isinstance(adapter, tuple) and len(adapter) >= 2 and hasattr(adapter[0], "vocab"):
        return adapter[0].vocab
    from .adapter import read_meta, resolve_adapter

    return AudioVocab.from_dict(read_meta(resolve_adapter(adapter)).get("codec") or {})


def _tensor_items(codes, header: Header, start: int) -> list[Item]:
    """Items from a codes tensor ``(B, K, T)`` or ``(K, T)`` of a single-rate codec."""
    if codes.dim() == 2:
        codes = codes[None]
    if codes.dim() != 3:
        raise UsageError(f"codes must have shape (B, K, T) or (K, T), not {tuple(codes.shape)}")
    if len(set(header.hop_lengths)) != 1:
        raise UsageError("this adapter's codec has codebooks at several rates: pass a token stream or Items")
    if codes.dtype.is_floating_point or codes.dtype.is_complex or str(codes.dtype) == "torch.bool":
        raise UsageError(f"codes must be integers, not {codes.dtype}")
    hop = header.hop_lengths[0]
    rows = codes.detach().cpu().tolist()
    return [Item(id=str(start + b), num_samples=len(r[0]) * hop if r else 0, codes=r) for b, r in enumerate(rows)]


def _caption_items(codes, header: Header) -> list[Item]:
    import torch

    if isinstance(codes, (Item, torch.Tensor)):
        codes = [codes]
    items: list[Item] = []
    for x in codes:
        if isinstance(x, Item):
            items.append(x)
        elif isinstance(x, torch.Tensor):
            items.extend(_tensor_items(x, header, len(items)))
        else:
            raise UsageError(f"cannot caption a {type(x).__name__}: give codes tensors, Items or a "
                             f"token stream path")
    for item in items:
        header.check_item(item)
    if not items:
        raise UsageError("nothing to caption")
    return items


def caption(codes, *, adapter=None, llm: str | None = None, device: str = "auto",
            max_new_tokens: int = 32, beams: int = 1, sample: bool = False, temperature: float = 1.0,
            top_p: float = 1.0, seed: int = 0, batch_size: int = 8, scores: bool = False,
            progress: Callable[[str], None] | None = None) -> list:
    """Describe sound in words: one caption per clip, in order (strings; with ``scores``,
    :class:`Caption` records with the model's confidence and the out-of-domain flag).

    ``codes``: tokens of the adapter's codec (the built-in codec for the shipped
    adapter) as

    * a tensor ``(B, K, T)`` -- e.g. ``codec.encode(wav)``, ``(1, 1, T)`` for
      one clip, 25 codes per second -- or ``(K, T)`` (one clip);
    * an :class:`~soundtok.tokens.Item`, or a list of tensors and Items (e.g.
      what :func:`generate` returns);
    * a token stream path (``-`` = stdin), checked against the adapter's codec.

    ``adapter``: ``None`` (the shipped one), a directory, or the result of
    :func:`soundtok.load_adapter` (loads the LLM once for many calls; the first
    use of Gemma writes a ~1.1 GB cache and the first use of an adapter another
    ~1.1 GB, see :mod:`soundtok.cache`; later loads read those, see docs/llm.md).
    ``device``: ``"auto"`` (CUDA when available, else CPU), ``cpu``, ``cuda``,
    ``cuda:N``.  Greedy decoding by
    default; ``beams`` for beam search, ``sample`` with ``temperature``,
    ``top_p`` and ``seed`` for sampling.  ``progress`` receives one-line
    messages while loading (default: stderr).
    """
    import torch

    vocab = _adapter_vocab(adapter)
    source: Any
    if isinstance(codes, (str, os.PathLike)):
        source = open_stream(codes, vocab)  # a stream of another codec fails before the model loads
    else:
        source = _caption_items(codes, vocab.header)
    try:
        alm, tokenizer = _loaded(adapter, llm, device, progress, decode_only=True)
        opts = CaptionOptions(max_new_tokens=max_new_tokens, beams=beams, sample=sample, temperature=temperature,
                              top_p=top_p, seed=seed, batch_size=batch_size)
        with torch.inference_mode():
            if isinstance(source, TokenReader):
                out = [c for _, c in caption_stream(alm, tokenizer, source, opts)]
            else:
                out = [c for _, c in caption_items(alm, tokenizer, source, opts)]
        return out if scores else [c.text for c in out]
    finally:
        if isinstance(source, TokenReader):
            source.close()


def generate(prompts: str | Iterable[str], *, adapter=None, llm: str | None = None, device: str = "auto",
             duration: float = 10.0, temperature: float = 1.0, top_p: float = 1.0, greedy: bool = False,
             seed: int = 0, batch_size: int = 8, progress: Callable[[str], None] | None = None) -> list:
    """Sound tokens for text: one codes tensor per prompt, in order.

    Each result is a ``torch.long`` tensor ``(1, K, T)`` of the adapter's codec
    (``(1, 1, T)``, 25 codes per second, for the shipped adapter), at most
    ``duration`` seconds long (generation stops at ``</audio>``); decode it
    with ``codec.decode(codes)`` (:func:`soundtok.load_codec`).  Prompt ``i``
    (0-based) samples with seed ``seed + i``; ``greedy`` takes the most likely
    token instead.  ``adapter``, ``llm``, ``device`` and ``progress`` are as
    for :func:`caption`.
    """
    import torch

    texts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not texts:
        raise UsageError("no prompts given")
    for i, text in enumerate(texts, 1):
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"prompt {i} is empty" if isinstance(text, str) else f"prompt {i} is not a string")
    alm, tokenizer = _loaded(adapter, llm, device, progress)
    opts = GenerateOptions(duration=duration, temperature=temperature, top_p=top_p, seed=seed, greedy=greedy,
                           batch_size=batch_size)
    pairs = [(str(i), text) for i, text in enumerate(texts)]
    with torch.inference_mode():
        return [item.codes_tensor()[None] for item in generate_items(alm, tokenizer, pairs, opts)]
