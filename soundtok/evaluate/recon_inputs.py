"""The clips ``evaluate recon`` scores: references alone, or (reference, decoded) pairs.

References come from files, folders, globs or manifests (:mod:`soundtok.inputs`).
Pairs come from a folder of decoded files matched to the references
(:func:`collect_clips` with ``deg``), or from a manifest with ``ref`` and ``deg``
columns.  :func:`load_clip_audio` reads either side, resampled, for scoring.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from ..errors import AudioError


@dataclass
class Clip:
    """One clip to score: its id, reference, decoded file (pairs mode), manifest fields
    and where it was listed (for messages)."""

    id: str
    ref: str | IO[bytes]  # a path, or stdin spooled (see soundtok.inputs)
    deg: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # manifest text, label, other keys
    where: str = ""

    def text(self, name: str | None) -> str | None:
        """The manifest field ``name`` as a reference transcript, or None."""
        v = self.fields.get(name) if name else None
        return v if isinstance(v, str) and v.strip() else None


def _fields(src) -> dict[str, Any]:
    return {**(src.meta or {}), **({"text": src.text} if src.text is not None else {}),
            **({"label": src.label} if src.label is not None else {})}


def _read_pair_manifest(path: str) -> list[Clip] | None:
    """Pairs from a manifest with ``ref`` and ``deg`` columns; None when the
    manifest has no ``ref`` column (then it is an ordinary audio manifest)."""
    from ..inputs import check_unique_ids, iter_manifest_rows, manifest_path

    rows = iter_manifest_rows(path, key=None)
    first = next(rows, None)
    if first is None or "ref" not in first[1]:
        return None
    out = []
    for where, row in itertools.chain([first], rows):
        ref, deg = (manifest_path(path, where, row, key) for key in ("ref", "deg"))
        cid = str(row.get("id") or os.path.splitext(os.path.basename(ref))[0])
        out.append(Clip(cid, ref, deg, {k: v for k, v in row.items() if k != "id"},
                         f"{path} {where}"))
    check_unique_ids((c.id, c.where) for c in out)
    return out


def _match_folders(refs: list, degs: list, on_error) -> tuple[list[Clip], list[tuple[str, str]]]:
    """Match decoded files to references by id (relative path without
    extension), then by unique file stem."""
    by_id = {d.id: d for d in degs}
    stems: dict[str, list] = {}
    for d in degs:
        stems.setdefault(d.id.rsplit("/", 1)[-1], []).append(d)
    ref_stems: dict[str, int] = {}
    for r in refs:
        s = r.id.rsplit("/", 1)[-1]
        ref_stems[s] = ref_stems.get(s, 0) + 1
    clips, failed = [], []
    for r in refs:
        d = by_id.get(r.id)
        stem = r.id.rsplit("/", 1)[-1]
        if d is None and len(stems.get(stem, [])) == 1 and ref_stems[stem] == 1:
            d = stems[stem][0]
        if d is None:
            msg = f"no decoded file matches reference {r.path or r.id}"
            failed.append((r.path or r.id, msg))
            if on_error:
                on_error(msg)
            continue
        clips.append(Clip(r.id, r.open(), d.path, _fields(r)))
    return clips, failed


def collect_clips(inputs: list[str], deg: str | None, on_error) -> tuple[list[Clip], bool, list]:
    """(clips, pairs mode?, failures)."""
    from ..inputs import is_manifest_name, plan_sources

    if deg is not None:
        refs = list(plan_sources(inputs).sources())
        degs = list(plan_sources([deg]).sources())
        clips, failed = _match_folders(refs, degs, on_error)
        if not clips:
            raise AudioError(f"no decoded file in {deg} matches a reference")
        return clips, True, failed
    if len(inputs) == 1 and is_manifest_name(inputs[0]) and os.path.isfile(inputs[0]):
        pairs = _read_pair_manifest(inputs[0])
        if pairs is not None:
            if not pairs:
                raise AudioError(f"manifest {inputs[0]} lists no pairs")
            return pairs, True, []
    clips = [Clip(s.id, s.open(), fields=_fields(s)) for s in plan_sources(inputs).sources()]
    return clips, False, []


def load_clip_audio(src: str | IO[bytes], sr: int, name: str) -> np.ndarray:
    """``src`` (a path, or a spooled stream read again from its start) as mono float32
    at ``sr`` Hz, shape ``(T,)``; ``name`` is used in error messages."""
    from ..audio import load_audio

    if not isinstance(src, str):
        src.seek(0)
    return load_audio(src, sr, name=name).numpy()

