"""What a text-head codec's tokens spell: greedy CTC decoding of a manifest's clips
(codec config ``text_weight`` > 0), with an approximate character error rate.

    python bench/spell_probe.py runs/exp/512-ctc/final held-out.jsonl --limit 10
"""

from __future__ import annotations

import argparse
import difflib
import json

import torch

from soundtok.audio import load_audio
from soundtok.codec.model import SoundCodec
from soundtok.train.text import decode_greedy, normalize_transcript


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("codec")
    ap.add_argument("manifest", help="JSONL rows with path and text")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    codec = SoundCodec.from_pretrained(a.codec).eval()
    if codec.text_head is None:
        raise SystemExit(f"error: {a.codec} has no text head (text_weight 0)")
    with open(a.manifest) as f:
        rows = [json.loads(line) for line in f][: a.limit]
    err = total = 0
    for r in rows:
        with open(r["path"], "rb") as f:
            wav = load_audio(f, codec.cfg.sample_rate)[None]
        with torch.no_grad():
            hyp = decode_greedy(codec.text_head(codec.vq.embed(codec.encode(wav)[:, 0])))[0]
        ref = normalize_transcript(r.get("text") or "") or ""
        ops = difflib.SequenceMatcher(None, ref, hyp).get_opcodes()
        err += sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in ops if op != "equal")
        total += len(ref)
        print(f"{ref[:60]!r:62} | {hyp!r}")
    print(f"approximate CER {err / max(1, total):.3f} over {len(rows)} clips")


if __name__ == "__main__":
    main()
