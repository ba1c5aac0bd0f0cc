"""The sound-token codec (VAE + VQ tokenizer + flow-matching decoder + vocoder).

:func:`load` reads a directory written by ``save_pretrained``; the registry
(:func:`soundtok.registry.load_codec`) calls it for ``config.json`` files whose
``architecture`` is :data:`ARCHITECTURE`, and for the codec shipped inside the
package (``DEFAULT_CODEC_DIR``, ``--codec default``). Heavy imports (torch)
happen on first use, not on ``import soundtok``.
"""

from __future__ import annotations

from pathlib import Path

from .config import ARCHITECTURE

DEFAULT_CODEC_DIR = Path(__file__).parent / "default"

__all__ = ["ARCHITECTURE", "DEFAULT_CODEC_DIR", "default_codec_path", "load"]


def default_codec_path() -> Path:
    return DEFAULT_CODEC_DIR


def load(path: str | Path, device: str = "cpu"):
    """A :class:`~soundtok.codec.model.SoundCodec` from ``path`` (a directory, or
    its ``config.json`` / ``model.safetensors``)."""
    from .model import SoundCodec

    return SoundCodec.from_pretrained(path, device=device)
