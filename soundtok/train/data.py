"""Training data for the codec: clips held in memory, random crops, validation crops.

Clips are loaded once (resampled to the codec rate, mono) through
:mod:`soundtok.audio`, so every input form the CLI accepts (files, folders,
globs, manifests) works for training. A training crop is cut from a random
point of a random clip (chosen in proportion to duration) and, where the clip
ends early, continues into further random clips -- short clips such as spoken
digits become short "strings" rather than mostly silence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Clip:
    id: str
    wav: torch.Tensor  # (N,) float32 at the codec sample rate


def load_clips(specs: list[str], sample_rate: int, log=None) -> tuple[list[Clip], list[str]]:
    """Load every audio source named by ``specs``. Returns ``(clips, errors)``;
    unreadable files are reported in ``errors`` and skipped."""
    from ..audio import load_audio
    from ..errors import AudioError
    from ..inputs import plan_sources

    clips, errors = [], []
    for src in plan_sources(specs).sources():
        try:
            wav = load_audio(src.open(), sample_rate)
        except AudioError as e:
            errors.append(str(e))
            continue
        clips.append(Clip(src.id, wav))
        if log and len(clips) % 500 == 0:
            log(f"loaded {len(clips)} clips")
    return clips, errors


class CropSampler:
    """Draws batches ``(B, crop)`` of audio from ``clips`` with a private RNG.

    ``rank`` and ``world`` (distributed training) give each process its own
    random stream, so ranks see different crops. ``last_ids`` records which
    clips the latest batch used (for tests and logs).
    """

    def __init__(self, clips: list[Clip], crop: int, batch: int, seed: int = 0,
                 rank: int = 0, gain_db: float = 6.0):
        if not clips:
            raise ValueError("no training clips")
        self.clips, self.crop, self.batch, self.gain_db = clips, crop, batch, gain_db
        lengths = torch.tensor([max(1, c.wav.shape[0]) for c in clips], dtype=torch.float64)
        self.weights = lengths / lengths.sum()
        self.gen = torch.Generator().manual_seed(seed * 7919 + rank)
        self.last_ids: list[str] = []

    def _pick(self) -> int:
        return int(torch.multinomial(self.weights, 1, generator=self.gen))

    def one(self) -> torch.Tensor:
        out = torch.zeros(self.crop)
        i = self._pick()
        wav = self.clips[i].wav
        pos = int(torch.randint(0, max(1, wav.shape[0] - self.crop // 4), (1,), generator=self.gen))
        filled = 0
        while filled < self.crop:
            self.last_ids.append(self.clips[i].id)
            piece = wav[pos:pos + self.crop - filled]
            out[filled:filled + piece.shape[0]] = piece
            filled += piece.shape[0]
            i = self._pick()
            wav, pos = self.clips[i].wav, 0
        g = (torch.rand(1, generator=self.gen) * 2 - 1) * self.gain_db
        return out * (10 ** (g / 20))

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        self.last_ids = []
        return torch.stack([self.one() for _ in range(self.batch)])


def validation_batches(clips: list[Clip], crop: int, batch: int, max_items: int = 64):
    """Deterministic validation crops: the first ``crop`` samples of up to
    ``max_items`` clips (zero-padded), in batches of ``batch``."""
    items = []
    for c in clips[:max_items]:
        w = c.wav[:crop]
        items.append(torch.nn.functional.pad(w, (0, crop - w.shape[0])))
    for i in range(0, len(items), batch):
        yield torch.stack(items[i:i + batch])
