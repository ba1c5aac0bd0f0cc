"""Clip files and manifests: atomic 16 kHz writes, the done log, per-split JSONL, the summary.

Layout under the corpus root (``$SOUNDTOK_CORPUS`` or ``runs/corpus``)::

    clips/<source>/<...>.flac    16 kHz mono 16-bit FLAC, one per clip
    train.jsonl val.jsonl test.jsonl
    summary.json summary.md      hours, clips, voices, licences per source and split
    build.log                    (when started by ``make corpus``)
    .state/done.jsonl            finished rows, appended as clips complete (for --resume)
    .state/runs.jsonl            wall time per stage of every run

Manifest rows hold ``path`` (relative to the manifest's folder, which is how
``soundtok`` resolves relative paths), ``id``, ``duration`` (s), ``source``,
``kind``, ``licence``, ``split`` and what is known: ``text``, ``captions``,
``label``, ``voice``, ``speaker``, ``language``, ``augment`` and the like.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
SPLITS = ("train", "val", "test")
REQUIRED = ("path", "id", "duration", "source", "kind", "licence", "split")


def to_16k(wav: np.ndarray, sr: int) -> np.ndarray:
    """Mono float32 ``(N,)`` resampled to 16 kHz (soxr, high quality)."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    if sr != SAMPLE_RATE:
        import soxr

        wav = soxr.resample(wav, sr, SAMPLE_RATE).astype(np.float32)
    return wav


def write_clip(path: Path, wav: np.ndarray) -> float:
    """Write 16 kHz mono ``wav`` to ``path`` (FLAC, or WAV by suffix) atomically:
    a temporary file beside the target, then a rename, so a clip is never half
    written.  Returns the duration in seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "WAV" if path.suffix.lower() == ".wav" else "FLAC"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    wav = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    try:
        sf.write(str(tmp), wav, SAMPLE_RATE, format=fmt, subtype="PCM_16")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return len(wav) / SAMPLE_RATE


def remove_stale_temps(root: Path) -> int:
    """Delete temporary files left by an interrupted build; returns how many."""
    n = 0
    clips = root / "clips"
    if clips.is_dir():
        for folder, _, files in os.walk(clips):
            for f in files:
                if f.startswith(".") and f.endswith(".tmp"):
                    os.unlink(os.path.join(folder, f))
                    n += 1
    return n


class DoneLog:
    """Rows of finished clips, one JSON object per line, appended by the main
    process as jobs complete.  A row counts only while its file exists."""

    def __init__(self, root: Path):
        self.path = root / ".state" / "done.jsonl"
        self.root = root
        self.rows: dict[str, dict] = {}

    def load(self) -> None:
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill
                    continue
                if isinstance(row, dict) and "id" in row and (self.root / row["path"]).is_file():
                    self.rows[row["id"]] = row

    def reset(self) -> None:
        self.rows = {}
        if self.path.exists():
            self.path.unlink()

    def add(self, rows: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
                self.rows[r["id"]] = r
            f.flush()
            os.fsync(f.fileno())


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_manifests(root: Path, rows: list[dict]) -> dict[str, int]:
    """Write ``train/val/test.jsonl`` (rows in the given order); returns counts."""
    by: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for r in rows:
        by[r["split"]].append(r)
    for split, rs in by.items():
        _atomic_text(root / f"{split}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rs))
    return {s: len(v) for s, v in by.items()}


def read_manifest(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def summarize(rows: list[dict], stage_wall: dict[str, float], extra: dict) -> dict:
    """Hours, clips, voices and licences per source and split."""
    table: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        key = r["source"] + (" (augmented)" if r.get("augment") else "")
        cell = table[key].setdefault(r["split"], {"clips": 0, "seconds": 0.0, "voices": set(),
                                                          "licences": set()})
        cell["clips"] += 1
        cell["seconds"] += r["duration"]
        who = r.get("voice") or r.get("speaker")
        if who:
            cell["voices"].add(who)
        cell["licences"].add(r["licence"])
    sources = {}
    for src, splits in sorted(table.items()):
        sources[src] = {s: {"clips": c["clips"], "hours": round(c["seconds"] / 3600, 4),
                            "voices": sorted(c["voices"]), "licences": sorted(c["licences"])}
                        for s, c in splits.items()}
    totals = {s: {"clips": sum(1 for r in rows if r["split"] == s),
                  "hours": round(sum(r["duration"] for r in rows if r["split"] == s) / 3600, 4)} for s in SPLITS}
    speech_tts = [r for r in rows if r["kind"] == "speech-tts" and not r.get("augment")]
    return {"sample_rate": SAMPLE_RATE, "totals": totals, "sources": sources,
            "tts": {"hours": round(sum(r["duration"] for r in speech_tts) / 3600, 4),
                    "voices": len({r["voice"] for r in speech_tts}),
                    "speakers": len({r["speaker"] for r in speech_tts}),
                    "voices_by_split": {s: sorted({r["voice"] for r in speech_tts if r["split"] == s})
                                        for s in SPLITS}},
            "wall_seconds": {k: round(v, 1) for k, v in stage_wall.items()}, **extra}


def summary_markdown(summary: dict) -> str:
    lines = ["| source | split | clips | hours | voices/speakers | licence |", "|---|---|---:|---:|---:|---|"]
    for src, splits in summary["sources"].items():
        for s in SPLITS:
            if s in splits:
                c = splits[s]
                lines.append(f"| {src} | {s} | {c['clips']} | {c['hours']:.3f} | {len(c['voices']) or ''} | "
                             f"{'; '.join(c['licences'])} |")
    for s in SPLITS:
        t = summary["totals"][s]
        lines.append(f"| **all** | {s} | {t['clips']} | {t['hours']:.3f} | | |")
    lines.append("")
    lines.append("| stage | wall seconds |")
    lines.append("|---|---:|")
    for k, v in summary["wall_seconds"].items():
        lines.append(f"| {k} | {v} |")
    return "\n".join(lines) + "\n"
