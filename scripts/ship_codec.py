"""Assemble a trained codec for shipping: optionally take the vocoder from a
second run (the two can train in parallel), store weights as float16, and
write the result to a codec directory.

    python scripts/ship_codec.py runs/default-codec/vt/final \
        --vocoder-from runs/default-codec/voc/final --out soundtok/codec/default
"""

from __future__ import annotations

import argparse

import torch

from soundtok.codec.model import SoundCodec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="codec directory with the VAE, tokenizer and decoders")
    ap.add_argument("--vocoder-from", default=None, help="codec directory whose vocoder to use")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    a = ap.parse_args()
    codec = SoundCodec.from_pretrained(a.base)
    if a.vocoder_from:
        other = SoundCodec.from_pretrained(a.vocoder_from)
        if other.cfg.to_dict() != codec.cfg.to_dict():
            raise SystemExit("error: the two codecs have different configs")
        codec.vocoder.load_state_dict(other.vocoder.state_dict())
    codec.save_pretrained(a.out, dtype=getattr(torch, a.dtype))
    print(f"{a.out}: sha256 {codec.sha256}")


if __name__ == "__main__":
    main()
