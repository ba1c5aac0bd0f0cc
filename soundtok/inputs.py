"""Inputs: every way of naming audio, expanded in one place.

A command's audio inputs are files, folders (searched recursively, sorted;
ids are relative paths without extension, e.g. ``spk1/utt3``), glob patterns
(sorted matches, each expanded like an input), ``.jsonl``/``.csv`` manifests
(``path`` plus optional ``id``, ``text``, ``label``; other keys go to
``meta``; relative paths are relative to the manifest) and ``-`` for audio
bytes on stdin.  :func:`plan_sources` expands them into a
:class:`SourcePlan` of :class:`AudioSource` records:

* **one duplicate-id check**: ids must be unique across all inputs; a 64-bit
  hash per id is kept in memory, a second pass confirms a clash and names
  both places (:func:`check_unique_ids` for lists built elsewhere);
* **one stdin policy**: ``-`` is spooled to a temporary file of bounded size
  (seekable, so it can be decoded as a stream; id ``stdin``), its first bytes
  checked to be audio (:func:`soundtok.audio.spool_audio`);
* **shards** (``--shard I/N``, :func:`parse_shard`): the split is round-robin
  over the expanded inputs: item ``k`` (0-based, in input order: manifest
  lines in file order with blank lines skipped, folders and globs sorted)
  belongs to shard ``k mod N``.  It depends only on the inputs, so N
  independent jobs (GNU parallel, a SLURM array, one per GPU) cover every item
  exactly once;
* manifests that are regular files are read a second time, lazily, when the
  plan is iterated, so memory does not grow with the manifest.

Every problem is one line: :class:`~soundtok.errors.AudioError` for an input
that matches nothing, :class:`~soundtok.errors.UsageError` for a bad manifest
or a duplicate id.  Audio files are not opened here; torch is not imported.
"""

from __future__ import annotations

import csv
import os
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from glob import glob
from typing import IO, Any

from .errors import AudioError, UsageError
from .fileio import iter_jsonl, note_input, std_stream

__all__ = ["AUDIO_EXTENSIONS", "MANIFEST_EXTENSIONS", "AudioSource", "Shard", "parse_shard",
           "SourcePlan", "plan_sources", "iter_manifest", "iter_manifest_rows", "manifest_path",
           "check_unique_ids", "is_manifest_name"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".aiff", ".aif")
MANIFEST_EXTENSIONS = (".jsonl", ".csv")


# --------------------------------------------------------------------------- sources

@dataclass
class AudioSource:
    """One audio input: a file (``path``) or stdin spooled to a seekable
    temporary file (``stream``).

    ``id`` names the item in the token stream; ``text``, ``label`` and ``meta``
    come from manifests and are copied into the stream.
    """

    id: str
    path: str | None = None
    text: str | None = None
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    stream: IO[bytes] | None = None

    @property
    def where(self) -> str:
        """The input as messages name it: its path, or ``<stdin>``."""
        return self.path if self.path is not None else "<stdin>"

    def open(self) -> str | IO[bytes]:
        """What :func:`~soundtok.audio.load_audio` / :class:`~soundtok.audio.AudioStream`
        read: the path, or the spooled stream rewound to its start."""
        if self.path is not None:
            return self.path
        self.stream.seek(0)
        return self.stream


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _is_audio_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def _scan_dir(root: str) -> list[AudioSource]:
    """Audio files under ``root``, recursively, sorted by relative path; hidden
    files and folders (names starting with ``.``) are skipped."""
    rels = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel_folder = os.path.relpath(folder, root)
        rels += [os.path.normpath(os.path.join(rel_folder, f)) for f in files if _is_audio_name(f)]
    if not rels:
        raise AudioError(f"folder {root} contains no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    rels.sort(key=lambda r: r.split(os.sep))
    return [AudioSource(id=os.path.splitext(r)[0].replace(os.sep, "/"), path=os.path.join(root, r))
            for r in rels]


def _manifest_source(manifest: str, where: str, row: dict[str, Any]) -> AudioSource:
    path = manifest_path(manifest, where, row)
    fields: dict[str, str | None] = {}
    for key in ("id", "text", "label"):
        value = row.pop(key, None)
        if isinstance(value, (dict, list)):
            raise UsageError(f"manifest {manifest} {where}: \"{key}\" must be a plain value")
        fields[key] = None if value is None or value == "" else str(value)
    return AudioSource(id=fields["id"] or _stem(path), path=path, text=fields["text"],
                       label=fields["label"], meta=row)


def iter_manifest_rows(manifest: str, key: str | None = "path"
                       ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Stream the rows of a ``.jsonl``/``.csv`` manifest as ``(where, row)``
    (``where`` is e.g. ``"line 3"``), one line at a time, so that memory does not
    grow with the manifest; every row must have ``key`` (unless it is None).  UsageError for a
    malformed line or an unreadable manifest (raised when that line is reached)."""
    try:
        with open(manifest, encoding="utf-8-sig", newline="") as f:
            note_input(f)
            if manifest.lower().endswith(".csv"):
                reader = csv.DictReader(f)
                if key is not None and key not in (reader.fieldnames or []):
                    raise UsageError(f"manifest {manifest} has no \"{key}\" column "
                                     f"(columns: {', '.join(reader.fieldnames or []) or 'none'})")
                for row in reader:
                    clean = {k: v for k, v in row.items() if k is not None and v is not None}
                    yield f"line {reader.line_num}", clean
            else:
                for n, obj in iter_jsonl(f, f"manifest {manifest}", UsageError, constants=True):
                    if n == 1 and isinstance(obj, dict) and "soundtok" in obj and key not in obj:
                        raise UsageError(f"{manifest}: this is a token stream, not audio or a "
                                         f"manifest (soundtok detokenize turns it into audio)")
                    if not isinstance(obj, dict) or (key is not None and key not in obj):
                        with_key = f" with a \"{key}\" key" if key is not None else ""
                        raise UsageError(f"manifest {manifest} line {n}: expected a JSON object"
                                         f"{with_key}")
                    yield f"line {n}", obj
    except UnicodeDecodeError:
        raise UsageError(f"manifest {manifest} is not valid UTF-8") from None
    except (OSError, csv.Error) as e:
        raise UsageError(f"cannot read manifest {manifest}: {getattr(e, 'strerror', None) or e}") from e


def iter_manifest(manifest: str) -> Iterator[tuple[str, AudioSource]]:
    """The sources of a manifest as ``(where, source)``, lazily (see
    :func:`iter_manifest_rows`)."""
    for where, row in iter_manifest_rows(manifest):
        yield where, _manifest_source(manifest, where, row)


def manifest_path(manifest: str, where: str, row: dict[str, Any], key: str = "path") -> str:
    """``row.pop(key)``, a non-empty string, relative to the manifest's folder unless absolute."""
    path = row.pop(key, None)
    if not isinstance(path, str) or not path:
        raise UsageError(f"manifest {manifest} {where}: \"{key}\" must be a non-empty string")
    return path if os.path.isabs(path) else os.path.join(os.path.dirname(manifest), path)


def _read_manifest(manifest: str) -> list[AudioSource]:
    """Sources listed in a ``.jsonl`` or ``.csv`` manifest (one per line/row)."""
    out = [src for _, src in iter_manifest(manifest)]
    if not out:
        raise AudioError(f"manifest {manifest} lists no audio files")
    return out


def _expand(spec: str) -> list[AudioSource]:
    if os.path.isdir(spec):
        return _scan_dir(spec)
    if os.path.exists(spec):  # a file, or a pipe such as <(...)
        if spec.lower().endswith(MANIFEST_EXTENSIONS):
            return _read_manifest(spec)
        return [AudioSource(id=_stem(spec), path=spec)]
    if any(c in spec for c in "*?["):
        matches = sorted(glob(spec, recursive=True))
        if not matches:
            raise AudioError(f"glob {spec} matched no files")
        return [s for m in matches for s in _expand(m)]
    raise AudioError(f"no such file: {spec}")


# --------------------------------------------------------------------------- shards

@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def takes(self, k: int) -> bool:
        """True when item ``k`` (0-based, input order) belongs to this shard."""
        return k % self.count == self.index


def parse_shard(spec: str | tuple[int, int] | Shard | None) -> Shard | None:
    """``"I/N"`` (0 <= I < N) -> :class:`Shard`; None stays None; UsageError otherwise."""
    if spec is None or isinstance(spec, Shard):
        return spec
    if isinstance(spec, tuple):
        i, n = spec
    else:
        parts = str(spec).strip().split("/")
        try:
            i, n = (int(p) for p in parts) if len(parts) == 2 else (None, None)
        except ValueError:
            i = n = None
        if i is None:
            raise UsageError(f"--shard {spec!r}: expected I/N, e.g. 0/8 (shards are numbered 0 .. N-1)")
    if not (isinstance(n, int) and isinstance(i, int) and n >= 1 and 0 <= i < n):
        raise UsageError(f"--shard {i}/{n}: I must be in 0 .. N-1 and N at least 1")
    return Shard(i, n)


# --------------------------------------------------------------------------- planning

@dataclass
class _Entry:
    spec: str
    sources: list[AudioSource] | None  # None: a manifest file read lazily
    count: int


class SourcePlan:
    """The inputs of a run: ``total`` items in all, iterated (lazily) as this
    shard's ``(k, source)`` pairs in input order."""

    def __init__(self, entries: list[_Entry], shard: Shard | None) -> None:
        self._entries, self.shard = entries, shard
        self.total = sum(e.count for e in entries)
        self.selected = self.total if shard is None else len(
            range(shard.index, self.total, shard.count))

    def __iter__(self) -> Iterator[tuple[int, AudioSource]]:
        k = 0
        for e in self._entries:
            if e.sources is not None:
                for src in e.sources:
                    if self.shard is None or self.shard.takes(k):
                        if src.path is not None:
                            note_input(src.path)  # (here, in this process: workers decode it)
                        yield k, src
                    k += 1
                continue
            seen = 0
            for _, src in iter_manifest(e.spec):
                if seen == e.count:
                    break
                if self.shard is None or self.shard.takes(k):
                    note_input(src.path)
                    yield k, src
                k += 1
                seen += 1
            if seen != e.count:
                raise UsageError(f"manifest {e.spec} changed while it was being read "
                                 f"({e.count} lines at first, {seen} now)")

    def sources(self) -> Iterator[AudioSource]:
        """This shard's sources, in input order."""
        return (src for _, src in self)

    def _places(self) -> Iterator[tuple[str, str]]:
        """``(id, where)`` of every item (all shards), for messages."""
        for e in self._entries:
            if e.sources is None:
                yield from ((s.id, f"{e.spec} {w}") for w, s in iter_manifest(e.spec))
            else:
                yield from ((s.id, s.where) for s in e.sources)


def is_manifest_name(spec: str) -> bool:
    """True for a name ending in a manifest extension (``.jsonl``, ``.csv``)."""
    return spec.lower().endswith(MANIFEST_EXTENSIONS)


def _is_manifest(spec: str, forced: bool) -> bool:
    return forced or is_manifest_name(spec)


def plan_sources(specs: list[str], manifests: list[str] = (), shard: Shard | None = None,
                 fail: Callable[[str, str], None] | None = None,
                 stdin: IO[bytes] | None = None) -> SourcePlan:
    """Expand ``specs`` (files, folders, globs, manifests, ``-``) and ``manifests``
    (read as manifests whatever their extension) into a :class:`SourcePlan`.

    A spec that matches nothing is an AudioError -- or, with ``fail``, is
    reported through ``fail(spec, message)`` and skipped; with a ``shard`` it
    is always an error, because the split must be the same in every shard's
    job.  Duplicate ids are a UsageError naming both places.  ``-`` (audio on
    ``stdin``, default the process's stdin) is spooled to a temporary file
    (bounded: see :func:`soundtok.audio.spool_audio`) so that it can be decoded
    as a stream.
    """
    entries: list[_Entry] = []
    hashes = array("q")
    all_specs = [(s, False) for s in specs] + [(m, True) for m in manifests]
    for spec, forced in all_specs:
        try:
            if spec == "-":
                from .audio import spool_audio

                spooled = spool_audio(stdin if stdin is not None else std_stream("stdin"), "<stdin>")
                found = [AudioSource(id="stdin", stream=spooled)]
            elif _is_manifest(spec, forced) and os.path.isfile(spec):
                n = 0
                for _, src in iter_manifest(spec):
                    hashes.append(hash(src.id))
                    n += 1
                if n == 0:
                    raise AudioError(f"manifest {spec} lists no audio files")
                entries.append(_Entry(spec, None, n))
                continue
            elif forced:
                if not os.path.exists(spec):
                    raise AudioError(f"no such file: {spec}")
                found = [src for _, src in iter_manifest(spec)]  # a pipe: read it once
                if not found:
                    raise AudioError(f"manifest {spec} lists no audio files")
            else:
                found = _expand(spec)
        except AudioError as e:
            if shard is not None:
                raise AudioError(f"{e} (with --shard every input must be readable, so that "
                                 f"all shards split the same list)") from None
            if fail is None:
                raise
            fail(spec, str(e))
            continue
        hashes.extend(hash(s.id) for s in found)
        entries.append(_Entry(spec, found, len(found)))
    plan = SourcePlan(entries, shard)
    _check_unique(plan, hashes)
    return plan


def _check_unique(plan: SourcePlan, hashes: array) -> None:
    """UsageError if two items share an id.  Hashes find candidates cheaply; a
    second pass over the inputs confirms them (64-bit hashes can collide)."""
    if len(hashes) < 2:
        return
    import numpy as np

    h = np.sort(np.frombuffer(hashes, dtype=np.int64))
    dup = set(h[1:][h[1:] == h[:-1]].tolist())
    if dup:
        check_unique_ids((i, w) for i, w in plan._places() if hash(i) in dup)


def check_unique_ids(items: Iterable[tuple[str, str]]) -> None:
    """UsageError naming both places if two of the ``(id, where)`` pairs share an id."""
    where: dict[str, str] = {}
    for item_id, place in items:
        if item_id in where:
            raise UsageError(f"duplicate item id {item_id!r} ({where[item_id]} and {place}); "
                             f"ids must be unique (rename a file or set \"id\" in a manifest)")
        where[item_id] = place
