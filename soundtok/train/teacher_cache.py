"""Teacher features computed once per training set, stored on disk, keyed.

A cache is a directory with ``meta.json`` (format, teacher id, audio key,
codec hop, number of clips, feature size) and ``features.safetensors``
(``f000000`` ... one ``(D, T)`` float16 tensor per clip on the codec's
frame grid, plus per-channel ``mean`` and ``std`` over all frames). The
teacher id names the teacher and the sha256 of its weights; the audio key is
a sha256 of every clip's id, length and samples. A cache whose teacher, audio
or hop differ from the run's is refused with one line -- never silently reused
or overwritten. It is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelError
from ..teacher.align import to_codec_frames

FORMAT = 1


@dataclass
class TeacherFeatures:
    """Per-clip teacher features ``feats[i] (D, ceil(N_i / hop))`` (float16) and their
    per-channel ``mean``/``std`` ``(D,)`` (float32)."""

    feats: list[torch.Tensor]
    mean: torch.Tensor
    std: torch.Tensor
    teacher_id: str
    audio_key: str
    hop: int

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])


def audio_key(clips) -> str:
    """sha256 over every clip's id, length and float32 samples (order matters)."""
    h = hashlib.sha256()
    for c in clips:
        h.update(f"{c.id}\0{c.wav.shape[0]}\0".encode())
        h.update(c.wav.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def _check_meta(meta: dict, directory: Path, teacher_id: str, key: str, hop: int) -> None:
    have = (meta.get("teacher"), meta.get("audio"), meta.get("hop"))
    if have == (teacher_id, key, hop) and meta.get("format") == FORMAT:
        return
    if meta.get("teacher") != teacher_id:
        why = f"teacher {meta.get('teacher')!r}, not {teacher_id!r}"
    elif meta.get("audio") != key:
        why = (f"another audio set (key {str(meta.get('audio'))[:12]}, this run's is {key[:12]}: "
               f"the training data changed)")
    else:
        why = f"codec hop {meta.get('hop')} / format {meta.get('format')}, not {hop} / {FORMAT}"
    raise ModelError(f"teacher cache {directory} was made by {why}; delete it or use a new "
                     f"run directory")


def load_cache(directory: str | Path, teacher_id: str, key: str, hop: int) -> TeacherFeatures | None:
    """The cache in ``directory`` if it matches; ``None`` if there is none;
    ModelError (one line) if it belongs to another teacher, audio set or hop, or is damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(directory)
    meta_path = d / "meta.json"
    if not meta_path.is_file():
        if d.is_dir() and any(d.iterdir()):
            raise ModelError(f"teacher cache {d} has no meta.json (not a teacher cache?); "
                             f"delete it or use a new run directory")
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"teacher cache {d}: unreadable meta.json ({e})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"teacher cache {d}: meta.json is not a JSON object")
    _check_meta(meta, d, teacher_id, key, hop)
    try:
        t = load_file(str(d / "features.safetensors"))
        feats = [t[f"f{i:06d}"] for i in range(int(meta["clips"]))]
        mean, std = t["mean"], t["std"]
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise ModelError(f"teacher cache {d} is damaged ({type(e).__name__}: {e}); delete it") from None
    return TeacherFeatures(feats, mean.float(), std.float(), teacher_id, key, hop)


def compute_features(teacher, clips, hop: int, log=None) -> list[torch.Tensor]:
    """Teacher features of each clip on the codec grid: ``(D, ceil(N / hop))`` float16."""
    out, t0, done = [], time.time(), 0.0
    for i, c in enumerate(clips):
        f = torch.from_numpy(teacher.features(c.wav.numpy()))[None]
        n = -(-c.wav.shape[0] // hop)
        out.append(to_codec_frames(f, hop, n)[0].half())
        done += c.wav.shape[0] / 16000
        if log and (i + 1) % 50 == 0:
            log(f"teacher features: {i + 1}/{len(clips)} clips, {done / 60:.1f} min of audio "
                f"at {done / max(1e-9, time.time() - t0):.0f}x real time")
    return out


def build_or_load(teacher, clips, hop: int, directory: str | Path, log=None) -> TeacherFeatures:
    """Load the matching cache in ``directory`` or compute it (once) and write it there."""
    from safetensors.torch import save_file

    d = Path(directory)
    key = audio_key(clips)
    cached = load_cache(d, teacher.id, key, hop)
    if cached is not None:
        if log:
            log(f"teacher features: {len(cached.feats)} clips from cache {d}")
        return cached
    t0 = time.time()
    feats = compute_features(teacher, clips, hop, log)
    allf = torch.cat([f.float() for f in feats], dim=1)
    mean, std = allf.mean(dim=1), allf.std(dim=1).clamp_min(1e-3)
    tensors = {f"f{i:06d}": f.contiguous() for i, f in enumerate(feats)}
    tensors.update(mean=mean.contiguous(), std=std.contiguous())
    meta = {"format": FORMAT, "teacher": teacher.id, "audio": key, "hop": hop,
            "clips": len(feats), "dim": int(mean.shape[0]),
            "seconds": round(sum(c.wav.shape[0] for c in clips) / 16000, 2),
            "compute_seconds": round(time.time() - t0, 1)}
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = d.parent / f".{d.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_file(tensors, str(tmp / "features.safetensors"))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        if d.exists():  # an empty folder (load_cache refused anything else)
            d.rmdir()
        tmp.rename(d)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if log:
        log(f"teacher features: {len(feats)} clips ({meta['seconds'] / 60:.1f} min) in "
            f"{meta['compute_seconds']:.0f} s, cached in {d}")
    return TeacherFeatures(feats, mean, std, teacher.id, key, hop)
