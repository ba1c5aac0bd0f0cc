"""Runs and their health: what every trainer calls, in one line each.

* :func:`claim_run_dir` -- a run folder that already holds a run (checkpoints,
  ``latest.json`` or ``final/``) is refused without ``--resume``; the folder is
  locked (``flock`` on the folder) against a second training process.
* :func:`check_finite` -- a non-finite loss or gradient norm stops training
  (one line naming the step, exit 1) before the optimizer step, so the weights
  stay those of the last good step and no NaN weights are ever written.
* :func:`check_weights` -- after the optimizer step: weights that became NaN or
  so large that their next use overflows (the last step of a diverging run, which
  no later loss would catch) stop training the same way.
* :func:`assert_finite_weights` -- called before a checkpoint
  (:func:`.checkpoint.save_checkpoint`) or ``final/`` is written: NaN weights
  are refused.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from ..errors import SoundtokError, UsageError

__all__ = ["TrainingDiverged", "assert_finite_weights", "check_finite", "check_weights", "claim_run_dir",
           "holds_run", "WEIGHT_LIMIT"]


def holds_run(run_dir: Path) -> bool:
    """True when ``run_dir`` holds what a new run would overwrite: checkpoints, ``latest.json``, ``final/``."""
    run_dir = Path(run_dir)
    return run_dir.is_dir() and ((run_dir / "latest.json").exists() or (run_dir / "final").exists()
                                 or any(run_dir.glob("ckpt-*")))


@contextlib.contextmanager
def claim_run_dir(run_dir: str | os.PathLike[str], resume: bool, rank: int | None = None) -> Iterator[Path]:
    """Create and lock the run folder ``run_dir`` for one training process (rank 0 of a
    distributed run; other ranks only get the path).

    UsageError if it already holds a run (checkpoints, ``latest.json``, ``final/``) and
    ``resume`` is false, or if it is a file; SoundtokError if another process holds the
    folder's lock (``flock`` on the folder itself: no lock file is left behind, and the
    lock goes with the process however it ends)."""
    run_dir = Path(run_dir)
    rank = int(os.environ.get("RANK", "0") or 0) if rank is None else rank
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"-o {run_dir}: it is a file, not a run folder")
    if rank != 0:
        yield run_dir
        return
    if not resume and holds_run(run_dir):
        raise UsageError(f"{run_dir} already holds a training run; pass --resume to continue it "
                         f"or choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        raise SoundtokError(f"cannot create run folder {run_dir}: {e.strerror or e}") from None
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no lock
            pass
        except OSError as e:  # otherwise a file system without flock: no lock
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SoundtokError(f"{run_dir} is in use by another training process (the same --out "
                                    f"twice?)") from None
        yield run_dir
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- health

class TrainingDiverged(SoundtokError):
    """A loss or gradient norm became NaN or infinite (exit 1)."""


def check_finite(step: int, **values) -> None:
    """TrainingDiverged, naming ``step`` and the value, unless every value (floats or
    0-d tensors: the loss, the gradient norm) is finite.  Call it before the optimizer
    step: the weights then stay those of the previous step."""
    for name, v in values.items():
        x = float(v.detach()) if torch.is_tensor(v) else float(v)
        if not math.isfinite(x):
            raise TrainingDiverged(f"training diverged at step {step}: the {name.replace('_', ' ')} is {x} "
                                   f"(try a lower --lr); the last checkpoint is kept, no NaN weights written")


#: The largest weight magnitude training accepts: the square root of float32's largest value,
#: beyond which a weight's square (and any product of two such weights) overflows to inf -- a
#: model that far gone gives NaN at its next use although every weight is still finite.
WEIGHT_LIMIT = float(torch.finfo(torch.float32).max) ** 0.5


def check_weights(step: int, params) -> None:
    """TrainingDiverged, naming ``step``, if an optimizer step left any of ``params`` NaN,
    infinite or larger in magnitude than :data:`WEIGHT_LIMIT`.  Called after each optimizer
    step, so that a run whose last step blows the weights up (no loss is computed after it to
    notice) does not write them as ``final/``.  One reduction over all parameters, one sync."""
    peaks = [p.detach().abs().amax().float() for p in params if p.numel()]
    if not peaks:
        return
    peak = float(torch.stack([x.to(peaks[0].device) for x in peaks]).amax())
    if not peak <= WEIGHT_LIMIT:  # also NaN
        what = "are not finite" if not math.isfinite(peak) else f"grew to {peak:.3g}, past float32's safe range"
        raise TrainingDiverged(f"training diverged at step {step}: the weights {what} (try a lower --lr); "
                               f"the last checkpoint is kept, no NaN weights written")


def assert_finite_weights(model: torch.nn.Module, where: str | os.PathLike[str]) -> None:
    """TrainingDiverged unless every floating-point parameter and buffer of ``model`` is finite."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t.detach()).all()):
            raise TrainingDiverged(f"refusing to write {where}: weight {name} is not finite (training diverged)")
