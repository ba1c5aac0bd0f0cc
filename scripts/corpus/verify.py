"""Check a built corpus: files, durations, schema, ids and held-out splits.

    python scripts/build_corpus.py --verify [-o DIR]

:func:`verify` reads ``train/val/test.jsonl`` and returns ``(problems,
stats)``: every clip file exists, is 16 kHz mono and as long as its row says;
required fields are present; ids are unique; and the splits are disjoint where
they must be — TTS and recorded speakers (FSDD excepted: its official split is
by recording), music pieces, ESC-10 folds, sonic-pi files — and augmented
clips derive only from train clips and train noise.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import soundfile as sf

from .manifest import REQUIRED, SAMPLE_RATE, SPLITS, read_manifest


def verify(root: Path, check_audio: bool = True) -> tuple[list[str], dict]:
    root = Path(root)
    problems: list[str] = []
    rows: list[dict] = []
    for s in SPLITS:
        p = root / f"{s}.jsonl"
        if not p.is_file():
            problems.append(f"missing manifest {p}")
            continue
        for r in read_manifest(p):
            if r.get("split") != s:
                problems.append(f"{r.get('id')}: split {r.get('split')!r} in {p.name}")
            rows.append(r)
    seen: set[str] = set()
    for r in rows:
        miss = [k for k in REQUIRED if k not in r]
        if miss:
            problems.append(f"{r.get('id')}: missing {', '.join(miss)}")
            continue
        if r["id"] in seen:
            problems.append(f"duplicate id {r['id']}")
        seen.add(r["id"])
        if check_audio:
            f = root / r["path"]
            if not f.is_file():
                problems.append(f"{r['id']}: no file {r['path']}")
                continue
            info = sf.info(str(f))
            if info.samplerate != SAMPLE_RATE or info.channels != 1:
                problems.append(f"{r['id']}: {info.samplerate} Hz, {info.channels} channels")
            if abs(info.duration - r["duration"]) > 0.01:
                problems.append(f"{r['id']}: file {info.duration:.3f} s, row {r['duration']} s")
    by_id = {r["id"]: r for r in rows}

    def disjoint(name: str, key) -> None:
        where: dict = defaultdict(set)
        for r in rows:
            k = key(r)
            if k is not None and not r.get("augment"):
                where[k].add(r["split"])
        shared = sorted(str(k) for k, v in where.items() if len(v) > 1)
        if shared:
            problems.append(f"{name} in more than one split: {', '.join(shared[:10])}")

    disjoint("TTS speakers", lambda r: r.get("speaker") if r["kind"] == "speech-tts" else None)
    disjoint("klettres speakers", lambda r: r.get("speaker") if r["source"] == "klettres" else None)
    disjoint("music pieces", lambda r: r.get("piece") if r["kind"] == "music" else None)
    disjoint("ESC-10 folds", lambda r: r.get("fold") if r["source"] == "esc10" else None)
    disjoint("sonic-pi files", lambda r: r.get("name") if r["source"] == "sonicpi" else None)
    for r in rows:
        if r["source"] == "fsdd":
            index = int(r["id"].rsplit("_", 1)[1])
            if (index < 5) != (r["split"] == "test"):
                problems.append(f"{r['id']}: FSDD index {index} in {r['split']}")
        a = r.get("augment")
        if a:
            src = by_id.get(a.get("of"))
            if r["split"] != "train" or src is None or src["split"] != "train":
                problems.append(f"{r['id']}: augmented from {a.get('of')} outside train")
            if "noise" in a and (a["noise"] not in by_id or by_id[a["noise"]]["split"] != "train"):
                problems.append(f"{r['id']}: noise {a['noise']} not a train clip")
    stats = {"clips": len(rows), "hours": round(sum(r["duration"] for r in rows if "duration" in r) / 3600, 3),
             "by_split": {s: sum(1 for r in rows if r.get("split") == s) for s in SPLITS},
             "tts_speakers_by_split": {s: sorted({r["speaker"] for r in rows if r.get("kind") == "speech-tts"
                                                  and r.get("split") == s}) for s in SPLITS}}
    return problems, stats
