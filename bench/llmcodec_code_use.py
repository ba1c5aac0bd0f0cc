"""Tiny-scale comparison of LLM-Codec code-use settings (codebook collapse).

    python bench/llmcodec_code_use.py --data ../shared/data --work /tmp/llmc-code-use \
        [--steps 120] [--variants full,full+usage,pca16+usage,learned16+usage,learned16]

A variant is ``full``, ``pcaD`` or ``learnedD`` (nearest rows by cosine in the
full 640-d space, in the rows' top D principal directions, or in a learned
D-dimensional projection of them), optionally followed by ``+usage`` (usage
loss, weight 0.1) or ``+usageW`` (weight W).

Trains one small LLM-Codec per variant on real Gemma 3 270M rows (the real
4096 / 8192 / 8192-row vocabularies and hidden size 640; encoder and decoder
shrunk to ``--dim`` channels and one layer each, no vocoder) for ``--steps``
steps of ``--batch`` crops of 1.28 s, all with the Whisper-base teacher loss on
the word scale, on a small labelled set: ESC-10 folds 1-3 (``--esc-per-class``
clips per class) and FSDD train digits (``--fsdd`` clips).  Teacher features
are computed once into ``WORK/teacher`` and shared by the variants.

Printed per variant: code use at the end of training (the last logged
interval), code use on held-out clips (ESC-10 fold 4 and FSDD test digits):
perplexity (``exp`` of the code entropy) and rows used per scale; the final
teacher cosine (``sem_cos``, training batches) and mel L1; and a no-LLM
nearest-demonstration 2-way 1-shot accuracy on ESC-10 fold 4 (bag of scale-0
codes, demonstrations from the training clips, 200 seeded episodes).  At this
scale the accuracy says little; code use is what it measures.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

def variant(name: str) -> dict:
    """``full``, ``pcaD`` or ``learnedD`` (lookup in D dimensions), then optionally
    ``+usage`` (usage loss weight 0.1) or ``+usageW`` -> config overrides."""
    look, _, usage = name.partition("+")
    if look == "full":
        cfg = {"lookup_dim": 0, "lookup_projection": "pca"}
    elif look.startswith("pca"):
        cfg = {"lookup_dim": int(look[3:]), "lookup_projection": "pca"}
    elif look.startswith("learned"):
        cfg = {"lookup_dim": int(look[7:]), "lookup_projection": "learned"}
    else:
        raise SystemExit(f"unknown variant {name!r}")
    if usage and not usage.startswith("usage"):
        raise SystemExit(f"unknown variant {name!r}")
    cfg["entropy_weight"] = float(usage[5:] or 0.1) if usage else 0.0
    return cfg


def manifests(data: Path, work: Path, esc_per_class: int, fsdd: int) -> tuple[Path, list[dict], list[dict]]:
    """Training manifest; held-out rows (ESC-10 fold 4, FSDD test)."""
    esc = list(csv.DictReader(open(data / "esc10" / "labels.csv")))
    dig = list(csv.DictReader(open(data / "fsdd" / "labels.csv")))
    train, per = [], collections.Counter()
    for r in esc:
        if int(r["fold"]) <= 3 and per[r["esc10_class"]] < esc_per_class:
            per[r["esc10_class"]] += 1
            train.append({"path": str(data / "esc10" / r["path"]), "id": "esc10/" + Path(r["path"]).stem,
                          "label": r["esc10_class"].lower()})
    digits = [r for r in dig if r["official_split"] == "train"][:: max(1, 2250 // fsdd)][:fsdd]
    train += [{"path": str(data / "fsdd" / r["path"]), "id": "fsdd/" + Path(r["path"]).stem,
               "label": r["digit"]} for r in digits]
    held = [{"path": str(data / "esc10" / r["path"]), "label": r["esc10_class"].lower(), "set": "esc10"}
            for r in esc if int(r["fold"]) == 4]
    held += [{"path": str(data / "fsdd" / r["path"]), "label": r["digit"], "set": "fsdd"}
             for r in dig if r["official_split"] == "test"][::5]
    work.mkdir(parents=True, exist_ok=True)
    path = work / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in train))
    return path, train, held


def scale0_codes(codec, rows: list[dict]) -> list[list[list[int]]]:
    import torch

    from soundtok.audio import load_audio

    out = []
    for r in rows:
        wav = load_audio(r["path"], 16000)
        out.append([c[0].tolist() for c in codec.encode(torch.as_tensor(wav)[None])])
    return out


def code_use(codes: list[list[list[int]]], sizes: list[int]) -> list[tuple[float, int]]:
    import torch

    from soundtok.llmcodec.quantizer import code_perplexity

    res = []
    for k, v in enumerate(sizes):
        c = torch.bincount(torch.tensor([x for it in codes for x in it[k]], dtype=torch.long), minlength=v)
        res.append(code_perplexity(c))
    return res


def nn_accuracy(q_codes, q_labels, d_codes, d_labels, episodes: int = 200) -> float:
    from soundtok.evaluate.fewshot import sample_episodes

    def cos(a, b):
        num = sum(a[x] * b[x] for x in a)
        den = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
        return num / den if den else 0.0

    qb = [collections.Counter(c[0]) for c in q_codes]
    db = [collections.Counter(c[0]) for c in d_codes]
    ok = n = 0
    for ep in sample_episodes(q_labels, 2, 1, episodes, 0, d_labels):
        for q in ep.queries:
            best = max(ep.demos, key=lambda d: cos(qb[q], db[d]))
            ok += d_labels[best] == q_labels[q]
            n += 1
    return ok / n


def last_train_metrics(run: Path) -> dict[str, float]:
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r["split"] == "train"]
    last = max(int(r["step"]) for r in rows)
    return {r["metric"]: float(r["value"]) for r in rows if int(r["step"]) == last}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--work", default="/tmp/llmc-code-use")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--esc-per-class", type=int, default=3)
    ap.add_argument("--fsdd", type=int, default=60)
    ap.add_argument("--variants", default="full,full+usage,pca16+usage,learned16+usage,learned16")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch

    from soundtok.llm.loader import load_llm
    from soundtok.llmcodec.model import LLMCodec
    from soundtok.train.llmcodec_trainer import TrainLLMCodecOptions, train_llm_codec

    torch.set_num_threads(a.threads)
    work = Path(a.work)
    train_path, train_rows, held = manifests(Path(a.data), work, a.esc_per_class, a.fsdd)
    model, tok = load_llm("gemma3-270m", dtype="float32")
    small = {"dim": a.dim, "enc_layers": 1, "dec_layers": 1, "teacher_hidden": 128,
             "semantic": "whisper", "name": "code-use-bench"}
    esc_held = [r for r in held if r["set"] == "esc10"]
    esc_train = [r for r in train_rows if r["id"].startswith("esc10/")]
    lines = []
    for name in a.variants.split(","):
        run = work / name
        t0 = time.time()
        opts = TrainLLMCodecOptions(train=[str(train_path)], out=str(run), steps=a.steps, batch=a.batch,
                                    crop_seconds=1.28, warmup=20, save_every=10 ** 9, log_every=20,
                                    codec_config={**small, **variant(name)}, vocoder_init=None,
                                    train_vocoder=False, teacher_cache=str(work / "teacher"))
        final = train_llm_codec(opts, echo=None, llm=(model, tok)) if not (run / "final").is_dir() else run / "final"
        codec = LLMCodec.from_pretrained(final, llm=model)
        m = last_train_metrics(run)
        sizes = codec.cfg.vocab_sizes
        held_codes = scale0_codes(codec, held)
        use = code_use(held_codes, sizes)
        train_esc_codes = scale0_codes(codec, esc_train)
        acc = nn_accuracy([c for c, r in zip(held_codes, held) if r["set"] == "esc10"],
                          [r["label"] for r in esc_held], train_esc_codes, [r["label"] for r in esc_train])
        line = (f"{name:16s} train ppl {m['perplexity_0']:.1f}/{m['perplexity_1']:.1f}/{m['perplexity_2']:.1f} "
                f"rows {m['rows_used_0']:.0f}/{m['rows_used_1']:.0f}/{m['rows_used_2']:.0f} | held-out ppl "
                + "/".join(f"{p:.1f}" for p, _ in use) + " rows " + "/".join(str(u) for _, u in use)
                + f" | sem_cos {m.get('sem_cos', float('nan')):.3f} mel_l1 {m['mel_l1']:.3f}"
                f" | ESC 2-way NN {acc:.3f} | {time.time() - t0:.0f} s")
        print(line, flush=True)
        lines.append(line)
    (work / "results.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
