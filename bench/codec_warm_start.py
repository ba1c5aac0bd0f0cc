"""Start a codec experiment from a trained run: same VAE, tokenizer encoder, heads and
decoders, a fresh codebook (any size) and new config values; then train it with
``soundtok train-codec ... --init-from OUT --stage tokenizer``.

    python bench/codec_warm_start.py runs/codec-sem2/vt/final runs/exp/init-512-ctc \\
        '{"codebook_size": 512, "text_weight": 1.0}'

Weights whose shapes the new config keeps are copied; the VQ (and any head the old
codec lacks) starts fresh, and train-codec seeds the codebook from encoder outputs.
"""

from __future__ import annotations

import argparse
import json

from soundtok.codec.config import CodecConfig
from soundtok.codec.model import SoundCodec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="a codec directory (e.g. a run's final/)")
    ap.add_argument("out", help="the new codec directory")
    ap.add_argument("config", help="JSON config overrides")
    a = ap.parse_args()
    old = SoundCodec.from_pretrained(a.source)
    cfg = CodecConfig.from_dict({**old.cfg.to_dict(), **json.loads(a.config)})
    new = SoundCodec(cfg)
    mine = new.state_dict()
    kept = {k: v for k, v in old.state_dict().items()
            if not k.startswith("vq.") and k in mine and mine[k].shape == v.shape}
    new.load_state_dict(kept, strict=False)
    fresh = sorted({k.rsplit(".", 1)[0] for k in mine if k not in kept})
    new.save_pretrained(a.out)
    print(f"{a.out}: {len(kept)} tensors copied; fresh: {', '.join(fresh)}")


if __name__ == "__main__":
    main()
