"""Speaker similarity: cosine of GE2E d-vectors from ``resemblyzer``.

resemblyzer's wheel ships its pretrained speaker encoder (``pretrained.pt``,
17 MB: 40-band mel input at 16 kHz, 3-layer LSTM, 256-dim output).  soundtok
builds the same network and loads that file with torch's weights-only loader
(``weights_only=True``; resemblyzer's own loader unpickles without that guard),
then uses resemblyzer's preprocessing (volume normalisation to -30 dBFS,
silences longer than ~0.2 s removed by webrtcvad) and its utterance embedding
(1.6 s windows at 1.3 per second, averaged, L2-normalised).  Nothing is
downloaded.

Embeddings are non-negative and unit-length, so the cosine lies in [0, 1];
same-speaker pairs of clean speech typically score above ~0.8.
"""

from __future__ import annotations

import functools
import math

import numpy as np

SPEAKER_SR = 16000
MIN_VOICED_S = 0.2  # below this much voiced audio (after VAD) there is no embedding
_INSTALL = "pip install 'soundtok[eval]' (resemblyzer, webrtcvad-wheels, librosa)"


@functools.lru_cache(maxsize=1)
def speaker_status() -> tuple[bool, str]:
    """(available, one line).  Needs resemblyzer with its bundled weights,
    webrtcvad (e.g. from ``webrtcvad-wheels``) and librosa."""
    missing = []
    for module, package in (("webrtcvad", "webrtcvad-wheels"), ("librosa", "librosa"),
                            ("resemblyzer", "resemblyzer")):
        try:
            _quiet_import(module)
        except Exception:
            missing.append(package)
    if missing:
        return False, (f"speaker similarity skipped: {', '.join(missing)} not installed "
                       f"({_INSTALL})")
    if not _weights_path().is_file():
        return False, f"speaker similarity skipped: resemblyzer's weights are missing ({_INSTALL})"
    return True, ("speaker similarity: cosine of resemblyzer GE2E d-vectors (weights from its "
                  "wheel, loaded with weights_only=True)")


def _quiet_import(module: str):
    """Import ``module``; resemblyzer imports a deprecated scipy namespace, and that
    warning is not the user's business."""
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module(module)


def _weights_path():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("resemblyzer")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


class SpeakerEncoder:
    """resemblyzer's GE2E speaker encoder on CPU, weights loaded safely.

    ``embed(wav)``: mono float array at 16 kHz -> unit 256-dim d-vector, or
    None when less than :data:`MIN_VOICED_S` of voiced audio is found."""

    def __init__(self) -> None:
        import torch

        _quiet_import("resemblyzer")
        from resemblyzer import hparams as hp
        from resemblyzer.voice_encoder import VoiceEncoder

        class _Encoder(VoiceEncoder):
            def __init__(self, path) -> None:  # resemblyzer's network, loaded safely
                torch.nn.Module.__init__(self)
                self.lstm = torch.nn.LSTM(hp.mel_n_channels, hp.model_hidden_size,
                                          hp.model_num_layers, batch_first=True)
                self.linear = torch.nn.Linear(hp.model_hidden_size, hp.model_embedding_size)
                self.relu = torch.nn.ReLU()
                self.device = torch.device("cpu")
                state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
                self.load_state_dict({k: v for k, v in state.items()
                                      if k.split(".")[0] in ("lstm", "linear")})
                self.eval()

        self._enc = _Encoder(_weights_path())

    def embed(self, wav: np.ndarray) -> np.ndarray | None:
        from resemblyzer import preprocess_wav

        x = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
        if not x.size or not np.abs(x).max():
            return None
        x = preprocess_wav(x)
        if len(x) < MIN_VOICED_S * SPEAKER_SR:
            return None
        e = self._enc.embed_utterance(x.astype(np.float32))
        return e if np.all(np.isfinite(e)) else None


def cosine(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Cosine similarity; NaN when either embedding is missing."""
    if a is None or b is None:
        return math.nan
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


__all__ = ["SpeakerEncoder", "cosine", "speaker_status", "MIN_VOICED_S"]
