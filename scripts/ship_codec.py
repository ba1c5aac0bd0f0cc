"""Assemble a trained codec for shipping: optionally take the vocoder from a
second run (the two can train in parallel), store weights as float16, and
write the result to a codec directory.

    python scripts/ship_codec.py runs/default-codec/vt/final \
        --vocoder-from runs/default-codec/voc/final --decoder flow --out runs/default-codec/ship
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
    ap.add_argument("--decoder", choices=["flow", "mse"], default=None,
                    help="the decoder the codec uses when none is asked for (config 'decoder')")
    ap.add_argument("--guidance", type=float, default=None,
                    help="the flow decoder's default guidance scale (config 'fm_guidance')")
    a = ap.parse_args()
    codec = SoundCodec.from_pretrained(a.base)
    if a.vocoder_from:
        other = SoundCodec.from_pretrained(a.vocoder_from)
        if other.cfg.to_dict() != codec.cfg.to_dict():
            diff = sorted(k for k, v in codec.cfg.to_dict().items() if other.cfg.to_dict()[k] != v)
            raise SystemExit(f"error: the two codecs have different configs ({', '.join(diff)})")
        codec.vocoder.load_state_dict(other.vocoder.state_dict())
    if a.decoder:
        codec.cfg.decoder = a.decoder
    if a.guidance is not None:
        codec.cfg.fm_guidance = a.guidance
    codec.save_pretrained(a.out, dtype=getattr(torch, a.dtype))
    print(f"{a.out}: sha256 {codec.sha256}")


if __name__ == "__main__":
    main()
