"""Training clips for the codecs: one clip dataset held in memory, random crops, validation crops.

Clips are loaded once (resampled to the codec rate, mono) through
:mod:`soundtok.inputs` and :mod:`soundtok.audio`, so every input form the CLI
accepts (files, folders, globs, manifests) works for training; a manifest's
``label`` stays with its clip.  Two ways to crop them:

* :class:`CropSampler` (the built-in codec): a crop is cut from a random point
  of a random clip (chosen in proportion to duration) and, where the clip ends
  early, continues into further random clips -- short clips such as spoken
  digits become short "strings" rather than mostly silence;
* :class:`LabelledCropSampler` (the LLM-Codec): one crop per clip, so that a
  crop keeps its clip's label (zero-padded when the clip is shorter).

:class:`UtteranceSampler` draws whole clips that have a transcript, with their
character targets (the codec's text head is trained with CTC on them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Clip:
    id: str
    wav: torch.Tensor  # (N,) float32 at the codec sample rate
    label: str | None = None  # from a manifest
    transcript: str | None = None  # normalised English transcript (soundtok.train.text)


def load_clips(specs: list[str], sample_rate: int, log=None) -> tuple[list[Clip], list[str]]:
    """Load every audio source named by ``specs``. Returns ``(clips, errors)``;
    unreadable files are reported in ``errors`` and skipped (an input that
    names nothing is an AudioError)."""
    from ..audio import load_audio
    from ..errors import AudioError
    from ..inputs import plan_sources
    from .text import transcript_of

    clips, errors = [], []
    for src in plan_sources(specs).sources():
        try:
            wav = load_audio(src.open(), sample_rate)
        except AudioError as e:
            errors.append(str(e))
            continue
        clips.append(Clip(src.id, wav, src.label, transcript_of(src.text, src.meta)))
        if log and len(clips) % 500 == 0:
            log(f"loaded {len(clips)} clips")
    return clips, errors


class CropSampler:
    """Draws batches ``(B, crop)`` of audio from ``clips`` with a private RNG.

    ``rank`` and ``world`` (distributed training) give each process its own
    random stream, so ranks see different crops. ``last_ids`` records which
    clips the latest batch used (for tests and logs).

    With ``features`` (one ``(D, ceil(N_i / align))`` tensor per clip, e.g. teacher
    features on the token grid), crops start on multiples of ``align`` samples,
    every piece taken from a clip is padded with silence to a multiple of
    ``align``, and ``last_features`` holds the batch's features ``(B, D, crop/align)``
    (zeros where the crop is padding). ``crop`` must then be a multiple of ``align``.
    ``frame_labels`` (with ``features``: one ``(ceil(N_i / align),)`` int64 tensor
    per clip, e.g. label indices, -1 for none) are cut the same way into
    ``last_frame_labels (B, crop/align)`` (-1 where the crop is padding).
    ``weights`` (one per clip) replace the durations as the odds of picking a clip.
    """

    def __init__(self, clips: list[Clip], crop: int, batch: int, seed: int = 0,
                 rank: int = 0, gain_db: float = 6.0, features: list[torch.Tensor] | None = None,
                 align: int = 1, frame_labels: list[torch.Tensor] | None = None,
                 weights: list[float] | None = None):
        if not clips:
            raise ValueError("no training clips")
        if features is not None and (len(features) != len(clips) or crop % align):
            raise ValueError("features need one tensor per clip and a crop that is a multiple of align")
        if frame_labels is not None and (features is None or len(frame_labels) != len(clips)):
            raise ValueError("frame labels need features and one tensor per clip")
        if weights is not None and (len(weights) != len(clips) or min(weights) < 0 or sum(weights) <= 0):
            raise ValueError("weights need one non-negative number per clip, not all zero")
        self.clips, self.crop, self.batch, self.gain_db = clips, crop, batch, gain_db
        self.features, self.align = features, align if features is not None else 1
        self.frame_labels = frame_labels
        self.last_features: torch.Tensor | None = None
        self.last_frame_labels: torch.Tensor | None = None
        self._feats: list[torch.Tensor | None] = []
        self._labs: list[torch.Tensor] = []
        if weights is None:
            weights = [max(1, c.wav.shape[0]) for c in clips]
        w = torch.tensor(weights, dtype=torch.float64)
        self.weights = w / w.sum()
        self.gen = torch.Generator().manual_seed(seed * 7919 + rank)
        self.last_ids: list[str] = []

    def _pick(self) -> int:
        return int(torch.multinomial(self.weights, 1, generator=self.gen))

    def one(self) -> torch.Tensor:
        a = self.align
        out = torch.zeros(self.crop)
        feats = (torch.zeros(self.features[0].shape[0], self.crop // a)
                 if self.features is not None else None)
        labs = torch.full((self.crop // a,), -1, dtype=torch.long) if self.frame_labels else None
        i = self._pick()
        wav = self.clips[i].wav
        pos = int(torch.randint(0, max(1, wav.shape[0] - self.crop // 4), (1,), generator=self.gen))
        pos -= pos % a
        filled = 0
        while filled < self.crop:
            self.last_ids.append(self.clips[i].id)
            piece = wav[pos:pos + self.crop - filled]
            out[filled:filled + piece.shape[0]] = piece
            n = -(-piece.shape[0] // a) * a  # the piece's span, padded to whole frames
            if feats is not None:
                f = self.features[i][:, pos // a:(pos + n) // a]
                feats[:, filled // a:filled // a + f.shape[1]] = f.float()
            if labs is not None:
                lab = self.frame_labels[i][pos // a:(pos + n) // a]
                labs[filled // a:filled // a + lab.shape[0]] = lab
            filled += n or a
            i = self._pick()
            wav, pos = self.clips[i].wav, 0
        g = (torch.rand(1, generator=self.gen) * 2 - 1) * self.gain_db
        self._feats.append(feats)
        if labs is not None:
            self._labs.append(labs)
        return out * (10 ** (g / 20))

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        self.last_ids, self._feats, self._labs = [], [], []
        wav = torch.stack([self.one() for _ in range(self.batch)])
        self.last_features = torch.stack(self._feats) if self.features is not None else None
        self.last_frame_labels = torch.stack(self._labs) if self.frame_labels else None
        return wav


def validation_batches(clips: list[Clip], crop: int, batch: int, max_items: int = 64):
    """Deterministic validation crops: the first ``crop`` samples of up to
    ``max_items`` clips (zero-padded), in batches of ``batch``."""
    items = []
    for c in clips[:max_items]:
        w = c.wav[:crop]
        items.append(F.pad(w, (0, crop - w.shape[0])))
    for i in range(0, len(items), batch):
        yield torch.stack(items[i:i + batch])


class LabelledCropSampler:
    """Batches of ``(wav (B, crop), labels)``: a random crop of a random clip
    (zero-padded when shorter), random gain; private seeded RNG."""

    def __init__(self, clips: list[Clip], crop: int, batch: int, seed: int = 0,
                 gain_db: float = 6.0):
        if not clips:
            raise ValueError("no training clips")
        self.clips, self.crop, self.batch, self.gain_db = clips, crop, batch, gain_db
        self.rng = random.Random(seed)

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, list[str | None]]:
        wavs, labels = [], []
        for _ in range(self.batch):
            c = self.clips[self.rng.randrange(len(self.clips))]
            start = self.rng.randrange(max(1, c.wav.shape[0] - self.crop + 1))
            piece = c.wav[start:start + self.crop]
            gain = 10 ** (self.rng.uniform(-self.gain_db, self.gain_db) / 20)
            wavs.append(F.pad(piece, (0, self.crop - piece.shape[0])) * gain)
            labels.append(c.label)
        return torch.stack(wavs), labels


@dataclass
class Utterances:
    """A batch of whole clips: ``wav (B, N)`` zero-padded to a multiple of ``align``,
    ``frames (B,)`` token frames that hold audio, ``targets (sum L,)`` character ids
    of every transcript in order, ``target_lengths (B,)``."""

    wav: torch.Tensor
    frames: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    ids: list[str]

    def to(self, device) -> Utterances:
        self.wav = self.wav.to(device)
        return self


class UtteranceSampler:
    """Batches of :class:`Utterances` drawn (uniformly, private seeded RNG) from the
    clips that have a transcript and last at most ``max_samples``, random gain."""

    def __init__(self, clips: list[Clip], batch: int, max_samples: int, align: int,
                 seed: int = 0, rank: int = 0, gain_db: float = 6.0):
        from .text import encode_transcript

        self.items = [(c.id, c.wav, encode_transcript(c.transcript)) for c in clips
                      if c.transcript and 0 < c.wav.shape[0] <= max_samples]
        if not self.items:
            raise ValueError("no clip has a transcript (English speech with a manifest 'text') "
                             f"and lasts at most {max_samples} samples")
        self.batch, self.align, self.gain_db = batch, align, gain_db
        self.gen = torch.Generator().manual_seed(seed * 7919 + rank + 17)

    def __iter__(self):
        return self

    def __next__(self) -> Utterances:
        pick = torch.randint(0, len(self.items), (self.batch,), generator=self.gen).tolist()
        items = [self.items[i] for i in pick]
        a = self.align
        n = max(-(-w.shape[0] // a) * a for _, w, _ in items)
        gains = 10 ** (((torch.rand(self.batch, generator=self.gen) * 2 - 1) * self.gain_db) / 20)
        wav = torch.stack([F.pad(w, (0, n - w.shape[0])) * g for (_, w, _), g in zip(items, gains)])
        return Utterances(
            wav=wav,
            frames=torch.tensor([-(-w.shape[0] // a) for _, w, _ in items]),
            targets=torch.cat([t for _, _, t in items]),
            target_lengths=torch.tensor([t.shape[0] for _, _, t in items]),
            ids=[i for i, _, _ in items])
