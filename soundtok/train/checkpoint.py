"""Atomic, pickle-free training checkpoints.

A checkpoint is a directory ``ckpt-<name>/`` (e.g. ``ckpt-vae-0000500``) holding ``model.safetensors`` +
``config.json`` (a loadable codec), ``optimizer.safetensors`` (the optimizer's
tensors, flattened) and ``state.json`` (step, stage, RNG seeds, optimizer
scalars). It is written under a temporary name and renamed into place, then
``latest.json`` is replaced atomically to point at it, so a kill at any moment
leaves the previous checkpoint intact. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from ..errors import SoundtokError


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``opt.state_dict()`` into a flat tensor dict and a JSON-able remainder."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for pid, st in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(st)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(run_dir: Path, model, opt: torch.optim.Optimizer, state: dict,
                    name: str, keep: int = 2, save=None) -> Path:
    """Write ``run_dir/ckpt-<name>`` atomically and point ``latest.json`` at it;
    keep the ``keep`` newest checkpoints.  The model is written by
    ``save(directory)`` (default: ``model.save_pretrained``)."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    final = run_dir / f"ckpt-{name}"
    tmp = run_dir / f".tmp-ckpt-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (save or model.save_pretrained)(tmp)
        tensors, meta = optimizer_to_flat(opt)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "state.json").write_text(json.dumps({**state, "optimizer": meta}, indent=1))
        _fsync_dir(tmp)
    except BaseException as e:  # disk full, Ctrl-C, ...: leave no half-written folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, Exception) and not isinstance(e, SoundtokError):
            raise SoundtokError(f"cannot write checkpoint {final}: {e}") from e
        raise
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    pointer = run_dir / ".latest.json.tmp"
    pointer.write_text(json.dumps({"checkpoint": final.name}))
    pointer.replace(run_dir / "latest.json")
    _fsync_dir(run_dir)
    ckpts = sorted(run_dir.glob("ckpt-*"), key=lambda p: p.stat().st_mtime)
    for old in ckpts[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    p = Path(run_dir) / "latest.json"
    if not p.is_file():
        return None
    name = json.loads(p.read_text())["checkpoint"]
    ck = Path(run_dir) / name
    return ck if ck.is_dir() else None


def load_training_state(ckpt: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Return ``(state.json contents, optimizer tensors)`` of a checkpoint."""
    from safetensors.torch import load_file

    state = json.loads((ckpt / "state.json").read_text())
    return state, load_file(str(ckpt / "optimizer.safetensors"))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
