"""The sound-token codec (VAE + VQ tokenizer + flow-matching decoder + vocoder).

``load_codec(spec)`` resolves ``None``/``"default"`` to the codec shipped inside
the package, or loads a directory written by ``save_pretrained``. Heavy imports
(torch) happen on first use, not on ``import soundtok``.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_CODEC_DIR = Path(__file__).parent / "default"


def default_codec_path() -> Path:
    return DEFAULT_CODEC_DIR


def load_codec(spec: str | None = None, device: str = "cpu"):
    """Load a codec: ``None`` or ``"default"`` -> the packaged default; otherwise a
    directory (or its ``config.json`` / ``model.safetensors``)."""
    from ..errors import ModelError
    from .model import SoundCodec

    path = DEFAULT_CODEC_DIR if spec in (None, "", "default") else Path(spec)
    if not path.exists():
        raise ModelError(f"no such codec: {spec}")
    if spec in (None, "", "default") and not (path / "model.safetensors").is_file():
        raise ModelError("the default codec is not installed in this copy of soundtok "
                         "(build it with `make default-codec` or pass --codec DIR)")
    return SoundCodec.from_pretrained(path, device=device)
