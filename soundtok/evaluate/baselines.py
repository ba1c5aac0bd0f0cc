"""Classical speech codecs as baselines: round trips through Debian's codec2
(``c2enc``/``c2dec``) and opus-tools (``opusenc``/``opusdec``).

Names: ``codec2-MODE`` with MODE one of 3200, 2400, 1600, 1400, 1300, 1200,
700C, 450 (e.g. ``codec2-450``, ``codec2-700C``), and ``opus-Nk`` for Opus at
N kbit/s (e.g. ``opus-6k``).

* codec2 works on 8 kHz 16-bit mono raw PCM: the 16 kHz signal is resampled to
  8 kHz (soxr HQ), encoded to a ``.c2`` file, decoded and resampled back to
  16 kHz.  Payload bits = (number of frames, from the ``.c2`` file size minus
  its 7-byte header divided by the bytes per frame) x the mode's nominal bits
  per frame.  The file stores each frame in whole bytes, so its size overstates
  some modes (450: 18 bits in 3 bytes).
* Opus: the 16 kHz signal is written as 16-bit WAV, encoded with ``opusenc
  --bitrate N`` (VBR, 20 ms frames: opusenc's defaults) and decoded with
  ``opusdec --rate 16000`` (which removes the pre-skip).  Payload bits = 8 x the
  summed size of the Opus audio packets, read from the Ogg pages' segment
  tables; the Ogg page headers and the OpusHead/OpusTags packets are excluded.

Payload bitrate = payload bits / duration of the input clip.  All files live
in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from ..errors import SoundtokError, UsageError

SCORE_SR = 16000

# mode -> (nominal bits per frame, samples per frame at 8 kHz)
CODEC2_MODES = {"3200": (64, 160), "2400": (48, 160), "1600": (64, 320), "1400": (56, 320),
                "1300": (52, 320), "1200": (48, 320), "700C": (28, 320), "450": (18, 320)}
C2_HEADER_BYTES = 7
C2_MAGIC = b"\xc0\xde\xc2"

PROGRAMS = {"codec2": (("c2enc", "c2dec"), "codec2"),
            "opus": (("opusenc", "opusdec"), "opus-tools")}


@dataclass(frozen=True)
class Baseline:
    """One classical codec setting: ``kind`` codec2 (``mode``) or opus (``kbps``)."""

    name: str
    kind: str
    mode: str = ""
    kbps: float = 0.0

    @property
    def description(self) -> str:
        if self.kind == "codec2":
            return f"codec2 mode {self.mode} (Debian c2enc/c2dec, 8 kHz)"
        return f"Opus {self.kbps:g} kbit/s VBR (opusenc/opusdec, 16 kHz)"

    @property
    def bitrate_method(self) -> str:
        if self.kind == "codec2":
            bits, spf = CODEC2_MODES[self.mode]
            return (f"codec2 {self.mode}: frames counted from the .c2 file size minus its "
                    f"{C2_HEADER_BYTES}-byte header x {bits} nominal bits per "
                    f"{spf / 8:.0f} ms frame")
        return "opus: summed Opus audio packet sizes from the Ogg segment tables (no container)"


def parse_baselines(spec: str | list[str] | None) -> list[Baseline]:
    """``"codec2-450,opus-6k"`` (or a list of names) -> baselines; UsageError
    for an unknown name."""
    if not spec:
        return []
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[Baseline] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        m2 = re.fullmatch(r"codec2-(\w+)", name, re.IGNORECASE)
        mo = re.fullmatch(r"opus-(\d+(?:\.\d+)?)k?", name, re.IGNORECASE)
        if m2 and m2.group(1).upper() in CODEC2_MODES:
            mode = m2.group(1).upper()
            out.append(Baseline(f"codec2-{mode}", "codec2", mode=mode))
        elif mo and 0.5 <= float(mo.group(1)) <= 512:
            kbps = float(mo.group(1))
            out.append(Baseline(f"opus-{kbps:g}k", "opus", kbps=kbps))
        else:
            raise UsageError(f"unknown baseline {name!r}: use codec2-MODE (MODE one of "
                             f"{', '.join(CODEC2_MODES)}) or opus-Nk (e.g. opus-6k)")
    if len({b.name for b in out}) != len(out):
        raise UsageError("a baseline is listed twice")
    return out


def check_available(baseline: Baseline) -> None:
    """Raise SoundtokError (one line, naming the Debian package) when a program
    the baseline needs is not on PATH."""
    progs, package = PROGRAMS[baseline.kind]
    missing = [p for p in progs if shutil.which(p) is None]
    if missing:
        raise SoundtokError(f"baseline {baseline.name} needs {' and '.join(missing)}, not found "
                            f"on PATH: install it with `apt-get install {package}`")


def missing_reason(baseline: Baseline) -> str | None:
    """Why ``baseline`` cannot run here, or None when it can."""
    try:
        check_available(baseline)
    except SoundtokError as e:
        return str(e)
    return None


def _run(cmd: list[str], name: str) -> None:
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    if proc.returncode != 0:
        text = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        raise SoundtokError(f"baseline {name}: {cmd[0]} failed (exit {proc.returncode})"
                            + (f": {text[-1]}" if text else ""))


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")


def ogg_packets(data: bytes) -> list[bytes]:
    """The packets of a single-stream Ogg file, joined across pages via the
    segment tables (lacing values; a value < 255 ends a packet)."""
    packets: list[bytes] = []
    pos, current = 0, b""
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS" or pos + 27 > len(data):
            raise SoundtokError("opus baseline: malformed Ogg stream (no page at byte "
                                f"{pos})")
        nseg = data[pos + 26]
        table = data[pos + 27:pos + 27 + nseg]
        body = pos + 27 + nseg
        for lace in table:
            current += data[body:body + lace]
            body += lace
            if lace < 255:
                packets.append(current)
                current = b""
        pos = body
    if current:
        packets.append(current)  # unterminated last packet
    return packets


def opus_payload_bytes(data: bytes) -> int:
    """Summed size of the Opus audio packets in an Ogg Opus file (OpusHead and
    OpusTags packets and all page headers excluded)."""
    return sum(len(p) for p in ogg_packets(data)
               if not (p.startswith(b"OpusHead") or p.startswith(b"OpusTags")))


def codec2_payload_bits(c2_bytes: int, mode: str) -> int:
    bits, _ = CODEC2_MODES[mode]
    per_frame = math.ceil(bits / 8)
    return ((c2_bytes - C2_HEADER_BYTES) // per_frame) * bits


def roundtrip(baseline: Baseline, wav: np.ndarray, sr: int = SCORE_SR) -> tuple[np.ndarray, int]:
    """Encode and decode ``wav`` (mono float at ``sr`` Hz) -> (decoded at ``sr``
    Hz, payload bits)."""
    import soundfile as sf
    import soxr

    check_available(baseline)
    x = np.asarray(wav, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="soundtok-baseline-") as tmp:
        if baseline.kind == "codec2":
            raw_in, c2, raw_out = (os.path.join(tmp, n) for n in ("in.raw", "out.c2", "out.raw"))
            x8 = soxr.resample(x, sr, 8000, quality="HQ") if sr != 8000 else x
            _to_int16(x8).tofile(raw_in)
            _run(["c2enc", baseline.mode, raw_in, c2], baseline.name)
            _run(["c2dec", baseline.mode, c2, raw_out], baseline.name)
            with open(c2, "rb") as f:
                head = f.read(3)
            if head != C2_MAGIC:
                raise SoundtokError(f"baseline {baseline.name}: c2enc wrote no .c2 header")
            bits = codec2_payload_bits(os.path.getsize(c2), baseline.mode)
            y = np.fromfile(raw_out, dtype="<i2").astype(np.float32) / 32768.0
            y = soxr.resample(y, 8000, sr, quality="HQ") if sr != 8000 else y
        else:
            wav_in, ogg, wav_out = (os.path.join(tmp, n) for n in ("in.wav", "out.opus", "out.wav"))
            sf.write(wav_in, _to_int16(x), sr, subtype="PCM_16")
            _run(["opusenc", "--quiet", "--bitrate", f"{baseline.kbps:g}", wav_in, ogg],
                 baseline.name)
            _run(["opusdec", "--quiet", "--rate", str(sr), ogg, wav_out], baseline.name)
            with open(ogg, "rb") as f:
                bits = 8 * opus_payload_bytes(f.read())
            y, got_sr = sf.read(wav_out, dtype="float32", always_2d=True)
            y = y.mean(axis=1)
            if got_sr != sr:
                y = soxr.resample(y, got_sr, sr, quality="HQ")
    return np.asarray(y, dtype=np.float32), int(bits)
