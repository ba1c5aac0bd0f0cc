"""The frozen Whisper encoder as a semantic teacher, through CTranslate2.

Input: mono float audio at 16 kHz. Features: faster-whisper's log-mel
(80 bands, 25 ms windows, hop 160 = 100 fps, Whisper's own normalisation),
encoded by ``ctranslate2.models.Whisper.encode`` into ``(D, T)`` at **50 Hz**
(``D`` = 512 for Whisper base, 384 for tiny.en); frame ``k`` is centred on
sample ``320 k``.

Whisper's encoder was trained on 30 s windows only: CTranslate2 accepts any
input of at most 3000 mel frames, but features of a clip encoded alone, or
padded to less than 30 s, differ from the 30 s features (measured in
``bench/teacher_features.py``), so every window is padded to exactly 30 s.
Short clips are packed into shared windows before they reach the teacher
(:mod:`.packing`); longer audio is cut into 30 s windows that overlap by 2 s,
keeping 1 s of context at each inner edge.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import ModelError

SAMPLE_RATE = 16000
HOP = 320  # audio samples per teacher frame (50 Hz)
WINDOW = 30 * SAMPLE_RATE  # samples per encoder window
WINDOW_FRAMES = WINDOW // HOP  # 1500 teacher frames
OVERLAP_FRAMES = 50  # 1 s of context kept out at each inner window edge


class WhisperTeacher:
    """``features(wav (N,) @16 kHz) -> (D, ceil(N / 320))`` float32 at 50 Hz."""

    rate = SAMPLE_RATE / HOP

    def __init__(self, model_dir: str | Path, name: str = "whisper", threads: int = 1,
                 compute_type: str = "int8"):
        self.dir, self.name = Path(model_dir), name
        model_bin = self.dir / "model.bin"
        if not model_bin.is_file() or model_bin.stat().st_size == 0:
            raise ModelError(f"teacher {name}: no weights in {self.dir} (model.bin missing or empty)")
        try:
            import ctranslate2
            from faster_whisper.feature_extractor import FeatureExtractor
        except ImportError as e:
            raise ModelError(f"teacher {name} needs ctranslate2 and faster-whisper "
                             f"(pip install 'soundtok[train]'): {e}") from None
        self._ct2 = ctranslate2
        try:
            self.model = ctranslate2.models.Whisper(str(self.dir), device="cpu",
                                                    compute_type=compute_type,
                                                    intra_threads=max(1, threads))
        except (RuntimeError, ValueError, OSError) as e:
            reason = (str(e).strip().splitlines() or ["unreadable"])[-1][:160]
            raise ModelError(f"teacher {name}: weights in {self.dir} are corrupt or "
                             f"unreadable ({reason})") from None
        self.fe = FeatureExtractor(feature_size=self.model.n_mels)
        self._id: str | None = None
        self.dim: int | None = None

    @property
    def id(self) -> str:
        """``name@<sha256 of model.bin, 16 hex>``: identifies features this teacher makes."""
        if self._id is None:
            self._id = f"{self.name}@{weights_sha256(self.dir)[:16]}"
        return self._id

    def encode_window(self, wav: np.ndarray) -> np.ndarray:
        """One window: ``wav (N,)`` with ``N <= 480000`` -> ``(D, ceil(N / 320))``.

        The audio is zero-padded to 30 s, as Whisper was trained."""
        n = int(wav.shape[0])
        if n > WINDOW:
            raise ValueError(f"a teacher window holds at most {WINDOW} samples, got {n}")
        x = np.zeros(WINDOW, np.float32)
        x[:n] = wav
        mel = self.fe(x, padding=0)[:, : 2 * WINDOW_FRAMES]
        try:
            out = self.model.encode(self._ct2.StorageView.from_array(np.ascontiguousarray(mel[None])),
                                    to_cpu=True)
        except RuntimeError as e:
            raise ModelError(f"teacher {self.name} failed to encode: {e}") from None
        feats = np.asarray(out)[0]  # (1500, D)
        if self.dim is None:
            self.dim = int(feats.shape[-1])
        if not np.isfinite(feats).all():
            raise ModelError(f"teacher {self.name} produced non-finite features "
                             f"(are the weights in {self.dir} corrupt?)")
        return np.ascontiguousarray(feats[: -(-n // HOP)].T)

    def features(self, wav: np.ndarray) -> np.ndarray:
        """Any length: ``wav (N,)`` -> ``(D, ceil(N / 320))`` from overlapping 30 s windows."""
        wav = np.asarray(wav, np.float32)
        n = wav.shape[0]
        total = -(-n // HOP)
        if n <= WINDOW:
            return self.encode_window(wav)
        step = WINDOW_FRAMES - 2 * OVERLAP_FRAMES
        parts, start = [], 0
        while True:
            f = self.encode_window(wav[start * HOP: start * HOP + WINDOW])
            last = start + WINDOW_FRAMES >= total
            lo = 0 if start == 0 else OVERLAP_FRAMES
            hi = f.shape[1] if last else WINDOW_FRAMES - OVERLAP_FRAMES
            parts.append(f[:, lo:hi])
            if last:
                break
            start += step
        return np.concatenate(parts, axis=1)


def weights_sha256(model_dir: str | Path) -> str:
    h = hashlib.sha256()
    with open(Path(model_dir) / "model.bin", "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
