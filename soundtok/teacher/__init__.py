"""Frozen semantic teachers: pretrained speech encoders whose features the codec's
tokens learn to predict (semantic distillation, as in X-Codec and SpeechTokenizer).

* :mod:`.whisper` -- the Whisper encoder (CTranslate2), features ``(D, T)`` at 50 Hz;
* :mod:`.align` -- resampling those features onto the codec's frame grid.

Teachers are named in a codec's ``config.json`` (``"teacher": "whisper-base"``);
:data:`TEACHERS` lists the names and feature sizes (what a codec config is
checked against). Only training loads a teacher -- tokenizing and detokenizing
never do; how training feeds it (clips packed into 30 s windows, features cached
per training set) is training code: :mod:`soundtok.train.packing` and
:mod:`soundtok.train.teacher_cache`. ctranslate2 and faster-whisper are
imported on first use (the ``train`` extra).
"""

from __future__ import annotations

# name -> (soundtok.whisper model, feature channels D)
TEACHERS: dict[str, tuple[str, int]] = {
    "whisper-base": ("base", 512),
    "whisper-tiny.en": ("tiny.en", 384),
}


def teacher_dim(name: str) -> int:
    """Feature channels of teacher ``name`` (ModelError for an unknown name)."""
    from ..errors import ModelError

    if name not in TEACHERS:
        raise ModelError(f"unknown teacher {name!r} (known: {', '.join(TEACHERS)})")
    return TEACHERS[name][1]


def load_teacher(name: str, threads: int = 1):
    """The frozen teacher ``name`` as a :class:`~.whisper.WhisperTeacher`; one-line
    :class:`~soundtok.errors.ModelError` when its weights are missing or corrupt."""
    from ..whisper import whisper_dir
    from .whisper import WhisperTeacher

    teacher_dim(name)
    return WhisperTeacher(whisper_dir(TEACHERS[name][0]), name=name, threads=threads)
