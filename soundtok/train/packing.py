"""Short training clips packed into 30 s teacher windows.

Whisper's encoder only gives its trained features on 30 s windows, and a
window costs the same whatever it holds, so encoding a 1 s clip alone costs
as much as 30 s of audio. Clips are therefore concatenated, in input order,
with ``gap`` samples of silence after each, into windows of at most 30 s;
the *packed window* is what the codec then trains on, so the teacher
features are exactly Whisper's features of the audio the codec sees (with 30 s
of context, as Whisper itself hears long recordings). Clips longer than a
window stay whole (the teacher encodes them in overlapping windows).

Every clip starts on a multiple of ``align`` samples (the codec's token hop)
so teacher frames and token frames line up exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..teacher.whisper import WINDOW
from .data import Clip


@dataclass
class PackedClip(Clip):
    """A training clip made of several source clips: ``members`` holds
    ``(id, start sample, length)`` of each inside ``wav``."""

    members: list[tuple[str, int, int]] = field(default_factory=list)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def pack_clips(clips: list[Clip], align: int, gap_seconds: float = 0.1,
               window: int = WINDOW, sample_rate: int = 16000) -> list[PackedClip]:
    """Pack ``clips`` (in order) into windows of at most ``window`` samples."""
    gap = _round_up(int(gap_seconds * sample_rate), align)
    out: list[PackedClip] = []
    pending: list[tuple[Clip, int]] = []
    used = 0

    def flush() -> None:
        nonlocal pending, used
        if not pending:
            return
        pieces, members, pos = [], [], 0
        for c, span in pending:
            pieces.append(F.pad(c.wav, (0, span - c.wav.shape[0])))
            members.append((c.id, pos, int(c.wav.shape[0])))
            pos += span
        wav = torch.cat(pieces)
        pid = pending[0][0].id if len(pending) == 1 else f"pack:{pending[0][0].id}+{len(pending) - 1}"
        out.append(PackedClip(pid, wav, members=members))
        pending, used = [], 0

    for c in clips:
        span = _round_up(max(1, c.wav.shape[0]), align) + gap
        if span > window:  # long clip: its own item, encoded in overlapping windows
            flush()
            pending = [(c, _round_up(c.wav.shape[0], align))]
            flush()
            continue
        if used + span > window:
            flush()
        pending.append((c, span))
        used += span
    flush()
    return out
