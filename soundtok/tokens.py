"""Token stream format v1: the one place that reads and writes soundtok tokens.

A token stream is UTF-8 JSON Lines (one JSON object per line, every line ending
in ``\\n``).  Line 1 is the header; every further line is one item::

    {"soundtok": 1, "type": "header",
     "codec": {"name": "stc-16k", "sha256": "<64 hex>", ...extra keys},
     "sample_rate": 16000, "hop_lengths": [320, 640],
     "frame_rates": [50.0, 25.0], "codebook_sizes": [1024, 1024],
     "created_by": "soundtok 0.1.0", "extra": {}}
    {"type": "item", "id": "utt1", "num_samples": 16000, "duration": 1.0,
     "codes": [[...50 ints...], [...25 ints...]],
     "source": "a/utt1.wav", "text": "...", "label": "...", "meta": {}}

Codebook ``k`` has one token per ``hop_lengths[k]`` audio samples (codebooks may
run at different rates); its frame ``j`` covers samples starting at
``j * hop_lengths[k]``.  ``frame_rates`` (= sample_rate / hop, Hz) is written
for humans and checked by the reader.

Validation (reader and writer): ``len(codes) == len(hop_lengths)``;
``len(codes[k]) == ceil(num_samples / hop_lengths[k])``; every code is a JSON
integer (not a bool or float) with ``0 <= code < codebook_sizes[k]``;
``|duration - num_samples / sample_rate| <= 1e-3`` s.  Blank lines are skipped;
a last line without ``\\n`` is reported as truncation.  Readers ignore unknown
keys; new optional keys may appear in v1, any incompatible change bumps the
``"soundtok"`` version.  Errors are :class:`~soundtok.errors.FormatError` with
one line naming the stream and line number.

LLM text rendering: code ``c`` of codebook ``k`` is the token ``<a{k}_{c}>``;
an item becomes ``<audio>`` + its codes ordered by (start sample, codebook) +
``</audio>`` with no separators.  :func:`text_to_codes` inverts it exactly.
The full written spec is ``docs/token-format.md``.

The format is kept in one module on purpose: its reader, writer, validation and
text rendering are one definition that changes together, under one version number.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from soundtok.errors import FormatError, SoundtokError
from soundtok.fileio import (
    DISK_FULL_ERRNOS,
    LINE_MAX_BYTES,
    atomic_write,
    json_too_deep,
    note_input,
    output_target,
    read_line,
    std_stream,
    write_error,
)

if TYPE_CHECKING:
    import torch

__all__ = ["Header", "Item", "TokenWriter", "TokenReader", "open_token_writer", "code_token",
           "all_code_tokens", "codes_to_text", "text_to_codes", "count_items", "AUDIO_BEGIN", "AUDIO_END"]

FORMAT_VERSION = 1
DURATION_TOLERANCE = 1e-3  # seconds
AUDIO_BEGIN, AUDIO_END = "<audio>", "</audio>"


def _created_by() -> str:
    import soundtok

    return f"soundtok {getattr(soundtok, '__version__', '0.0.0')}"


def _short(x: Any, limit: int = 40) -> str:
    """``repr(x)`` cut to ``limit`` characters, for one-line error messages."""
    r = repr(x)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _is_int(x: Any) -> bool:
    return type(x) is int  # rejects bool, float, numpy/torch scalars


def _is_num(x: Any) -> bool:
    return type(x) in (int, float)


def _loads(s: str) -> Any:
    """``json.loads`` that also rejects NaN/Infinity (not JSON) with ValueError."""
    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not valid JSON")
    return json.loads(s, parse_constant=no_constants)


def _is_text(s: str) -> bool:
    """True for a string that can be written as UTF-8 (no lone surrogates)."""
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _dumps(obj: dict[str, Any]) -> str:
    """Compact one-line JSON that always encodes to valid UTF-8."""
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: escape them instead
            s = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return s


@dataclass
class Header:
    """Stream header.  ``hop_lengths[k]`` is audio samples (at ``sample_rate`` Hz)
    per token of codebook ``k``; ``codebook_sizes[k]`` is its vocabulary size.
    ``codec`` must hold ``name`` and ``sha256`` and may hold extra keys.
    Construction validates and raises FormatError."""

    codec: dict[str, Any]
    sample_rate: int
    hop_lengths: list[int]
    codebook_sizes: list[int]
    created_by: str = field(default_factory=_created_by)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("hop_lengths", "codebook_sizes"):
            v = getattr(self, key)
            if not isinstance(v, (list, tuple)) or not v or not all(_is_int(x) and x > 0
                                                                    for x in v):
                raise FormatError(f'header "{key}" must be a non-empty list of positive integers')
            setattr(self, key, list(v))
        if len(self.hop_lengths) != len(self.codebook_sizes):
            raise FormatError('header "hop_lengths" and "codebook_sizes" differ in length')
        c = self.codec
        if not isinstance(c, dict) or not all(isinstance(c.get(k), str) and c[k]
                                              for k in ("name", "sha256")):
            raise FormatError('header "codec" must be an object with string "name" and "sha256"')
        if not _is_int(self.sample_rate) or self.sample_rate <= 0:
            raise FormatError('header "sample_rate" must be a positive integer')
        if not isinstance(self.created_by, str) or not isinstance(self.extra, dict):
            raise FormatError('header "created_by" must be a string and "extra" an object')

    @property
    def num_codebooks(self) -> int:
        return len(self.hop_lengths)

    @property
    def frame_rates(self) -> list[float]:
        """Tokens per second of each codebook (Hz)."""
        return [self.sample_rate / h for h in self.hop_lengths]

    def num_frames(self, num_samples: int) -> list[int]:
        """Number of tokens each codebook has for ``num_samples`` samples."""
        return [-(-num_samples // h) for h in self.hop_lengths]

    def to_json(self) -> str:
        d = {"soundtok": FORMAT_VERSION, "type": "header", "codec": self.codec,
             "sample_rate": self.sample_rate, "hop_lengths": self.hop_lengths,
             "frame_rates": self.frame_rates, "codebook_sizes": self.codebook_sizes,
             "created_by": self.created_by}
        return _dumps({**d, "extra": self.extra} if self.extra else d)

    @classmethod
    def from_json(cls, data: str | dict[str, Any]) -> Header:
        """Parse and validate a header line (or its decoded object)."""
        d = _loads(data) if isinstance(data, str) else data
        if not isinstance(d, dict) or "soundtok" not in d:
            raise FormatError('not a soundtok token stream header (no "soundtok" key)')
        v = d["soundtok"]
        if not _is_int(v):
            raise FormatError(f"invalid token stream version {_short(v)}")
        if v != FORMAT_VERSION:
            hint = "; upgrade soundtok" if v > FORMAT_VERSION else ""
            raise FormatError(f"token stream version {v} is not supported by this "
                              f"soundtok (supports {FORMAT_VERSION}){hint}")
        if d.get("type") != "header":
            raise FormatError('header line must have "type": "header"')
        h = cls(codec=d.get("codec"), sample_rate=d.get("sample_rate"),  # type: ignore[arg-type]
                hop_lengths=d.get("hop_lengths"),  # type: ignore[arg-type]
                codebook_sizes=d.get("codebook_sizes"),  # type: ignore[arg-type]
                created_by=d.get("created_by", ""), extra=d.get("extra", {}))
        fr = d.get("frame_rates")
        try:
            ok = isinstance(fr, list) and len(fr) == h.num_codebooks and all(
                _is_num(a) and abs(a - b) <= 1e-6 * max(1.0, b) for a, b in zip(fr, h.frame_rates))
        except OverflowError:
            ok = False
        if not ok:
            raise FormatError(f'header "frame_rates" {_short(fr)} do not match '
                              f"sample_rate / hop_lengths = {_short(h.frame_rates)}")
        return h

    def check_item(self, item: Item) -> None:
        """Raise FormatError unless ``item`` is valid for this header."""
        name, codes, n = _short(item.id), item.codes, item.num_samples
        if not isinstance(item.id, str) or not item.id:
            raise FormatError(f'item {name}: "id" must be a non-empty string')
        if not _is_text(item.id):
            raise FormatError(f"item {name}: the id is not valid Unicode text (it holds a lone surrogate, e.g. "
                              f"from a file name that is not UTF-8); give the item another id")
        if not _is_int(n) or n < 0:
            raise FormatError(f'item {name}: "num_samples" must be a non-negative integer')
        if not isinstance(codes, list) or len(codes) != self.num_codebooks:
            got = len(codes) if isinstance(codes, list) else "no"
            raise FormatError(f"item {name}: has {got} codebooks, header has {self.num_codebooks}")
        for k, (row, hop, size) in enumerate(zip(codes, self.hop_lengths, self.codebook_sizes)):
            want = -(-n // hop)
            if not isinstance(row, list) or len(row) != want:
                got = len(row) if isinstance(row, list) else "no"
                raise FormatError(f"item {name}: codebook {k} has {got} codes, expected {want} "
                                  f"({n} samples / hop {hop}, rounded up)")
            ints = all(_is_int(c) for c in row)
            if not ints or (row and (min(row) < 0 or max(row) >= size)):
                j, c = next((j, c) for j, c in enumerate(row) if not (_is_int(c) and 0 <= c < size))
                why = f"out of range (codebook size {size})" if _is_int(c) else "is not an integer"
                raise FormatError(f"item {name}: codebook {k} position {j}: code {_short(c)} {why}")
        if item.duration is not None:
            try:
                want_s = n / self.sample_rate
                ok = _is_num(item.duration) and abs(item.duration - want_s) <= DURATION_TOLERANCE
            except OverflowError:
                want_s, ok = float("inf"), False
            if not ok:
                raise FormatError(f"item {name}: duration {_short(item.duration)} s does not match "
                                  f"{n} samples at {self.sample_rate} Hz ({want_s:.6g} s)")


@dataclass
class Item:
    """One tokenised audio clip.  ``codes[k]`` holds the tokens of codebook ``k``
    (Python ints); ``num_samples`` counts samples at the header's sample rate;
    ``duration`` is in seconds (filled in by the writer when ``None``)."""

    id: str
    num_samples: int
    codes: list[list[int]]
    duration: float | None = None
    source: str | None = None
    text: str | None = None
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def codes_tensor(self) -> torch.Tensor:
        """Codes as a ``torch.long`` tensor of shape (K, T); raises FormatError
        when codebooks have different lengths (multi-rate streams)."""
        if len({len(r) for r in self.codes}) > 1:
            raise FormatError(f"item {_short(self.id)}: codebooks have different lengths "
                              f"{[len(r) for r in self.codes]}; cannot stack into a (K, T) tensor")
        import torch

        return torch.tensor(self.codes, dtype=torch.long).reshape(len(self.codes), -1)

    def to_json(self, sample_rate: int | None = None) -> str:
        """One-line JSON; ``sample_rate`` (Hz) computes ``duration`` when it is None."""
        dur = self.duration
        if dur is None:
            if sample_rate is None:
                raise ValueError("Item.duration is None; pass sample_rate")
            dur = round(self.num_samples / sample_rate, 6)
        d: dict[str, Any] = {"type": "item", "id": self.id, "num_samples": self.num_samples,
                             "duration": dur, "codes": self.codes}
        d.update((k, v) for k in ("source", "text", "label") if (v := getattr(self, k)) is not None)
        if self.meta:
            d["meta"] = self.meta
        try:
            line = _dumps(d)
        except (TypeError, ValueError) as e:
            raise FormatError(f"item {_short(self.id)} cannot be written as JSON: {e}") from None
        except RecursionError:
            raise FormatError(f"item {_short(self.id)} cannot be written as JSON: its meta is nested "
                              f"too deeply") from None
        if len(line) >= LINE_MAX_BYTES:
            raise FormatError(f"item {_short(self.id)} is too long for one token stream line "
                              f"({len(line) >> 20} MiB; readers accept {LINE_MAX_BYTES >> 20} MiB): "
                              f"split its audio")
        return line

    @classmethod
    def from_json(cls, data: str | dict[str, Any], header: Header | None = None) -> Item:
        """Parse an item line (or its decoded object); with ``header`` also validate it."""
        d = _loads(data) if isinstance(data, str) else data
        if not isinstance(d, dict) or d.get("type") != "item":
            raise FormatError('expected an item object with "type": "item"')
        if not isinstance(d.get("id"), str) or not d["id"]:
            raise FormatError('item "id" must be a non-empty string')
        name = _short(d["id"])
        if not _is_num(d.get("duration")):
            raise FormatError(f'item {name}: "duration" must be a number')
        for key in ("source", "text", "label"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise FormatError(f'item {name}: "{key}" must be a string')
        if not isinstance(d.get("meta", {}), dict):
            raise FormatError(f'item {name}: "meta" must be an object')
        if json_too_deep(d.get("meta", {}), 32):
            raise FormatError(f'item {name}: "meta" is nested too deeply')
        item = cls(id=d["id"], num_samples=d.get("num_samples"),  # type: ignore[arg-type]
                   codes=d.get("codes"), duration=d["duration"],  # type: ignore[arg-type]
                   source=d.get("source"), text=d.get("text"),
                   label=d.get("label"), meta=d.get("meta", {}))
        if header is not None:
            header.check_item(item)
        return item


class TokenWriter:
    """Write a v1 stream to ``stream`` (binary or text): the header at once, then
    one validated, flushed line per :meth:`write`.

    An item that cannot be written -- invalid for the header, an id already
    written, metadata that is not JSON (NaN), an id that is not valid Unicode --
    raises FormatError before any byte of it is written, so the caller can
    report it and go on with the next item."""

    def __init__(self, stream: IO[Any], header: Header, name: str | None = None) -> None:
        self.stream, self.header, self.count = stream, header, 0
        self._ids: set[str] = set()
        if name is None:
            n = getattr(stream, "name", None)
            name = n if isinstance(n, str) and n != "<stdout>" else "stdout"
        self.name = name
        self._text = isinstance(stream, io.TextIOBase)
        self._emit(header.to_json())

    def _emit(self, line: str) -> None:
        try:
            self.stream.write(line + "\n" if self._text else (line + "\n").encode("utf-8"))
            self.stream.flush()
        except OSError as e:
            if e.errno not in DISK_FULL_ERRNOS:
                raise  # e.g. BrokenPipeError: the CLI exits quietly
            raise write_error(self.name, e) from None

    def write(self, item: Item) -> None:
        """Validate ``item`` against the header (FormatError) and write it as one line."""
        self.header.check_item(item)
        if item.id in self._ids:
            raise FormatError(f"item id {_short(item.id)} was already written to {self.name}; ids must be unique")
        line = item.to_json(self.header.sample_rate)
        self._emit(line)
        self._ids.add(item.id)
        self.count += 1


@contextlib.contextmanager
def open_token_writer(path: str | os.PathLike[str], header: Header) -> Iterator[TokenWriter]:
    """TokenWriter on stdout (``path == "-"``) or on a file written atomically
    (the file appears only if the ``with`` block succeeds; see
    :func:`soundtok.fileio.atomic_write` for devices, FIFOs and links)."""
    if output_target(path).kind == "stdout":
        yield TokenWriter(std_stream("stdout"), header)
        return
    with atomic_write(path, "wb") as f:
        yield TokenWriter(f, header, name=os.fspath(path))


class TokenReader:
    """Read a v1 stream from a path (``"-"`` = stdin) or an open stream.

    ``.header`` is read on first access; iterating yields validated
    :class:`Item` objects one line at a time (constant memory).  With
    ``expect_codec_sha256``/``expect_codec_name`` the header's codec must match.
    Every problem is a one-line FormatError naming the stream and line.

    With ``on_bad_item`` a complete item line that is not a valid item (codes
    out of range, wrong lengths, a bad id, ...) is reported as
    ``on_bad_item(message)`` and skipped, and reading goes on; without it, it
    stops the iteration.  A garbled or cut-off line always stops it.  Lines
    longer than :data:`~soundtok.fileio.LINE_MAX_BYTES` are refused (memory
    stays bounded whatever the input).
    """

    def __init__(self, source: str | os.PathLike[str] | IO[Any],
                 expect_codec_sha256: str | None = None,
                 expect_codec_name: str | None = None,
                 on_bad_item: Any = None) -> None:
        self._expect_sha, self._expect_name = expect_codec_sha256, expect_codec_name
        self.on_bad_item = on_bad_item
        self.bad_items = 0
        self._header: Header | None = None
        self._lineno, self._owned = 0, False
        path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        if path is None:
            self._f: IO[Any] = source  # type: ignore[assignment]
            name = getattr(source, "name", None)
            self.name = name if isinstance(name, str) else "<stream>"
        elif path == "-":
            self._f, self.name = std_stream("stdin"), "<stdin>"
        else:
            self.name = path
            if os.path.isdir(path):
                raise SoundtokError(f"{path} is a folder, not a token stream")
            try:
                self._f, self._owned = open(path, "rb"), True
            except FileNotFoundError:
                raise SoundtokError(f"no such file: {path}") from None
            except OSError as e:
                raise SoundtokError(f"cannot read {path}: {e.strerror or e}") from None
            note_input(self._f)

    def __enter__(self) -> TokenReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self._f.close()

    @property
    def line_number(self) -> int:
        """Line number of the record read last (1 = the header; 0 before reading)."""
        return self._lineno

    def _err(self, msg: str) -> FormatError:
        return FormatError(f"{self.name}: {msg}")

    def _readline(self) -> Any:
        try:
            return read_line(self._f, self.name, self._lineno + 1, FormatError)
        except UnicodeDecodeError:  # a text-mode stream was given to us
            raise self._err(f"line {self._lineno + 1} is not valid UTF-8") from None
        except OSError as e:
            raise SoundtokError(f"cannot read {self.name}: {e.strerror or e}") from None

    def _next_record(self) -> tuple[int, dict[str, Any]] | None:
        """Next non-blank line as (line number, JSON object), or None at EOF."""
        while raw := self._readline():
            self._lineno += 1
            n = self._lineno
            if n == 1 and isinstance(raw, bytes):
                self._refuse_audio(raw[:16])
            if not raw.endswith(b"\n" if isinstance(raw, bytes) else "\n"):
                raise self._err(f"truncated token stream: line {n} is incomplete")
            if isinstance(raw, bytes):
                try:
                    raw = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise self._err(f"line {n} is not valid UTF-8 (byte {e.start})") from None
            if n == 1:
                raw = raw.removeprefix("\ufeff")
            if not raw.strip():
                continue
            try:
                obj = _loads(raw)
            except (ValueError, RecursionError):
                if not self._readline():  # bad JSON on the last line: cut off mid-write
                    raise self._err(f"truncated token stream: line {n} is incomplete") from None
                raise self._err(f"line {n}: garbled line (invalid JSON)") from None
            if not isinstance(obj, dict):
                raise self._err(f"line {n}: garbled line (not a JSON object)")
            return n, obj
        return None

    def _peek(self) -> bytes:
        """The first bytes of a binary stream, not consumed (``b""`` when it cannot tell)."""
        peek = getattr(self._f, "peek", None)
        if peek is None or isinstance(self._f, io.TextIOBase):
            return b""
        try:
            head = peek(16)
        except (OSError, ValueError):
            return b""
        return head if isinstance(head, bytes) else b""

    def _refuse_audio(self, head: bytes) -> None:
        from soundtok.sniff import audio_format

        kind = audio_format(head)
        if kind:
            raise self._err(f"this is audio ({kind}), not a token stream "
                            f"(soundtok tokenize turns audio into one)")

    @property
    def header(self) -> Header:
        """The stream header (reads line 1 on first access)."""
        if self._header is None:
            self._refuse_audio(self._peek())
            rec = self._next_record()
            if rec is None:
                raise self._err("no header: empty token stream")
            n, obj = rec
            if "soundtok" not in obj:
                raise self._err(f"line {n}: first line is not a soundtok token stream header")
            try:
                h = Header.from_json(obj)
            except FormatError as e:
                raise self._err(f"line {n}: {e}") from None
            self._header = h
            self.check_codec(self._expect_sha, self._expect_name)
        return self._header

    def check_codec(self, sha256: str | None, name: str | None = None) -> None:
        """FormatError unless the header's codec has this ``sha256``/``name`` (``None``: any)."""
        h = self.header
        have_name, have_sha = h.codec["name"], h.codec["sha256"]
        if (sha256 not in (None, have_sha)) or (name not in (None, have_name)):
            want = f"{name or '?'!r} (sha256 {(sha256 or '?')[:12]})"
            raise self._err(f"codec mismatch: stream was made with {have_name!r} "
                            f"(sha256 {have_sha[:12]}) but the codec in use is {want}; "
                            f"it needs codec {have_name!r} with weights sha256 {have_sha[:12]} "
                            f"(pass its directory with --codec)")

    def __iter__(self) -> Iterator[Item]:
        header = self.header
        while (rec := self._next_record()) is not None:
            n, obj = rec
            if "soundtok" in obj or obj.get("type") == "header":
                raise self._err(f"line {n}: duplicate header")
            if obj.get("type") != "item":
                raise self._err(f"line {n}: unknown record type {_short(obj.get('type'))}")
            try:
                item = Item.from_json(obj, header)
            except FormatError as e:
                if self.on_bad_item is None:
                    raise self._err(f"line {n}: {e}") from None
                self.bad_items += 1
                self.on_bad_item(f"{self.name}: line {n}: {e}")
                continue
            yield item


def code_token(k: int, c: int) -> str:
    """The LLM token for code ``c`` of codebook ``k``: ``<a{k}_{c}>``."""
    return f"<a{k}_{c}>"


def all_code_tokens(header: Header) -> list[str]:
    """Every code token of the stream's vocabulary, codebook by codebook."""
    return [code_token(k, c) for k, size in enumerate(header.codebook_sizes) for c in range(size)]


def codes_to_text(item: Item, header: Header) -> str:
    """Render ``item`` as ``<audio>...</audio>``: tokens ordered by the sample
    where their frame starts (``j * hop_lengths[k]``), then by codebook."""
    header.check_item(item)
    events = sorted((j * hop, k, c) for k, (row, hop) in
                    enumerate(zip(item.codes, header.hop_lengths)) for j, c in enumerate(row))
    return AUDIO_BEGIN + "".join(code_token(k, c) for _, k, c in events) + AUDIO_END


# A code token, whitespace, or anything else (an unknown token).
_TEXT_RE = re.compile(r"<a(0|[1-9][0-9]{0,17})_(0|[1-9][0-9]{0,17})>|(\s+)|([^\s<]+|<[^\s<]*)")


def text_to_codes(text: str, header: Header, num_samples: int | None = None) -> list[list[int]]:
    """Inverse of :func:`codes_to_text`: codes per codebook, in order of appearance.

    Whitespace between tokens is ignored; the ``<audio>``/``</audio>`` markers
    are optional but must come as a pair around the codes.  With
    ``num_samples`` the codebook lengths are checked too.  Raises FormatError.
    """
    s = text.strip()
    begin, end = s.startswith(AUDIO_BEGIN), s.endswith(AUDIO_END)
    if begin != end:
        raise FormatError(f"audio text has {AUDIO_BEGIN if begin else AUDIO_END} "
                          f"without a matching {AUDIO_END if begin else AUDIO_BEGIN}")
    if begin:
        s = s[len(AUDIO_BEGIN): len(s) - len(AUDIO_END)]
    codes: list[list[int]] = [[] for _ in header.codebook_sizes]
    for m in _TEXT_RE.finditer(s):
        if m.group(4) is not None:
            raise FormatError(f"unknown token {_short(m.group(4))} in audio text")
        if m.group(3) is None:
            k, c = int(m.group(1)), int(m.group(2))
            if k >= header.num_codebooks or c >= header.codebook_sizes[k]:
                raise FormatError(f"token {m.group(0)} is outside the codec's vocabulary "
                                  f"(codebook sizes {header.codebook_sizes})")
            codes[k].append(c)
    if num_samples is not None:
        for k, (row, want) in enumerate(zip(codes, header.num_frames(num_samples))):
            if len(row) != want:
                raise FormatError(f"audio text has {len(row)} codes for codebook {k}, "
                                  f"expected {want} for {num_samples} samples")
    return codes


def count_items(source: str | os.PathLike[str] | IO[Any]) -> int | None:
    """How many items the token stream file ``source`` holds (its non-blank lines after the
    header), read quickly without checking them; ``None`` for ``-``, a pipe, an open stream or
    an unreadable file. For progress totals only: :class:`TokenReader` validates every line."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    path = os.fspath(source)
    if path == "-" or not os.path.isfile(path):
        return None
    n = 0
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    n += 1
    except OSError:
        return None
    return max(0, n - 1)
