"""Atomic, pickle-free training checkpoints.

A checkpoint is a directory ``ckpt-<name>/`` (e.g. ``ckpt-vae-0000500``) holding
``model.safetensors`` + ``config.json`` (a loadable codec), ``optimizer.safetensors``
(the optimizer's tensors, flattened) and ``state.json`` (step, stage, RNG seeds,
optimizer scalars), plus any training-only modules with their optimizers (the
vocoder's discriminators: ``discriminator.safetensors``,
``discriminator_optimizer.safetensors``). It is written under a temporary name and
renamed into place, then ``latest.json`` is replaced atomically to point at it, so a
kill at any moment leaves the previous checkpoint intact. Nothing is ever unpickled.

:func:`latest_checkpoint` makes ``--resume`` survive a damaged or missing
``latest.json`` and a damaged newest checkpoint (empty ``state.json``, missing
or cut optimizer file) by falling back to the newest whole checkpoint, and says
so; with no whole checkpoint it says in one line what is wrong.
:func:`save_checkpoint` refuses NaN weights (:mod:`.health`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import SoundtokError
from ..fileio import signals_deferred
from .health import assert_finite_weights


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
                    name: str, keep: int = 2, save=None, extra: dict | None = None) -> Path:
    """Write ``run_dir/ckpt-<name>`` atomically and point ``latest.json`` at it;
    keep the ``keep`` newest checkpoints.  The model is written by
    ``save(directory)`` (default: ``model.save_pretrained``).  ``extra`` maps a name
    to a training-only ``(module, optimizer)`` pair (e.g. the discriminators), saved
    as ``<name>.safetensors`` + ``<name>_optimizer.safetensors``, its optimizer
    settings under ``extra_optimizers`` in ``state.json`` (see :func:`load_extra`)."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    final = run_dir / f"ckpt-{name}"
    assert_finite_weights(model, final)
    for module, _ in (extra or {}).values():
        assert_finite_weights(module, final)
    tmp = run_dir / f".tmp-ckpt-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (save or model.save_pretrained)(tmp)
        tensors, meta = optimizer_to_flat(opt)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        extra_meta = {}
        for key, (module, mopt) in (extra or {}).items():
            save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()},
                      str(tmp / f"{key}.safetensors"))
            et, extra_meta[key] = optimizer_to_flat(mopt)
            save_file(et, str(tmp / f"{key}_optimizer.safetensors"))
        state = {**state, "optimizer": meta, **({"extra_optimizers": extra_meta} if extra else {})}
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        _fsync_dir(tmp)
    except BaseException as e:  # disk full, Ctrl-C, ...: leave no half-written folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, Exception) and not isinstance(e, SoundtokError):
            raise SoundtokError(f"cannot write checkpoint {final}: {e}") from e
        raise
    pointer = run_dir / ".latest.json.tmp"
    with signals_deferred():  # the folder and the pointer change together, never half
        try:
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            pointer.write_text(json.dumps({"checkpoint": final.name}))
            pointer.replace(run_dir / "latest.json")
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            with contextlib.suppress(OSError):
                pointer.unlink()
            raise SoundtokError(f"cannot write checkpoint {final}: {e.strerror or e}") from None
    _fsync_dir(run_dir)
    ckpts = sorted(run_dir.glob("ckpt-*"), key=lambda p: p.stat().st_mtime)
    for old in ckpts[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole safetensors file (None if it is): the header is read,
    the tensors' extent compared with the file size."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            raw = f.read(8)
            if len(raw) < 8:
                return f"{path.name} is empty" if not raw else f"{path.name} is cut off"
            n = struct.unpack("<Q", raw)[0]
            if n > size - 8 or n > 100 << 20:
                return f"{path.name} is cut off"
            header = json.loads(f.read(n))
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError, UnicodeDecodeError):
        return f"{path.name} is damaged"
    if not isinstance(header, dict):
        return f"{path.name} is damaged"
    end = max((v["data_offsets"][1] for k, v in header.items()
               if k != "__metadata__" and isinstance(v, dict) and isinstance(v.get("data_offsets"), list)
               and len(v["data_offsets"]) == 2), default=0)
    if 8 + n + end > size:
        return f"{path.name} is cut off"
    return None


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why the checkpoint folder ``ckpt`` cannot be resumed from (None if it is whole):
    ``state.json`` must be a JSON object with a step and the optimizer's settings, and
    ``optimizer.safetensors`` and every other weights file must be whole."""
    ckpt = Path(ckpt)
    if not ckpt.is_dir():
        return f"{ckpt.name} is missing"
    try:
        text = (ckpt / "state.json").read_text()
    except FileNotFoundError:
        return "state.json is missing"
    except (OSError, UnicodeDecodeError):
        return "state.json is unreadable"
    if not text.strip():
        return "state.json is empty"
    try:
        state = json.loads(text)
    except (ValueError, RecursionError):
        return "state.json is damaged (not JSON)"
    if not isinstance(state, dict) or not isinstance(state.get("optimizer"), dict) \
            or not isinstance(state["optimizer"].get("param_groups"), list) \
            or not any(type(state.get(k)) is int for k in ("step", "stage_step")):
        return "state.json is damaged (no step or optimizer settings)"
    weights = sorted(ckpt.glob("*.safetensors"))
    if not any(w.name != "optimizer.safetensors" for w in weights):
        return "the model weights are missing"
    for w in [ckpt / "optimizer.safetensors", *(w for w in weights if w.name != "optimizer.safetensors")]:
        problem = _safetensors_problem(w)
        if problem:
            return problem
    return None


def latest_checkpoint(run_dir: Path, on_info: Callable[[str], None] | None = None) -> Path | None:
    """The checkpoint to resume from: the one ``latest.json`` names when it is whole,
    else the newest whole ``ckpt-*`` folder (``on_info`` says why); None when the run
    has no checkpoint.  SoundtokError, in one line, when there are checkpoints but
    none is whole."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    ckpts = [p for p in run_dir.glob("ckpt-*") if p.is_dir()]
    named, why = None, None
    pointer = run_dir / "latest.json"
    if pointer.exists():
        try:
            name = json.loads(pointer.read_text()).get("checkpoint")
            if not isinstance(name, str) or "/" in name or not name.startswith("ckpt-"):
                raise ValueError
            named = run_dir / name
        except (OSError, ValueError, AttributeError, UnicodeDecodeError, RecursionError):
            why = "latest.json is damaged"
    elif ckpts:
        why = "latest.json is missing"
    if named is not None:
        problem = checkpoint_problem(named)
        if problem is None:
            return named
        why = f"{named.name} cannot be resumed from ({problem})"
    if not ckpts:
        if why and named is not None:
            raise SoundtokError(f"cannot resume {run_dir}: {why}, and there is no other checkpoint")
        return None

    def age(p: Path) -> float:
        try:
            return (p / "state.json").stat().st_mtime
        except OSError:
            return p.stat().st_mtime

    problems = []
    for ck in sorted(ckpts, key=lambda p: (age(p), p.name), reverse=True):
        if ck == named:
            continue
        problem = checkpoint_problem(ck)
        if problem is None:
            if on_info:
                on_info(f"{why}; resuming from the newest whole checkpoint, {ck.name}")
            return ck
        problems.append(f"{ck.name}: {problem}")
    raise SoundtokError(f"cannot resume {run_dir}: no whole checkpoint ({why}; {'; '.join(problems)})")


def load_training_state(ckpt: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Return ``(state.json contents, optimizer tensors)`` of a checkpoint."""
    from safetensors.torch import load_file

    state = json.loads((ckpt / "state.json").read_text())
    return state, load_file(str(ckpt / "optimizer.safetensors"))


def load_extra(ckpt: Path, key: str, module, opt: torch.optim.Optimizer) -> bool:
    """Restore a training-only ``(module, optimizer)`` saved under ``key``
    (:func:`save_checkpoint`'s ``extra``); False if the checkpoint has none."""
    from safetensors.torch import load_file

    ckpt = Path(ckpt)
    if not (ckpt / f"{key}.safetensors").is_file():
        return False
    module.load_state_dict(load_file(str(ckpt / f"{key}.safetensors")))
    meta = json.loads((ckpt / "state.json").read_text()).get("extra_optimizers", {}).get(key)
    if meta is not None:
        optimizer_from_flat(opt, load_file(str(ckpt / f"{key}_optimizer.safetensors")), meta)
    return True


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
