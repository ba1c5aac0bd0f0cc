"""Library functions behind ``soundtok tokenize`` and ``soundtok detokenize``.

Both stream: items are read, processed and written one at a time, and long
audio is encoded/decoded in chunks (``chunk_seconds``), so memory does not grow
with the number or length of inputs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable

from .errors import AudioError, FormatError, SoundtokError, UsageError
from .tokens import Header, Item, TokenReader, open_token_writer


@dataclass
class BatchReport:
    """What a batch command did: items written, failures ``(name, message)``,
    seconds of audio processed and output paths."""

    ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)


def _codec(codec, device: str):
    from .codec import load_codec
    from .codec.model import SoundCodec

    if isinstance(codec, SoundCodec):
        return codec.to(device).eval()
    return load_codec(codec, device=device)


def codec_header(codec) -> Header:
    """The token-stream header describing ``codec``."""
    cfg = codec.cfg
    return Header(codec={"name": cfg.name, "sha256": codec.sha256, "arch": "soundtok-fm"},
                  sample_rate=cfg.sample_rate, hop_lengths=[cfg.token_hop],
                  codebook_sizes=[cfg.codebook_size])


def tokenize(inputs: list[str], output: str = "-", codec=None, device: str = "cpu",
             chunk_seconds: float = 30.0, on_error: Callable[[str], None] | None = None,
             on_item: Callable[[Item], None] | None = None) -> BatchReport:
    """Tokenize audio files, folders, globs, manifests or ``-`` (stdin) into one
    token stream at ``output`` (``-`` = stdout; a file appears atomically).

    Unreadable inputs are skipped and reported (``on_error`` is called with each
    message); if no input succeeds, nothing is written and an error is raised.
    """
    from .audio import iter_sources, load_audio

    model = _codec(codec, device)
    header = codec_header(model)
    sr, chunk = model.cfg.sample_rate, max(1, int(chunk_seconds * model.cfg.frame_rate))
    report, seen = BatchReport(), set()

    def fail(name: str, msg: str) -> None:
        report.failed.append((name, msg))
        if on_error:
            on_error(msg)

    def items():
        for spec in inputs:
            try:
                for src in iter_sources([spec]):
                    if src.id in seen:
                        raise UsageError(f"two inputs share the id {src.id!r}; give unique names")
                    seen.add(src.id)
                    try:
                        wav = load_audio(src.path if src.path is not None
                                         else io.BytesIO(src.data), sr)
                    except AudioError as e:
                        fail(src.path or src.id, str(e))
                        continue
                    codes = model.encode_long(wav, chunk_tokens=chunk)
                    report.audio_seconds += wav.shape[0] / sr
                    yield Item(id=src.id, num_samples=int(wav.shape[0]), codes=codes.tolist(),
                               source=src.path, text=src.text, label=src.label,
                               meta=dict(src.meta or {}))
            except AudioError as e:
                fail(spec, str(e))

    it = items()
    first = next(it, None)
    if first is None:
        if report.failed:
            raise AudioError(f"no input could be tokenized ({len(report.failed)} failed)")
        raise UsageError("no audio inputs given")
    with open_token_writer(output, header) as w:
        for item in _chain(first, it):
            w.write(item)
            report.ok += 1
            if on_item:
                on_item(item)
    report.outputs.append(output)
    return report


def _chain(first, rest):
    yield first
    yield from rest


def detokenize(stream: str = "-", output: str = "-", codec=None, device: str = "cpu",
               decoder: str = "flow", steps: int | None = None, seed: int = 0,
               guidance: float = 1.0, solver: str = "euler", chunk_seconds: float = 30.0,
               fmt: str | None = None, on_item: Callable[[str], None] | None = None) -> BatchReport:
    """Decode a token stream back to audio.

    ``output``: ``-`` (stdout, WAV) or a file for a single-item stream; a
    directory (existing, or ending in ``/``) receives ``<id>.wav`` per item.
    ``decoder``: ``flow`` (conditional flow matching; ``steps``, ``seed``,
    ``guidance``, ``solver`` apply) or ``mse`` (deterministic baseline).
    The stream must come from the same codec (checked by weights hash).
    """
    import os

    from .audio import open_audio_writer, output_path_for

    if decoder not in ("flow", "mse"):
        raise UsageError(f"unknown decoder {decoder!r}: use flow or mse")
    if steps is not None and steps < 1:
        raise UsageError("--steps must be at least 1")
    model = _codec(codec, device)
    reader = TokenReader(stream, expect_codec_sha256=model.sha256,
                         expect_codec_name=model.cfg.name)
    _ = reader.header
    chunk = max(1, int(chunk_seconds * model.cfg.frame_rate))
    sr = model.cfg.sample_rate
    to_dir = output != "-" and (os.path.isdir(output) or output.endswith(os.sep))
    report = BatchReport()

    def decode_into(item: Item, dest: str, writer) -> None:
        for piece in model.iter_decode_long(item.codes_tensor(), num_samples=item.num_samples,
                                            chunk_tokens=chunk, decoder=decoder, steps=steps,
                                            seed=seed, guidance=guidance, solver=solver):
            writer.write(piece)
        report.ok += 1
        report.audio_seconds += item.num_samples / sr
        report.outputs.append(dest)
        if on_item:
            on_item(dest)

    with reader:
        items = iter(reader)
        if to_dir:
            for item in items:
                dest = output_path_for(output, item.id, 2)
                with open_audio_writer(dest, sr, fmt) as w:
                    decode_into(item, dest, w)
        else:
            first = next(items, None)
            if first is not None:
                with open_audio_writer(output, sr, fmt) as w:  # appears only on success
                    decode_into(first, output, w)
                    if next(items, None) is not None:
                        raise UsageError(
                            "the stream holds more than one item; give a directory (e.g. "
                            f"{output if output != '-' else 'out'}/) to write one file per item")
    if report.ok == 0:
        raise FormatError(f"{reader.name}: the token stream holds no items")
    return report


__all__ = ["BatchReport", "codec_header", "tokenize", "detokenize", "SoundtokError"]
