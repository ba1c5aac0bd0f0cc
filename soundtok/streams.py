"""Token stream files at scale: resumable writing and merging (beside the format, :mod:`.tokens`).

* :class:`ResumableWriter` appends items to a token stream file, one flushed
  line each.  Opening an existing file checks its header against the codec
  and shard, validates every complete line, repairs a cut-off last line (the
  trace of a kill or a full disk) by truncating it, and returns the ids already
  there, which the run then skips.
* :func:`merge_streams` concatenates shard outputs after checking that their
  headers agree, that item ids are unique and, for files written with
  ``--shard``, that every shard ``0 .. N-1`` is there exactly once.
* :class:`BatchReport` is what a batch command did (items written, failures,
  seconds of audio, outputs).

torch is not imported here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from .errors import FormatError, SoundtokError, UsageError
from .fileio import output_target, signals_deferred, write_error
from .tokens import Header, Item, TokenReader, open_token_writer

__all__ = ["BatchReport", "ResumableWriter", "merge_streams"]


@dataclass
class BatchReport:
    """What a batch command did: items written, failures ``(name, message)``,
    seconds of audio processed and output paths."""

    ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    skipped: int = 0  # items a resumed run found already done


# --------------------------------------------------------------------------- resumable output

def _same_stream_kind(a: Header, b: Header, ignore_extra: tuple[str, ...] = ()) -> str | None:
    """What differs between two headers (codec, rates, sizes, extra), or None."""
    for key in ("codec", "sample_rate", "hop_lengths", "codebook_sizes"):
        if getattr(a, key) != getattr(b, key):
            return f"{key} {getattr(a, key)!r} vs {getattr(b, key)!r}"
    ea = {k: v for k, v in a.extra.items() if k not in ignore_extra}
    eb = {k: v for k, v in b.extra.items() if k not in ignore_extra}
    if ea != eb:
        return f"extra {ea!r} vs {eb!r}"
    return None


class ResumableWriter:
    """Append items to the token stream file ``path``, one flushed line per item.

    On :meth:`open`, an existing non-empty file must be a token stream whose
    header equals ``header`` (same codec, rates, sizes and ``extra``, e.g. the
    shard); its complete lines are validated and their ids put in
    :attr:`done`; a last line without its newline (cut off by a kill or a
    full disk) is truncated away (``on_info`` says so).  Anything else -- a
    file that is not a token stream, a damaged complete line -- is refused.  A missing file is
    created when the first item is written (or by :meth:`finish`).  The file is
    locked (``flock``) while open, so two jobs cannot append to it at once.
    Ctrl-C, SIGTERM and SIGHUP never split a line; ``kill -9`` can cut the
    last one, which the next :meth:`open` repairs.  The output must be a
    regular file (a symbolic link is followed); one of the run's inputs is
    refused.  If the file is replaced or removed while the run writes it (by
    ``mv``, ``rm``, another program), the next write stops the run with an
    error instead of appending to a file nobody can see any more.
    """

    def __init__(self, path: str, header: Header, on_info: Callable[[str], None] | None = None,
                 fsync_every: float = 10.0) -> None:
        self.path, self.header, self.on_info = os.fspath(path), header, on_info
        self.done: set[str] = set()
        self.count = 0  # items written by this writer
        self._f: IO[bytes] | None = None
        self._real = self.path  # the file written (a symbolic link's target)
        self._ident: tuple[int, int] | None = None
        self._created = False
        self._fsync_every, self._last_sync = fsync_every, 0.0

    # -- opening and checking
    def open(self) -> ResumableWriter:
        target = output_target(self.path)
        if target.kind != "file":
            raise UsageError(f"--resume writes a regular file, not {self.path}")
        self._real = p = target.path
        try:
            f = open(p, "r+b") if os.path.exists(p) else None
        except OSError as e:
            raise SoundtokError(f"cannot open {p}: {e.strerror or e}") from None
        if f is None:
            folder = os.path.dirname(os.path.abspath(p))
            if not os.path.isdir(folder):
                raise SoundtokError(f"cannot write {p}: no such folder {folder}")
            return self
        self._f = f
        self._lock()
        self._ident = self._identity()
        try:
            good_end = self._scan()
            size = os.fstat(f.fileno()).st_size
            if good_end < size:
                f.truncate(good_end)
                if self.on_info:
                    self.on_info(f"{p}: removed an incomplete last line ({size - good_end} bytes, "
                                 f"from an interrupted run)")
            f.seek(good_end)
            if good_end == 0:
                self._write_line(self.header.to_json())
        except BaseException:
            self.close()
            raise
        return self

    def _identity(self) -> tuple[int, int]:
        st = os.fstat(self._f.fileno())
        return st.st_dev, st.st_ino

    def _check_same_file(self) -> None:
        """SoundtokError if the path no longer names the file this writer appends to."""
        try:
            st = os.stat(self._real)
            now = (st.st_dev, st.st_ino)
        except OSError:
            now = None
        if now != self._ident:
            raise SoundtokError(f"{self.path} was {'removed' if now is None else 'replaced'} by another "
                                f"process while this run was writing it; stopping (run again with --resume)")

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking
            return
        try:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SoundtokError(f"{self.path} is being written by another process "
                                f"(two jobs with the same -o?)") from None

    def _scan(self) -> int:
        """Validate the existing file; return the offset after its last whole line.

        Only a last line without its newline -- what a kill or a full disk
        leaves -- is repaired.  A file that is not a token stream, another
        codec's or shard's stream, or a damaged complete line is refused, so
        that nothing already written is ever lost."""
        f, name = self._f, self.path
        f.seek(0)
        ours = (self.header.to_json() + "\n").encode("utf-8")
        offset, lineno, header = 0, 0, None
        while raw := f.readline():
            lineno += 1
            start, offset = offset, offset + len(raw)
            if not raw.endswith(b"\n"):  # cut off mid-line
                if header is None and not ours.startswith(raw.removeprefix(b"\xef\xbb\xbf")):
                    raise self._not_ours()
                return start
            try:
                text = raw.decode("utf-8")
                if lineno == 1:
                    text = text.removeprefix("\ufeff")
                if not text.strip():
                    continue
                if header is None:
                    header = Header.from_json(text)
                    diff = _same_stream_kind(header, self.header)
                    if diff:
                        raise UsageError(f"cannot resume {name}: it was written with other settings "
                                         f"({diff}); choose another -o or remove it")
                    continue
                item = Item.from_json(text, header)
            except (ValueError, UnicodeDecodeError, FormatError) as e:
                if header is None:
                    raise self._not_ours() from None
                reason = str(e) if isinstance(e, FormatError) else "garbled line (invalid JSON)"
                raise FormatError(f"{name}: line {lineno}: {reason}; cannot resume a damaged "
                                  f"file (fix or remove it)") from None
            if item.id in self.done:
                raise FormatError(f"{name}: line {lineno}: item id {item.id!r} occurs twice; cannot "
                                  f"resume a damaged file (fix or remove it)")
            self.done.add(item.id)
        return offset if header is not None else 0  # only blank lines: start afresh

    def _not_ours(self) -> UsageError:
        return UsageError(f"cannot resume {self.path}: it is not a soundtok token stream "
                          f"(refusing to overwrite it)")

    # -- writing
    def _ensure_file(self) -> None:
        if self._f is not None:
            return
        try:
            self._f = open(self._real, "xb")
        except FileExistsError:
            raise SoundtokError(f"{self.path} appeared while this run was starting; "
                                f"another job is writing it") from None
        except OSError as e:
            raise SoundtokError(f"cannot write {self.path}: {e.strerror or e}") from None
        self._created = True
        self._lock()
        self._ident = self._identity()
        self._write_line(self.header.to_json())

    def _write_line(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        f = self._f
        with signals_deferred():
            try:
                f.write(data)
                f.flush()
            except OSError as e:
                raise write_error(self.path, e) from None
        import time

        now = time.monotonic()
        if now - self._last_sync > self._fsync_every:
            self._last_sync = now
            self._sync()

    def _sync(self) -> None:
        try:
            os.fsync(self._f.fileno())
        except OSError as e:
            raise write_error(self.path, e) from None

    def write(self, item: Item) -> None:
        """Validate ``item`` against the header and append it as one line."""
        self.header.check_item(item)
        if item.id in self.done:
            raise FormatError(f"item id {item.id!r} is already in {self.path}; ids must be unique")
        line = item.to_json(self.header.sample_rate)
        self._ensure_file()
        self._check_same_file()
        self._write_line(line)
        self.done.add(item.id)
        self.count += 1

    def finish(self) -> None:
        """Make sure the file exists (a header-only stream if nothing was written)."""
        self._ensure_file()
        self._check_same_file()
        self._sync()

    def close(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()

    def discard_if_empty(self) -> None:
        """Remove the file if this writer created it and wrote no item."""
        if self._created and self.count == 0:
            self.close()
            with contextlib.suppress(OSError):
                os.unlink(self._real)

    def __enter__(self) -> ResumableWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- merging

def merge_streams(inputs: list[str], output: str = "-",
                  on_info: Callable[[str], None] | None = None) -> BatchReport:
    """Concatenate the token stream files ``inputs`` (in the order given) into
    ``output`` (``-`` = stdout; a file appears atomically, and only if the
    whole merge succeeds).

    Every header must describe the same codec, rates and sizes (``created_by``
    may differ); item ids must be unique across all inputs; every line is
    validated.  Streams written with ``--shard`` must be the shards
    ``0 .. N-1`` of one split, each exactly once.  The merged header is the
    first input's without the shard.
    """
    if not inputs:
        raise UsageError("nothing to merge: give the token stream files to merge")
    if "-" in inputs:
        raise UsageError("--merge reads files, not - (stdin)")
    headers = []
    for name in inputs:
        with TokenReader(name) as r:
            headers.append(r.header)
    ref, first = headers[0], inputs[0]
    shards: dict[int, str] = {}
    split = None
    for name, h in zip(inputs, headers):
        diff = _same_stream_kind(ref, h, ignore_extra=("shard",))
        if diff:
            raise FormatError(f"cannot merge {name} with {first}: the headers differ ({diff})")
        sh = h.extra.get("shard")
        if (sh is None) != (ref.extra.get("shard") is None):
            raise FormatError(f"cannot merge {name} with {first}: only one of them is a --shard output")
        if sh is None:
            continue
        if not (isinstance(sh, dict) and all(type(sh.get(k)) is int for k in ("index", "count"))
                and 0 <= sh["index"] < sh["count"]):
            raise FormatError(f"{name}: header \"extra.shard\" is malformed: {sh!r}")
        this = (sh["count"], sh.get("total_items"))
        split = split or this
        if this != split:
            raise FormatError(f"{name} is shard {sh['index']}/{sh['count']} of {this[1]} items, "
                              f"another split than {first} ({split[0]} shards of {split[1]} items)")
        if sh["index"] in shards:
            raise FormatError(f"{name} and {shards[sh['index']]} are both shard {sh['index']}/{split[0]}")
        shards[sh["index"]] = name
    if split is not None:
        missing = sorted(set(range(split[0])) - set(shards))
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise FormatError(f"shard(s) {shown} of {split[0]} missing: merge all of them "
                              f"(to join a subset, concatenate with jq)")
    out_header = Header(codec=ref.codec, sample_rate=ref.sample_rate, hop_lengths=ref.hop_lengths,
                        codebook_sizes=ref.codebook_sizes,
                        extra={k: v for k, v in ref.extra.items() if k != "shard"})
    report, seen = BatchReport(), {}
    with open_token_writer(output, out_header) as w:
        for name in inputs:
            with TokenReader(name) as r:
                for item in r:
                    if item.id in seen:
                        raise FormatError(f"{name}: line {r.line_number}: item id {item.id!r} is "
                                          f"also in {seen[item.id]}; ids must be unique")
                    seen[item.id] = name
                    w.write(item)
                    report.ok += 1
                    report.audio_seconds += item.num_samples / out_header.sample_rate
    report.outputs.append(output)
    if on_info:
        of = f" of {split[1]}" if split and split[1] is not None else ""
        on_info(f"merged {report.ok}{of} items from {len(inputs)} stream(s)")
    return report
