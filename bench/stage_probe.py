"""Where does a codec lose the words? Whisper WER after each stage (not a test).

    python bench/stage_probe.py --codec runs/codec-sem/ship --manifest runs/eval/voices.jsonl \\
        --limit 20 --threads 2

For each clip of a JSONL manifest with ``path`` and ``text`` (held-out speech), the
audio goes through successively more of the codec and Whisper base transcribes
the result:

* ``vocoder``: the vocoder on the clip's analysed log-mel (copy synthesis);
* ``vae``: VAE encode -> latent mean -> VAE decode -> vocoder (no quantisation);
* ``mse`` / ``flow``: the full codec, tokens -> decoder -> VAE decode -> vocoder.

WER is pooled over clips (total edits / total reference words) against ``text``;
``reference`` is Whisper on the input itself (the ASR floor). The stage where WER
jumps is where the words are lost.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", required=True)
    ap.add_argument("--manifest", required=True, help="JSONL rows with path and text")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vocoder-from", default=None, metavar="DIR",
                    help="take the vocoder from this codec (e.g. to probe a VAE-only checkpoint)")
    ap.add_argument("--stages", default="reference,vocoder,vae,mse,flow",
                    help="comma-separated subset of the stages")
    ap.add_argument("--out", default=None, help="write per-clip transcripts here (JSONL)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from soundtok.audio import load_audio
    from soundtok.codec.model import SoundCodec
    from soundtok.evaluate.asr import WhisperASR, error_counts, whisper_language

    codec = SoundCodec.from_pretrained(args.codec).eval().float()
    codec.precision = "fp32"
    if args.vocoder_from:
        codec.vocoder = SoundCodec.from_pretrained(args.vocoder_from).vocoder.float().eval()
    asr = WhisperASR("base", threads=args.threads)
    rows = [json.loads(line) for line in Path(args.manifest).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("text")][: args.limit]
    sr, edge, hop = codec.cfg.sample_rate, codec.edge, codec.cfg.token_hop
    stages = [s for s in ("reference", "vocoder", "vae", "mse", "flow") if s in args.stages.split(",")]
    totals = {s: [0, 0] for s in stages}
    out = open(args.out, "w") if args.out else None
    for r in rows:
        wav = torch.as_tensor(load_audio(r["path"], sr), dtype=torch.float32).reshape(1, -1)
        n = wav.shape[-1]
        t = codec.num_frames(n)
        padded = F.pad(wav, (edge, t * hop - n + edge))
        with torch.inference_mode():
            outs = {"reference": wav}
            if "vocoder" in stages:
                outs["vocoder"] = codec.vocoder(codec.mel(padded))
            if "vae" in stages:
                outs["vae"] = codec.latent_to_wav(codec.normalized_latent(padded))
            if "mse" in stages or "flow" in stages:
                codes = codec.encode(wav)
                for d in ("mse", "flow"):
                    if d in stages:
                        outs[d] = codec.decode(codes, num_samples=n, decoder=d)
        lang = whisper_language(r.get("language"))
        rec = {"id": r.get("id"), "text": r["text"]}
        for s in stages:
            y = outs[s].reshape(-1)[:n].float().numpy()
            hyp = asr.transcribe(np.asarray(y), lang)
            c = error_counts(r["text"], hyp)
            totals[s][0] += c.word_edits
            totals[s][1] += c.ref_words
            rec[s] = hyp
        if out:
            out.write(json.dumps(rec) + "\n")
    print(f"{len(rows)} clips from {args.manifest}; codec {args.codec}")
    print("| stage | WER |\n|---|---|")
    for s in stages:
        e, w = totals[s]
        print(f"| {s} | {e / max(w, 1):.3f} |")


if __name__ == "__main__":
    main()
