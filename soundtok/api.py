"""Library functions behind ``soundtok tokenize`` and ``soundtok detokenize``.

Both stream: items are read, processed and written one at a time, and long
audio is encoded/decoded in chunks (``chunk_seconds``), so memory does not grow
with the number or length of inputs.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import AudioError, FormatError, PartialFailure, SoundtokError, UsageError
from .fileio import note_input, output_target, tracks_inputs
from .streams import BatchReport
from .tokens import Header, Item, TokenReader, count_items, open_token_writer

#: Sample rate of the built-in codecs (Hz): the default of :func:`load_audio`.
SAMPLE_RATE = 16000


def load_audio(src, sample_rate: int | None = SAMPLE_RATE):
    """Read audio as ``(wav, sr)`` for :meth:`codec.encode <soundtok.codec.model.SoundCodec.encode>`.

    ``src``: a path (WAV, FLAC, OGG, MP3, ...; other formats through ffmpeg
    when it is installed), ``bytes`` or a binary file object.  ``wav`` is a
    float32 tensor of shape ``(1, N)`` -- one mono clip, channels averaged,
    values in [-1, 1] -- at ``sr`` Hz: ``sample_rate`` (default 16000, the
    rate of the built-in codecs; resampled with soxr), or the file's own rate
    when ``sample_rate`` is ``None``.  Raises
    :class:`~soundtok.errors.AudioError` (one line) for a missing, empty or
    undecodable input.
    """
    from .audio import read_audio

    wav, sr = read_audio(src, sample_rate)
    return wav[None], sr


@tracks_inputs
def tokenize(inputs: list[str], output: str = "-", codec=None, device: str = "auto",
             chunk_seconds: float = 30.0, on_error: Callable[[str], None] | None = None,
             on_item: Callable[[Item], None] | None = None, as_text: bool = False,
             llm=None, *, manifests: list[str] | tuple[str, ...] = (), shard=None,
             workers: int = 0, batch_size: int = 16, resume: bool = False,
             on_info: Callable[[str], None] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> BatchReport:
    """Tokenize audio files, folders, globs, manifests or ``-`` (stdin) into one
    token stream at ``output`` (``-`` = stdout; a file appears atomically).

    ``codec``: see :func:`soundtok.registry.load_codec` (``"llm-codec"`` for the
    shipped LLM-Codec); ``llm`` is passed on to it.  ``as_text`` (codecs whose
    codes are an LLM's words, e.g. the LLM-Codec): instead of a token stream
    write one line per item, ``<id><TAB><the clip as the LLM's words>``.

    Data-set conversion (see docs/scaling.md):

    * ``manifests``: more inputs, read as manifests whatever their extension.
    * ``shard``: ``"I/N"`` (or ``(I, N)``): only items ``k`` with
      ``k mod N == I`` (``k`` counts items in input order, from 0).  The header
      records ``extra.shard`` so that :func:`merge` can check the set.
    * ``workers``: decoding processes (0 = decode in this process).  The model
      encodes in this process, up to ``batch_size`` clips at a time when the
      codec batches (the built-in codec: clips with the same number of token
      frames; same codes as one by one).
    * ``resume``: ``output`` (a file) is written incrementally -- each item is
      appended and flushed when done -- and, if it exists, continued: its items
      are checked and skipped, a cut-off last line is repaired.  Without
      ``resume`` a file output appears atomically when the run ends.

    Items are written in input order (the order of the shard's items; a resumed
    run appends the items the earlier one had not finished, in order).  Inputs
    longer than two minutes are decoded and encoded as streams: memory does not
    grow with duration, and the codes equal whole-file encoding.

    Unreadable inputs are skipped and reported (``on_error`` is called with each
    message); if no input succeeds, nothing is written and an error is raised.
    ``on_progress(done, total)`` is called once the inputs are listed (``done``
    0) and after each item is written, skipped (``resume``) or fails; ``total``
    is the number of items to go through (this shard's).
    """
    from .inputs import parse_shard, plan_sources
    from .pipeline import iter_items
    from .registry import load_codec, words_of
    from .streams import ResumableWriter

    shard = parse_shard(shard)
    if not isinstance(workers, int) or workers < 0:
        raise UsageError(f"--workers must be 0 or more, not {workers!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size!r}")
    if resume and output == "-":
        raise UsageError("--resume needs -o FILE (the file a killed run left behind)")
    if resume and as_text:
        raise UsageError("--resume works with token streams, not --as-text")
    if not inputs and not manifests:
        raise UsageError("no audio inputs given")
    for spec in (*inputs, *manifests):  # an output that is one of the inputs is refused now, before any work
        if spec != "-":
            note_input(spec)
    output_target(output)

    model = load_codec(codec, device, llm=llm)
    words = words_of(model) if as_text else None
    if as_text and words is None:
        raise UsageError("--as-text needs an llm-codec (e.g. --codec llm-codec): only its codes are "
                         "an LLM's words")
    header = model.header()
    sr = model.sample_rate
    report = BatchReport()
    held: list[str] = []  # failures not shown yet: until something succeeds (see below)
    succeeded = [False]

    def fail(name: str, msg: str) -> None:
        report.failed.append((name, msg))
        if succeeded[0] or report.skipped:
            if on_error:
                on_error(msg)
        else:
            held.append(msg)

    def show_held() -> None:
        while held:
            msg = held.pop(0)
            if on_error:
                on_error(msg)

    def nothing_tokenized() -> AudioError:
        # A single failure is the whole story: one line.  Several are listed, then summed up.
        if len(report.failed) == 1:
            held.clear()
            return AudioError(report.failed[0][1])
        show_held()
        return AudioError(f"no input could be tokenized ({len(report.failed)} failed)")

    plan = plan_sources(list(inputs), list(manifests), shard, fail)
    if shard is not None:
        header.extra = {**header.extra, "shard": {"index": shard.index, "count": shard.count,
                                                  "total_items": plan.total}}
    writer = ResumableWriter(output, header, on_info).open() if resume else None
    done = writer.done if writer else set()
    if writer and done and on_info:
        on_info(f"resuming {output}: {len(done)} item(s) already there")

    processed = [0]

    def step() -> None:
        processed[0] += 1
        if on_progress:
            on_progress(processed[0], plan.selected)

    if on_progress:
        on_progress(0, plan.selected)

    def sources():
        for _, src in plan:
            if src.id in done:
                report.skipped += 1
                step()
                continue
            yield src

    def items():
        for r in iter_items(sources(), model, chunk_seconds=chunk_seconds, batch_size=batch_size,
                            workers=workers):
            src = r.source
            if r.error is not None:
                fail(src.path or src.id, r.error)
                step()
                continue
            yield Item(id=src.id, num_samples=r.num_samples, codes=r.codes, source=src.path,
                       text=src.text, label=src.label, meta=dict(src.meta or {}))
            step()  # the consumer asked for the next item: this one is written

    def put(w, item: Item) -> None:
        """Write one item; an item that cannot be written (NaN in its metadata, a bad id)
        fails alone and the batch goes on."""
        try:
            w.write(item)
        except FormatError as e:
            fail(item.source or item.id, str(e))
            return
        report.ok += 1
        report.audio_seconds += item.num_samples / sr
        succeeded[0] = True
        show_held()
        if on_item:
            on_item(item)

    if writer is not None:
        try:
            for item in items():
                put(writer, item)
            if report.ok == 0 and report.failed and not report.skipped:
                writer.discard_if_empty()
                raise nothing_tokenized()
            show_held()
            if plan.total == 0 and not report.failed:
                writer.discard_if_empty()
                raise UsageError("no audio inputs given")
            writer.finish()
        finally:
            writer.close()
        report.outputs.append(output)
        return report

    it = items()
    first = next(it, None)
    if first is None:
        if report.failed:
            raise nothing_tokenized()
        if shard is None or plan.total == 0:
            raise UsageError("no audio inputs given")
        # an empty shard (more shards than items): a valid stream without items
    if as_text:
        return _write_text(_chain(first, it) if first is not None else iter(()), output, header, words,
                           report, put)
    with open_token_writer(output, header) as w:
        for item in (_chain(first, it) if first is not None else ()):
            put(w, item)
        if report.ok == 0 and report.failed:
            raise nothing_tokenized()  # nothing could be written: the output is not replaced
    show_held()
    report.outputs.append(output)
    return report


@tracks_inputs
def merge(inputs: list[str], output: str = "-", on_info: Callable[[str], None] | None = None
          ) -> BatchReport:
    """Merge token stream files (e.g. the shards of ``tokenize --shard``) into
    one; see :func:`soundtok.streams.merge_streams` for the checks."""
    from .streams import merge_streams

    return merge_streams(list(inputs), output, on_info=on_info)


def _write_text(items, output: str, header: Header, words, report: BatchReport, put) -> BatchReport:
    """``<id>\t<words>`` lines (atomically for a file); ``words(item, header)`` renders
    one item, ``put(writer, item)`` writes it or reports it as failed (see :func:`tokenize`)."""
    from .fileio import atomic_write, output_target, std_stream

    class Lines:
        def __init__(self, f) -> None:
            self.f, self.ids = f, set()

        def write(self, item: Item) -> None:
            header.check_item(item)  # a bad id fails here, alone
            if item.id in self.ids:
                raise FormatError(f"item id {item.id!r} was already written; ids must be unique")
            text = " ".join(words(item, header).split())
            self.f.write(f"{item.id}\t{text}\n")
            self.f.flush()
            self.ids.add(item.id)

    if output_target(output).kind == "stdout":
        w = Lines(std_stream("stdout", binary=False))
        for item in items:
            put(w, item)
    else:
        with atomic_write(output, "w") as f:
            w = Lines(f)
            for item in items:
                put(w, item)
            if report.ok == 0 and report.failed:
                raise FormatError(report.failed[0][1])
    report.outputs.append(output)
    return report


def _chain(first, rest):
    yield first
    yield from rest


@tracks_inputs
def detokenize(stream: str = "-", output: str = "-", codec=None, device: str = "auto",
               decoder: str | None = None, steps: int | None = None, seed: int = 0,
               guidance: float | None = None, solver: str = "euler", chunk_seconds: float = 30.0,
               fmt: str | None = None, on_item: Callable[[str], None] | None = None,
               llm=None, on_error: Callable[[str], None] | None = None,
               on_progress: Callable[[int, int | None], None] | None = None) -> BatchReport:
    """Decode a token stream back to audio.

    ``output``: ``-`` (stdout, WAV) or a file for a single-item stream; a
    directory (existing, or ending in ``/``) receives ``<id>.wav`` per item.
    ``decoder``: one of the codec's decoders (the built-in codec's: ``flow``,
    conditional flow matching, where ``steps``, ``seed``, ``guidance`` and
    ``solver`` apply, or ``mse``, the deterministic decoder; a codec with one
    decoder ignores these); ``None``: the codec's default (the first of its
    ``decoders``; ``guidance`` and ``steps`` likewise the codec's).  ``codec`` defaults to the built-in codec of the
    stream's architecture.  The stream must come from the same codec (checked
    by weights hash).

    Into a directory, items are independent: an item that is not valid (codes
    out of range, an id that cannot be a file name) is reported through
    ``on_error`` and skipped, the others are decoded, and the call ends with
    :class:`~soundtok.errors.PartialFailure` (exit 1).  Ids must be unique:
    from a stream file, a repeated id is refused before anything is written;
    from a pipe, the second item with an id is refused alone (the first one's
    file is never overwritten).
    ``on_progress(done, total)`` is called when decoding starts (``done`` 0) and
    after each item, decoded or failed; ``total`` is the number of items of a
    stream file (counted first), ``None`` for stdin.
    """
    import os

    from .audio_out import open_audio_writer, output_path_for
    from .registry import builtin_for_stream, load_codec

    if steps is not None and steps < 1:
        raise UsageError("--steps must be at least 1")
    to_dir = output not in ("-", "") and (os.path.isdir(output) or output.endswith(os.sep))
    reader = TokenReader(stream)
    try:
        if not to_dir:
            output_target(output)  # an unusable output fails before the codec loads
        model = load_codec(builtin_for_stream(reader.header) if codec is None else codec, device,
                           llm=llm)
        reader.check_codec(model.sha256, model.name)
        if decoder is not None and len(model.decoders) > 1 and decoder not in model.decoders:
            raise UsageError(f"unknown decoder {decoder!r}: use {' or '.join(model.decoders)}")
        if to_dir and stream != "-" and os.path.isfile(stream):
            _refuse_duplicate_ids(stream)
    except BaseException:
        reader.close()
        raise
    sr = model.sample_rate
    report = BatchReport()
    options = dict(decoder=decoder, steps=steps, seed=seed, guidance=guidance, solver=solver)

    def pieces(item: Item):
        for piece in model.decode_codes(item.codes, item.num_samples, chunk_seconds, **options):
            if not _all_finite(piece):  # written as silence otherwise: a damaged file, exit 0
                hint = " (is --guidance too far from 1?)" if guidance not in (None, 1, 1.0) else ""
                raise _NotFinite(f"item {item.id!r}: decoding gave NaN or infinite samples{hint}; "
                                 f"not written")
            yield piece

    total = count_items(stream) if on_progress else None
    if on_progress:
        on_progress(0, total)

    def decode_into(item: Item, dest: str, writer) -> None:
        for piece in pieces(item):
            writer.write(piece)
        report.ok += 1
        report.audio_seconds += item.num_samples / sr
        report.outputs.append(dest)
        if on_item:
            on_item(dest)
        if on_progress:
            on_progress(report.ok + len(failed), total)

    failed: list[str] = []
    held: list[str] = []  # failures before the first success: one line if nothing succeeds

    def bad(msg: str) -> None:
        failed.append(msg)
        held.append(msg)
        if report.ok:
            show_held()
        if on_progress:
            on_progress(report.ok + len(failed), total)

    def show_held() -> None:
        while held:
            msg = held.pop(0)
            if on_error:
                on_error(msg)

    with reader:
        items = iter(reader)
        if to_dir:
            reader.on_bad_item = bad
            written: dict[str, int] = {}
            try:
                for item in items:
                    n = reader.line_number
                    try:
                        dest = output_path_for(output, item.id, 2)
                    except UsageError as e:
                        bad(f"{reader.name}: line {n}: {e}")
                        continue
                    key = os.path.normcase(os.path.abspath(dest))
                    if key in written:
                        bad(f"{reader.name}: line {n}: item id {item.id!r} is also on line {written[key]}; "
                            f"not overwriting {dest}")
                        continue
                    written[key] = n
                    try:
                        with open_audio_writer(dest, sr, fmt) as w:
                            decode_into(item, dest, w)
                    except _NotFinite as e:  # this item alone fails
                        bad(f"{reader.name}: line {n}: {e}")
                        continue
                    show_held()
            except BaseException:
                if report.ok:
                    show_held()
                raise
        else:
            first = next(items, None)
            if first is not None:
                with open_audio_writer(output, sr, fmt) as w:  # appears only on success
                    decode_into(first, output, w)
                    if next(items, None) is not None:
                        raise UsageError(
                            "the stream holds more than one item; give a directory (e.g. "
                            f"{output if output != '-' else 'out'}/) to write one file per item")
    if failed:
        if report.ok == 0:
            if len(failed) == 1:
                raise FormatError(failed[0])
            show_held()
            raise FormatError(f"{reader.name}: no item could be decoded ({len(failed)} failed)")
        show_held()
        raise PartialFailure(f"{len(failed)} of {report.ok + len(failed)} items failed (listed above)")
    if report.ok == 0:
        raise FormatError(f"{reader.name}: the token stream holds no items")
    return report


class _NotFinite(FormatError):
    """A decoded item holds NaN or infinite samples (it fails alone, like an invalid item)."""


def _all_finite(piece) -> bool:
    import numpy as np

    if hasattr(piece, "detach"):
        import torch

        return bool(torch.isfinite(piece).all())
    return bool(np.isfinite(np.asarray(piece)).all())


def _refuse_duplicate_ids(stream: str) -> None:
    """UsageError naming the first id that two items of the stream file share (before any
    file is written); invalid lines are left for the decoding pass to report."""
    seen: dict[str, int] = {}
    with TokenReader(stream, on_bad_item=lambda msg: None) as r:
        try:
            for item in r:
                if item.id in seen:
                    raise UsageError(f"{stream}: item id {item.id!r} is on lines {seen[item.id]} and "
                                     f"{r.line_number}; ids must be unique to write one file per item")
                seen[item.id] = r.line_number
        except UsageError:
            raise
        except FormatError:  # a garbled or cut-off line: reported after the items before it are decoded
            return


__all__ = ["BatchReport", "SAMPLE_RATE", "load_audio", "tokenize", "merge", "detokenize", "SoundtokError"]
