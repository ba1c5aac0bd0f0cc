"""Training code (codec and LLM adapters). Imported only by ``train-codec`` and
``finetune-llm``; ``import soundtok`` never loads it.

:func:`train` runs ``soundtok train-codec``: the :class:`CodecTrainingRequest`
(the command's flags) goes to the trainer of its codec architecture -- one
entry per architecture in :func:`trainers` (a codec without one cannot be
trained by the command).  What all trainers share is :mod:`.scaffold`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CodecTrainingRequest", "trainers", "architectures", "train"]


@dataclass
class CodecTrainingRequest:
    """What ``soundtok train-codec`` was asked (a trainer refuses what does not apply to it)."""

    train: list[str]
    out: str
    arch: str
    val: list[str] = field(default_factory=list)
    stage: str = "all"
    steps: int | None = None  # every stage (one-stage trainers: all steps)
    stage_steps: dict = field(default_factory=lambda: {"vae": 3000, "tokenizer": 5000, "decoder": 5000,
                                                       "vocoder": 5000})
    batch: int = 16
    lr: float = 1e-3
    save_every: int = 500
    val_every: int | None = None
    seed: int = 0
    resume: bool = False
    init_from: str | None = None
    codec_config: dict = field(default_factory=dict)
    vocoder_input: str = "mel"
    tensorboard: bool = False
    llm: str | None = None
    crop_seconds: float | None = None
    freeze_vocoder: bool = False
    teacher_cache: str | None = None  # teacher-feature cache directory (default OUT/teacher)
    device: str = "cpu"


def _soundtok_fm(request: CodecTrainingRequest, **callbacks) -> Path:
    from .codec_trainer import train_from_request

    return train_from_request(request, **callbacks)


def _llm_codec(request: CodecTrainingRequest, **callbacks) -> Path:
    from .llmcodec_trainer import train_from_request

    return train_from_request(request, **callbacks)


def trainers() -> dict[str, Callable[..., Path]]:
    """Codec architecture -> its trainer (the default codec's first): called as
    ``trainer(request, echo=..., on_progress=..., notice=...)``."""
    from .. import codec, llmcodec

    return {codec.ARCHITECTURE: _soundtok_fm, llmcodec.ARCHITECTURE: _llm_codec}


def architectures() -> list[str]:
    """The codec architectures ``train-codec`` can train."""
    return list(trainers())


def train(request: CodecTrainingRequest, echo: Callable[[str], None] | None = None,
          on_progress: Callable[[int, int], None] | None = None,
          notice: Callable[[str], None] | None = None) -> Path:
    """Train a codec of ``request.arch``; returns the final model directory.

    ``echo``: log lines; ``on_progress(step, total)``: after each step; ``notice``: lines a
    user should see even without ``-v`` (e.g. a library's licence notice)."""
    from ..errors import UsageError

    run = trainers().get(request.arch)
    if run is None:
        raise UsageError(f"--arch {request.arch!r}: choose {', '.join(architectures())}")
    return run(request, echo=echo, on_progress=on_progress, notice=notice)
