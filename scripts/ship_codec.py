"""Assemble a trained codec for shipping: optionally take the vocoder from a
second run (the two can train in parallel), store weights as float16, and
write the result to a codec directory.

    python scripts/ship_codec.py runs/default-codec/vt/final \
        --vocoder-from runs/default-codec/voc/final --decoder flow --out runs/default-codec/ship
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from soundtok.codec.model import SoundCodec
from soundtok.modelconfig import MelConfig

#: config fields the vocoder's weights depend on: the mel front end and its sizes
VOCODER_FIELDS = tuple(f.name for f in dataclasses.fields(MelConfig) if f.name != "name") + (
    "voc_dim", "voc_layers", "kernel_size")
#: the vocoder's loss weights and GAN schedule (training only)
VOCODER_TRAINING_FIELDS = ("voc_adv_weight", "voc_feat_weight", "voc_mel_weight",
                           "disc_dim", "voc_gan_start")


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
        mine, theirs = codec.cfg.to_dict(), other.cfg.to_dict()
        # the vocoder reads only the mel front end and its own sizes; the VAE's input
        # standardisation, the tokenizer and the decoders may differ between the two runs
        diff = sorted(k for k in VOCODER_FIELDS if mine[k] != theirs[k])
        if diff:
            raise SystemExit(f"error: the two codecs' vocoders differ in {', '.join(diff)}")
        codec.vocoder.load_state_dict(other.vocoder.state_dict())
        for k in VOCODER_TRAINING_FIELDS:  # record how the shipped vocoder was trained
            setattr(codec.cfg, k, theirs[k])
    if a.decoder:
        codec.cfg.decoder = a.decoder
    if a.guidance is not None:
        codec.cfg.fm_guidance = a.guidance
    codec.save_pretrained(a.out, dtype=getattr(torch, a.dtype))
    print(f"{a.out}: sha256 {codec.sha256}")


if __name__ == "__main__":
    main()
