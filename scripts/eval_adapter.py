"""Measure a caption/generation adapter on held-out data only (default: the shipped adapter).

    python scripts/eval_adapter.py --adapter runs/adapter/train/final --run runs/adapter --corpus runs/corpus
    python scripts/eval_adapter.py --limit 40 --skip gen,ref      # a quick look

Writes ``results.json``, ``results.md`` (tables for a model card) and one
``captions-<set>.jsonl`` per set into ``--out`` (default ``RUN/eval/<adapter name>``).

**Captions** (greedy, as ``soundtok caption``) of every clip of each held-out set
(adapter_recipe.evaluation.EVAL_SETS): the FSDD test split, the corpus's held-out voices
(test split: digits and digit strings, read sentences, letters and spelled words), its
held-out languages (klettres), ESC-10 fold 4, held-out music pieces and sound samples.
Tokens come from the recipe's cache (``RUN/tokens/<codec>/{val,test}.tok.jsonl``, made
there by ``--codec`` when missing).  Per set: captioned as its kind (speech / music /
sound), WER of the quoted text against ``text``, digits / letters / ESC-10 class right,
instrument and style named, man/woman right, the share flagged unsure and the median
score; confusion tables of the kind (all sets), the ESC-10 class and the FSDD digit.
Measures: adapter_recipe.evaluation (tested in tests/test_adapter_recipe.py).

**Generation** (``--seeds`` seeds per prompt, the adapter's sampling defaults):
``spoken digit <word>`` for the 10 digits and short phrases (``someone says hello``)
are decoded by the codec and transcribed by Whisper (``--whisper``, offline weights via
soundtok.whisper; clips peak-normalised and padded with 1 s of silence, without which
Whisper hallucinates on sub-second clips): right digit (strict; lenient also takes
homophones such as "to"/"for"), WER of the phrase; the digits are also captioned back
by the adapter.  Sound prompts (one per ESC-10 class) and music prompts (``a piano
melody``) are captioned back by the adapter: class right, captioned as music,
instrument named.  **Reference**: real FSDD test clips, as recorded and through the
codec (tokenize + detokenize), transcribed by Whisper: the ceiling generation can reach.
**Latency**: caption of one 5 s clip after loading (median of 5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from adapter_recipe.captions import DIGIT_WORDS, ESC_LABELS, ESC_PHRASES  # noqa: E402
from adapter_recipe.data import item_row  # noqa: E402
from adapter_recipe.evaluation import (  # noqa: E402
    EVAL_SETS,
    KINDS,
    caption_kind,
    confusion,
    esc_class,
    instrument_named,
    results_markdown,
    score_row,
    spread,
    summarize,
    whisper_digit,
)

PHRASES = ["hello", "good morning", "thank you", "yes", "how are you"]
MUSIC_PROMPTS = [("a piano melody", ["piano"]), ("a violin melody", ["violin"]), ("a flute melody", ["flute"]),
                 ("a string quartet playing", ["violin", "viola", "cello"]),
                 ("a church organ playing a baroque chorale", ["church organ"])]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def held_out_items(a, meta) -> dict[str, list]:
    """The held-out sets' token items, tokenized with the adapter's codec into the recipe's
    cache when they are not there yet."""
    import train_default_adapter as recipe

    info = meta["codec"]["header"]["codec"]
    tag = f"{info['name']}-{str(info.get('sha256', 'nosha'))[:12]}"
    tok_dir = Path(a.run) / "tokens" / tag
    need = [s for s in ("val", "test") if not (tok_dir / f"{s}.tok.jsonl").is_file()]
    if need:
        got, got_info = recipe.codec_tag(a.codec)
        if got_info.get("sha256") != info.get("sha256"):
            raise SystemExit(f"error: the adapter was trained on codec {info['name']} ({info.get('sha256')}); "
                             f"--codec {a.codec} is {got_info['name']} ({got_info.get('sha256')})")
        data = Path(a.data) if Path(a.data).is_dir() else None
        rows = recipe.corpus_rows(Path(a.corpus), data)
        tok_dir.mkdir(parents=True, exist_ok=True)
        for split in need:
            if rows[split]:
                recipe.tokenize_split(rows[split], tok_dir, split, a)
    sets: dict[str, list] = defaultdict(list)
    from adapter_recipe.evaluation import eval_set_of

    from soundtok.tokens import TokenReader

    for split in ("val", "test"):
        path = tok_dir / f"{split}.tok.jsonl"
        if not path.is_file():
            continue
        with TokenReader(str(path)) as r:
            for it in r:
                name = eval_set_of(item_row(it))
                if name:
                    sets[name].append(it)
    return {name: spread(sorted(sets[name], key=lambda i: i.id), a.limit) for name in EVAL_SETS if sets.get(name)}


def caption_sets(alm, tok, sets: dict, a, out_dir: Path) -> tuple[dict, dict]:
    from soundtok.audiolm.tasks import CaptionOptions, caption_items

    opts = CaptionOptions(batch_size=a.batch_size, max_new_tokens=a.max_new_tokens)
    summaries, scored = {}, {}
    for name, items in sets.items():
        t = time.time()
        rows = []
        for item, cap in caption_items(alm, tok, items, opts):
            r = score_row(item_row(item), cap.text)
            r.update(score=cap.score, unsure=cap.unsure)
            rows.append(r)
        s = summarize(rows)
        s["median_score"] = round(statistics.median(r["score"] for r in rows), 4)
        if any(r["unsure"] is not None for r in rows):
            s["unsure_rate"] = round(sum(bool(r["unsure"]) for r in rows) / len(rows), 4)
        summaries[name], scored[name] = s, rows
        (out_dir / f"captions-{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        log(f"{name}: {s} ({time.time() - t:.0f} s)")
        log("  e.g. " + " | ".join(r["caption"] for r in rows[:: max(1, len(rows) // 4)][:4]))
    return summaries, scored


def transcribe(asr, paths: list[Path]) -> list[str]:
    """Whisper transcripts of peak-normalised clips padded with 1 s of silence on both sides."""
    import numpy as np

    from soundtok.audio import load_audio

    out = []
    for p in paths:
        x = np.asarray(load_audio(str(p), 16000), dtype=np.float32).reshape(-1)
        x = x / max(1e-4, float(np.abs(x).max())) * 0.9
        pad = np.zeros(16000, dtype=np.float32)
        out.append(asr.transcribe(np.concatenate([pad, x, pad])))
    return out


def generate_set(alm, tok, prompts: list[tuple[str, str]], seeds: int, duration: float, a, folder: Path):
    """Generated items for each (id, prompt) x seed (ids ``s<seed>-<id>``)."""
    from soundtok.audiolm.tasks import GenerateOptions, generate_items

    items = []
    for s in range(seeds):
        opts = GenerateOptions(duration=duration, seed=1000 * s, batch_size=10)
        items += list(generate_items(alm, tok, [(f"s{s}-{pid}", text) for pid, text in prompts], opts))
    folder.mkdir(parents=True, exist_ok=True)
    return items


def decode(items, header, folder: Path, codec) -> list[Path]:
    from soundtok.api import detokenize
    from soundtok.tokens import open_token_writer

    stream = folder / "generated.tok.jsonl"
    with open_token_writer(str(stream), header) as w:
        for it in items:
            w.write(it)
    detokenize(str(stream), str(folder) + "/", codec=None if codec == "default" else codec)
    return [folder / f"{it.id}.wav" for it in items]


def caption_back(alm, tok, items) -> list[str]:
    from soundtok.audiolm.tasks import CaptionOptions, caption_items

    return [c.text for _, c in caption_items(alm, tok, items, CaptionOptions(max_new_tokens=48))]


def generation(alm, tok, meta, a, out_dir: Path, asr) -> dict:
    from soundtok.audiolm.tasks import unfamiliar_prompts
    from soundtok.evaluate.asr import error_counts

    header = alm.vocab.header
    gen, gdir = {}, out_dir / "gen"
    # spoken digits: Whisper, and the adapter's own captioner
    prompts = [(w, f"spoken digit {w}") for w in DIGIT_WORDS]
    items = generate_set(alm, tok, prompts, a.seeds, 2.0, a, gdir / "digits")
    texts = transcribe(asr, decode(items, header, gdir / "digits", a.codec)) if asr else []
    want = [str(DIGIT_WORDS.index(it.id.split("-", 1)[1])) for it in items]
    heard = caption_back(alm, tok, items)
    from adapter_recipe.evaluation import digits_said

    measures = {"captioned back as the right digit": round(sum(digits_said(c) == w for c, w in zip(heard, want))
                                                           / len(items), 4)}
    if asr:
        measures[f"Whisper {asr.name}: right digit"] = round(
            sum(whisper_digit(x) == w for x, w in zip(texts, want)) / len(items), 4)
        measures[f"Whisper {asr.name}: right digit (homophones)"] = round(
            sum(whisper_digit(x, True) == w for x, w in zip(texts, want)) / len(items), 4)
    gen["digits"] = {"title": '"spoken digit N", N = zero..nine', "items": len(items), "measures": measures,
                     "clips": [{"id": it.id, "whisper": x, "caption": c}
                               for it, x, c in zip(items, texts or [None] * len(items), heard)]}
    # short phrases: Whisper WER
    if asr:
        prompts = [(p.replace(" ", "_"), f"someone says {p}") for p in PHRASES]
        items = generate_set(alm, tok, prompts, a.seeds, 3.0, a, gdir / "phrases")
        texts = transcribe(asr, decode(items, header, gdir / "phrases", a.codec))
        refs = [it.id.split("-", 1)[1].replace("_", " ") for it in items]
        counts = [error_counts(r, x) for r, x in zip(refs, texts)]
        gen["phrases"] = {"title": '"someone says hello" and 4 more phrases', "items": len(items),
                          "measures": {f"Whisper {asr.name}: WER": round(sum(c.word_edits for c in counts)
                                                                         / max(1, sum(c.ref_words for c in counts)), 4),
                                       f"Whisper {asr.name}: phrase exact": round(
                                           sum(c.word_edits == 0 for c in counts) / len(counts), 4)},
                          "clips": [{"id": it.id, "whisper": x} for it, x in zip(items, texts)]}
    # sounds: captioned back
    prompts = [(label.replace(" ", "_"), ESC_PHRASES[label][0]) for label in ESC_LABELS]
    items = generate_set(alm, tok, prompts, a.seeds, 5.0, a, gdir / "sounds")
    caps = caption_back(alm, tok, items)
    want = [it.id.split("-", 1)[1].replace("_", " ") for it in items]
    gen["sounds"] = {"title": 'ESC-10 classes ("a dog barking", ...)', "items": len(items),
                     "measures": {"captioned back as that class": round(
                         sum(esc_class(c) == w for c, w in zip(caps, want)) / len(items), 4),
                                  "captioned back as a sound": round(
                         sum(caption_kind(c) == "sound" for c in caps) / len(items), 4)},
                     "clips": [{"id": it.id, "caption": c} for it, c in zip(items, caps)]}
    # music: captioned back
    prompts = [(f"m{i}", p) for i, (p, _) in enumerate(MUSIC_PROMPTS)]
    items = generate_set(alm, tok, prompts, a.seeds, 6.0, a, gdir / "music")
    caps = caption_back(alm, tok, items)
    inst = [MUSIC_PROMPTS[int(it.id.split("-m", 1)[1])][1] for it in items]
    gen["music"] = {"title": '"a piano melody" and 4 more', "items": len(items),
                    "measures": {"captioned back as music": round(
                        sum(caption_kind(c) == "music" for c in caps) / len(items), 4),
                                 "instrument named (head noun)": round(
                        sum(instrument_named(c, {"instruments": i})[1] for c, i in zip(caps, inst)) / len(items), 4)},
                    "clips": [{"id": it.id, "caption": c} for it, c in zip(items, caps)]}
    texts = ([f"spoken digit {w}" for w in DIGIT_WORDS] + [f"someone says {p}" for p in PHRASES]
             + [ESC_PHRASES[label][0] for label in ESC_LABELS] + [p for p, _ in MUSIC_PROMPTS])
    gen["unfamiliar_prompt_words"] = dict(unfamiliar_prompts(meta, list(enumerate(texts))))
    return gen


def reference(alm, a, out_dir: Path, asr, fsdd_items) -> dict:
    """Real FSDD test clips (every 5th) through Whisper, as recorded and through the codec."""
    picked = fsdd_items[::5]
    folder = out_dir / "ref"
    folder.mkdir(parents=True, exist_ok=True)
    from soundtok.tokens import Item

    renamed = [Item(id=it.id.replace("/", "_"), num_samples=it.num_samples, codes=it.codes) for it in picked]
    resynth = decode(renamed, alm.vocab.header, folder, a.codec)
    want = [str(item_row(it).get("label")) for it in picked]
    measures = {}
    for name, paths in (("as recorded", [Path(it.source) for it in picked]), ("through the codec", resynth)):
        texts = transcribe(asr, paths)
        measures[f"Whisper {asr.name}, {name}: right digit"] = round(
            sum(whisper_digit(x) == w for x, w in zip(texts, want)) / len(picked), 4)
    return {"items": len(picked), "measures": measures}


def latency(alm, tok, items, threads: int) -> float | None:
    from soundtok.audiolm.tasks import CaptionOptions, caption_items

    clip = next((it for it in items if abs(it.num_samples / alm.vocab.header.sample_rate - 5.0) < 0.1), None)
    if clip is None:
        return None
    times = []
    for _ in range(6):
        t = time.perf_counter()
        next(caption_items(alm, tok, [clip], CaptionOptions()))
        times.append(time.perf_counter() - t)
    return round(statistics.median(times[1:]), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", default=None, help="adapter directory (default: the shipped one)")
    ap.add_argument("--run", default=str(ROOT / "runs" / "adapter"), help="the recipe's run folder (token cache)")
    ap.add_argument("--corpus", default=str(ROOT / "runs" / "corpus"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--codec", default="default", help="the adapter's codec (to tokenize and decode)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--limit", type=int, default=None, help="evenly spaced N clips per set")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--whisper", default="base", help="Whisper model judging speech (base or tiny.en)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: captions,gen,ref,latency")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))

    import torch

    from soundtok.audiolm.adapter import load_adapter, resolve_adapter

    torch.set_num_threads(a.threads)
    directory = resolve_adapter(a.adapter)
    out_dir = Path(a.out or Path(a.run) / "eval" / (directory.parent.parent.name if directory.name == "final"
                                                    else directory.name))
    out_dir.mkdir(parents=True, exist_ok=True)
    t = time.time()
    alm, tok, meta = load_adapter(a.adapter, device="cpu")
    codec = meta["codec"]["header"]["codec"]
    results: dict = {"adapter": str(a.adapter or "default"), "codec": f"{codec['name']} {codec.get('sha256', '')[:12]}",
                     "threads": a.threads, "limit": a.limit, "load_seconds": round(time.time() - t, 2),
                     "calibration": (meta.get("calibration") or {}).get("min_score")}
    sets = held_out_items(a, meta)
    log("held-out sets: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))
    if "captions" not in skip:
        summaries, scored = caption_sets(alm, tok, sets, a, out_dir)
        results["captions"] = summaries
        results["kind_confusion"] = confusion(((r["kind"], r["kind_pred"]) for rows in scored.values()
                                               for r in rows), list(KINDS))
        if "esc10_fold4" in scored:
            results["esc10_confusion"] = confusion(((r["label"], r["label_pred"]) for r in scored["esc10_fold4"]),
                                                   ESC_LABELS)
        if "fsdd_test" in scored:
            results["fsdd_confusion"] = confusion(((r["digits"], r["digits_pred"] if len(r["digits_pred"]) == 1
                                                    else None) for r in scored["fsdd_test"]),
                                                  [str(d) for d in range(10)])
    asr = None
    if not ({"gen", "ref"} <= skip):
        from soundtok.evaluate.asr import WhisperASR, asr_status

        ok, line = asr_status(a.whisper)
        log(line)
        asr = WhisperASR(a.whisper, threads=a.threads) if ok else None
    if "gen" not in skip:
        t = time.time()
        results["generation"] = generation(alm, tok, meta, a, out_dir, asr)
        results["generation_seconds"] = round(time.time() - t, 1)
        for name, g in results["generation"].items():
            if isinstance(g, dict) and "measures" in g:
                log(f"generation {name}: {g['measures']}")
    if "ref" not in skip and asr and sets.get("fsdd_test"):
        results["reference"] = reference(alm, a, out_dir, asr, sets["fsdd_test"])
        log(f"reference: {results['reference']['measures']}")
    if "latency" not in skip and sets.get("esc10_fold4"):
        results["latency_5s_clip_s"] = latency(alm, tok, sets["esc10_fold4"], a.threads)
    slim = {k: ({n: {kk: vv for kk, vv in g.items() if kk != "clips"} if isinstance(g, dict) else g
                 for n, g in v.items()} if k == "generation" else v) for k, v in results.items()}
    (out_dir / "results.json").write_text(json.dumps(slim, indent=1) + "\n")
    if "generation" in results:
        (out_dir / "generation.json").write_text(json.dumps(results["generation"], indent=1) + "\n")
    (out_dir / "results.md").write_text(results_markdown(slim) + "\n")
    print(results_markdown(slim))
    log(f"wrote {out_dir}/results.json and results.md")


if __name__ == "__main__":
    main()
