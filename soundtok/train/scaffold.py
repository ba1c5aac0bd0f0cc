"""What every trainer shares, written once: the learning-rate schedule, the
distributed set-up, the run logger (one ``metrics.csv`` schema), running means
of the logged values and the one-line error for a run without usable audio.

The trainers (:mod:`.codec_trainer`, :mod:`.llmcodec_trainer`,
:mod:`.llm_trainer`) keep only their model, loss and data; checkpoints are
:mod:`.checkpoint`'s, training clips :mod:`.data`'s.

**Learning rate.**  ``lr(step) = base_lr * lr_factor(step, total, warmup)``:
a linear warm-up from ``base_lr / warmup`` at step 1 to ``base_lr`` at step
``warmup``, then a cosine decay from ``base_lr`` to ``0.1 * base_lr`` at step
``total`` (steps count from 1).

**metrics.csv** (long format, one value per row, appended to on resume)::

    time,stage,step,split,metric,value
    1733040000.0,vae,50,train,loss,0.8123

``time`` is Unix seconds; ``stage`` the trainer's stage (``vae``,
``tokenizer``, ``decoder``, ``vocoder`` for the built-in codec; ``llmcodec``; ``llm``);
``split`` is ``train`` or ``val``; values have 6 significant digits.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["lr_factor", "set_lr", "Distributed", "init_distributed", "RunLogger", "Means",
           "no_audio_error", "METRICS_COLUMNS"]

METRICS_COLUMNS = ("time", "stage", "step", "split", "metric", "value")


def lr_factor(step: int, total: int, warmup: int) -> float:
    """The schedule's factor at ``step`` (1-based): linear warm-up over ``warmup``
    steps, then cosine decay to 0.1 at ``total`` (see the module docstring)."""
    warm = min(1.0, step / max(1, warmup))
    progress = min(1.0, max(0, step - warmup) / max(1, total - warmup))
    return warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor | None, params, step: int,
                   max_norm: float = 1.0, shown_loss: float | None = None) -> torch.Tensor:
    """One update: gradients of ``loss`` (None: already accumulated), clipped to
    ``max_norm``, a stop on a non-finite loss or gradient norm
    (:func:`.health.check_finite`), then ``opt.step()`` and a stop on weights it made
    NaN or absurdly large (:func:`.health.check_weights`). Returns the gradient norm
    before clipping. ``shown_loss`` is the loss the health check reports (default ``loss``)."""
    from .health import check_finite, check_weights

    params = list(params)
    if loss is not None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    check_finite(step, loss=loss if shown_loss is None else shown_loss, gradient_norm=norm)
    opt.step()
    check_weights(step, params)
    return norm


def set_lr(opt: torch.optim.Optimizer, factor: float, base: float | None = None) -> float:
    """Every param group's ``lr`` = its ``base_lr`` x ``factor``; ``base`` (when
    given) becomes every group's ``base_lr`` first, else a group without one
    keeps its ``lr`` as base.  Returns the first group's new ``lr``."""
    for g in opt.param_groups:
        if base is not None:
            g["base_lr"] = base
        g.setdefault("base_lr", g["lr"])
        g["lr"] = g["base_lr"] * factor
    return opt.param_groups[0]["lr"]


@dataclass
class Distributed:
    """This process's place in a (``torchrun``) run: ``rank`` of ``world``, its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        """Leave the process group (a clean gloo shutdown, no abort at exit)."""
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def init_distributed(device: str) -> Distributed:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1;
    nccl on CUDA, gloo otherwise); on CUDA each process takes GPU ``LOCAL_RANK``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    dev = torch.device(device if not device.startswith("cuda") or world == 1
                       else f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    if dev.type == "cuda" and world > 1:
        torch.cuda.set_device(dev)
    return Distributed(rank, world, dev)


class RunLogger:
    """``metrics.csv`` (schema in the module docstring), ``train.log``, optional
    TensorBoard, all in ``run_dir``; ``echo`` also gets every info line.  Made
    with ``enabled=False`` (the other ranks of a distributed run) it writes nothing."""

    def __init__(self, run_dir: Path, echo: Callable[[str], None] | None = None,
                 tensorboard: bool = False, enabled: bool = True) -> None:
        self.echo, self.enabled, self.tb = echo, enabled, None
        self._csv_f = self._log_f = None
        if not enabled:
            return
        run_dir = Path(run_dir)
        path = run_dir / "metrics.csv"
        new = not path.exists()
        self._csv_f = open(path, "a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._csv_f)
        if new:
            self._csv.writerow(METRICS_COLUMNS)
        self._log_f = open(run_dir / "train.log", "a", encoding="utf-8")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    def metrics(self, stage: str, step: int, split: str, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        now = f"{time.time():.1f}"
        for k, v in values.items():
            self._csv.writerow([now, stage, step, split, k, f"{float(v):.6g}"])
            if self.tb:
                self.tb.add_scalar(f"{stage}/{split}/{k}", float(v), step)
        self._csv_f.flush()

    def info(self, msg: str) -> None:
        if not self.enabled:
            return
        self._log_f.write(time.strftime("%H:%M:%S ") + msg + "\n")
        self._log_f.flush()
        if self.echo:
            self.echo(msg)

    def line(self, stage: str, step: int, split: str, values: dict[str, Any], head: str) -> None:
        """Log ``values`` to metrics.csv and, after ``head``, as one info line."""
        self.metrics(stage, step, split, values)
        self.info(head + " " + " ".join(f"{k}={float(v):.4g}" for k, v in values.items()))

    def close(self) -> None:
        for f in (self._csv_f, self._log_f):
            if f is not None:
                f.close()
        if self.tb is not None:
            self.tb.close()
        self._csv_f = self._log_f = self.tb = None


class Means:
    """Running sums of logged values (tensors or numbers); :meth:`take` returns
    their means since the last take and starts again."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0
        self.t0 = time.time()

    def add(self, values: dict[str, Any]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach() if hasattr(v, "detach") else v)

    def step(self) -> None:
        self.n += 1

    def take(self) -> dict[str, float]:
        """Means per step, plus ``s_per_step`` (wall time)."""
        n = max(1, self.n)
        out = {k: v / n for k, v in self.sums.items()}
        out["s_per_step"] = (time.time() - self.t0) / n
        self.sums, self.n, self.t0 = {}, 0, time.time()
        return out


def no_audio_error(specs: list[str], errors: list[str]):
    """The one-line AudioError for a run none of whose inputs could be read."""
    from ..errors import AudioError

    first = f": {errors[0]}" if errors else ""
    return AudioError(f"no usable training audio in {', '.join(map(str, specs))} "
                      f"({len(errors)} input(s) failed){first}")
