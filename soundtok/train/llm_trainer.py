"""``soundtok finetune-llm``: LoRA + audio-token rows on top of a frozen LLM.

* Trainable: LoRA adapters (peft) and the audio-token embedding rows (and
  output rows for LLMs with untied embeddings); the LLM itself is frozen.
* Loss: cross-entropy on response tokens only; hidden states are gathered at
  those positions before any output head runs (:class:`AudioLM.forward`).
* Precision: the frozen LLM in bfloat16 where that is fast (AMX CPUs, recent
  GPUs), trainable weights in float32, matmuls under bf16 autocast.
* AdamW with :mod:`.scaffold`'s schedule (linear warm-up, then cosine decay
  to 10 %); gradient accumulation; gradient clipping at 1.0.
* Runs single-process or under ``torchrun`` (DDP; gloo on CPU, nccl on CUDA):
  each process takes every ``world``-th batch, gradients are averaged.
* Atomic checkpoints (safetensors + JSON, via :mod:`.checkpoint`) every
  ``save_every`` steps; ``resume`` continues from the latest one with the
  same batches the run would have seen.  The adapter goes to ``OUT/final``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..audiolm.adapter import check_llm, load_weights, new_audio_lm, read_meta, save_adapter
from ..audiolm.data import TASKS, collate, load_records, make_batches, make_examples, peek_header, text_vocabulary
from ..audiolm.prompts import PromptBuilder
from ..audiolm.vocabulary import AudioVocab
from ..errors import ModelError, UsageError
from ..llm.loader import DEFAULT_LLM, load_llm
from .checkpoint import latest_checkpoint, load_training_state, optimizer_from_flat, save_checkpoint
from .health import assert_finite_weights, claim_run_dir
from .scaffold import Distributed, RunLogger, init_distributed, lr_factor, optimizer_step, set_lr


@dataclass
class FinetuneOptions:
    """Options of one ``finetune-llm`` run (the CLI flags)."""

    train: str
    out: str
    val: str | None = None
    task: str = "caption"
    llm: str | None = None
    codec: str | None = None
    init_adapter: str | None = None
    epochs: float = 3.0
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    embedding_lr: float | None = None
    weight_decay: float = 0.0
    warmup: int = 50
    lora_r: int = 64
    lora_alpha: float = 128.0
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"
    max_length: int = 1024
    save_every: int = 500
    val_every: int | None = None
    log_every: int = 20
    seed: int = 0
    device: str = "cpu"
    dtype: str | None = None
    adapter_dtype: str | None = None
    resume: bool = False


# Options that must not change when a run is resumed.
_FIXED_ON_RESUME = ("task", "lora_r", "lora_alpha", "lora_targets", "batch_size", "grad_accum", "seed")


def _parse_dtype(name: str | None):
    if name is None:
        return None
    from ..llm.loader import _parse_dtype as parse

    return parse(name)


def finetune(opts: FinetuneOptions, echo: Callable[[str], None] | None = None,
             on_progress: Callable[[int, int], None] | None = None,
             notice: Callable[[str], None] | None = None) -> Path:
    """Train an adapter; returns ``OUT/final`` (the adapter directory).

    ``echo`` receives the log lines; ``on_progress(step, total)`` is called before the first
    step and after each optimizer step (process 0 only); ``notice`` receives the one-line
    announcement of a first-use LLM conversion (default: ``echo``)."""
    if opts.task not in TASKS:
        raise UsageError(f"unknown --task {opts.task!r}: use caption, generate or mixed")
    run_dir = Path(opts.out)
    with claim_run_dir(run_dir, opts.resume):
        ckpt = latest_checkpoint(run_dir, echo) if opts.resume else None
        return _finetune_in(opts, run_dir, ckpt, echo, on_progress, notice)


def _finetune_in(opts: FinetuneOptions, run_dir: Path, ckpt, echo, on_progress=None, notice=None) -> Path:
    dist = init_distributed(opts.device)
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    log = RunLogger(run_dir, echo, enabled=dist.main)
    try:
        return _finetune(opts, run_dir, ckpt, dist, log, on_progress if dist.main else None, notice)
    finally:
        log.close()
        dist.close()


def _adapter_dir(adapter: str):
    from ..audiolm.adapter import resolve_adapter

    return resolve_adapter(adapter)


def _codec_header(codec: str | None):
    if codec is None:
        return None
    from ..registry import load_codec

    return load_codec(codec).header()


def _finetune(opts, run_dir, ckpt, dist: Distributed, log: RunLogger, on_progress=None, notice=None):
    rank, world, device, info = dist.rank, dist.world, dist.device, log.info
    header, kind = peek_header(opts.train, _codec_header(opts.codec))
    llm_spec = opts.llm or DEFAULT_LLM
    if opts.resume and ckpt is not None:
        saved = json.loads((run_dir / "options.json").read_text())
        changed = [k for k in _FIXED_ON_RESUME if saved.get(k) != getattr(opts, k)]
        if changed:
            raise UsageError(f"cannot resume {run_dir} with a different --{changed[0].replace('_', '-')} "
                             f"({saved.get(changed[0])!r} before, {getattr(opts, changed[0])!r} now)")
    dtype = _parse_dtype(opts.dtype)
    model, tokenizer = load_llm(llm_spec, device=device, dtype=dtype, progress=notice or info)
    dtype = model.dtype
    vocab = AudioVocab(header, model.get_input_embeddings().num_embeddings)
    lora = {"r": opts.lora_r, "alpha": opts.lora_alpha, "dropout": opts.lora_dropout,
            "targets": opts.lora_targets}
    alm = new_audio_lm(model, tokenizer, vocab, llm_spec=str(llm_spec), lora=lora, seed=opts.seed)
    alm.to(device)
    builder = PromptBuilder(tokenizer, vocab)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    records, skipped = load_records(opts.train, builder, kind)
    if skipped:
        info(f"skipped {skipped} item(s) without text or label")
    val_records = []
    if opts.val:
        val_header, val_kind = peek_header(opts.val, header)
        val_records, _ = load_records(opts.val, builder, val_kind)
    task = opts.task if kind == "stream" else "pairs"

    start_from = ckpt if ckpt is not None else (_adapter_dir(opts.init_adapter) if opts.init_adapter else None)
    if start_from is not None:
        meta = read_meta(start_from)
        check_llm(meta, model, str(start_from))
        if meta["codec"]["header"]["codec"].get("sha256") != vocab.codec_sha256:
            raise ModelError(f"{start_from} was trained on another codec's tokens than {opts.train}")
        lora_saved = meta.get("lora") or {}
        if (lora_saved.get("r"), lora_saved.get("targets")) != (opts.lora_r, opts.lora_targets):
            raise UsageError(f"{start_from} has LoRA r={lora_saved.get('r')} on {lora_saved.get('targets')}; "
                             f"pass the same --lora-r/--lora-targets")
        load_weights(alm, start_from)
        if ckpt is None:
            info(f"starting from adapter {start_from}")

    lora_params = [p for n, p in alm.named_parameters() if p.requires_grad and "lora_" in n]
    audio_params = [p for n, p in alm.named_parameters() if p.requires_grad and "lora_" not in n]
    groups = [{"params": lora_params, "lr": opts.lr, "weight_decay": opts.weight_decay, "base_lr": opts.lr},
              {"params": audio_params, "lr": opts.embedding_lr or opts.lr, "weight_decay": 0.0,
               "base_lr": opts.embedding_lr or opts.lr}]
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.999))
    state = {"step": 0}
    if ckpt is not None:
        state, opt_tensors = load_training_state(ckpt)
        optimizer_from_flat(opt, opt_tensors, state.pop("optimizer"))
        for gr in opt.param_groups:
            gr["base_lr"] = opts.lr if gr is opt.param_groups[0] else (opts.embedding_lr or opts.lr)
        info(f"resuming from {ckpt.name} (step {state['step']})")
    if rank == 0:
        (run_dir / "options.json").write_text(json.dumps(asdict(opts), indent=1))

    # Steps: the batch list of an epoch depends only on (seed, epoch).
    def epoch_plan(epoch: int):
        rng = random.Random(opts.seed * 1_000_003 + epoch)
        examples = [e for e in make_examples(records, task, builder, rng) if len(e) <= opts.max_length]
        batches = make_batches([len(e) for e in examples], opts.batch_size, rng)
        usable = len(batches) - len(batches) % (world * opts.grad_accum)
        return examples, batches[:usable]

    examples0, batches0 = epoch_plan(0)
    dropped = len(make_examples(records, task, builder, random.Random(0))) - len(examples0)
    if dropped:
        info(f"skipped {dropped} example(s) longer than --max-length {opts.max_length}")
    if not batches0:
        raise UsageError(f"too little training data for --batch-size {opts.batch_size} x "
                         f"--grad-accum {opts.grad_accum} x {world} process(es)")
    steps_per_epoch = len(batches0) // (world * opts.grad_accum)
    total = opts.max_steps or max(1, int(math.ceil(opts.epochs * steps_per_epoch)))
    val_every = opts.val_every or steps_per_epoch
    n_train = sum(p.numel() for p in alm.trainable_parameters())
    info(f"{len(records)} training records, {len(examples0)} examples/epoch ({task}), "
         f"{len(val_records)} validation records; {steps_per_epoch} steps/epoch, {total} steps; "
         f"batch {opts.batch_size} x accum {opts.grad_accum} x {world} process(es); "
         f"{n_train / 1e6:.2f}M trainable parameters; LLM {llm_spec} in {str(dtype).replace('torch.', '')} "
         f"on {device}")

    module = alm
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        module = DDP(alm, find_unused_parameters=True)
    use_autocast = dtype in (torch.bfloat16, torch.float16)

    def autocast():
        if not use_autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    params = alm.trainable_parameters()
    step = int(state["step"])
    t0, tokens_seen, agg_loss, agg_tokens = time.time(), 0, 0.0, 0
    t_start, seconds_before = time.time(), float(state.get("train_seconds", 0.0))
    plan_epoch, examples, batches = 0, examples0, batches0
    alm.train()
    if on_progress:
        on_progress(step, total)
    while step < total:
        epoch, within = divmod(step, steps_per_epoch)
        if epoch != plan_epoch:
            plan_epoch = epoch
            examples, batches = epoch_plan(epoch)
        first = (within * world * opts.grad_accum)
        group = batches[first:first + world * opts.grad_accum][rank::world]
        micro = [[examples[i] for i in b] for b in group]
        collated = [collate(m, pad_id) for m in micro]
        n_tokens = sum(int((c[2] >= 0).sum()) for c in collated)
        lr_f = lr_factor(step + 1, total, opts.warmup)
        set_lr(opt, lr_f)
        opt.zero_grad(set_to_none=True)
        for j, (ids, mask, targets) in enumerate(collated):
            sync = j == len(collated) - 1 or world == 1
            ctx = module.no_sync() if (world > 1 and not sync) else contextlib.nullcontext()
            with ctx:
                with autocast():
                    loss_sum = module(ids.to(device), mask.to(device), targets.to(device))
                (loss_sum / max(1, n_tokens)).backward()
            agg_loss += float(loss_sum.detach())
            tokens_seen += int(mask.sum())
        agg_tokens += n_tokens
        optimizer_step(opt, None, params, step + 1, shown_loss=agg_loss)
        step += 1
        if on_progress:
            on_progress(step, total)
        if step % opts.log_every == 0 or step == total:
            elapsed = time.time() - t0
            vals = {"loss": agg_loss / max(1, agg_tokens), "lr": opts.lr * lr_f,
                    "tokens_per_s": tokens_seen * world / max(elapsed, 1e-9)}
            log.line("llm", step, "train", vals, f"step {step}/{total} epoch {step / steps_per_epoch:.2f}")
            t0, tokens_seen, agg_loss, agg_tokens = time.time(), 0, 0.0, 0
        if val_records and (step % val_every == 0 or step == total):
            vals = _validate(alm, val_records, task, builder, opts, pad_id, device, autocast, rank, world)
            log.line("llm", step, "val", vals, f"step {step} validation")
            alm.train()
        if step % opts.save_every == 0 or step == total:
            if rank == 0:
                seconds = seconds_before + time.time() - t_start
                save_checkpoint(run_dir, alm, opt, {"step": step, "seed": opts.seed, "train_seconds": seconds},
                                name=f"{step:07d}", save=lambda d: save_adapter(alm, d))
            if world > 1:
                torch.distributed.barrier()
    alm.eval()
    final = run_dir / "final"
    train_minutes = (seconds_before + time.time() - t_start) / 60
    if rank == 0:
        training = {"task": task, "steps": total, "epochs": round(total / steps_per_epoch, 3),
                    "examples_per_epoch": len(examples0), "batch_size": opts.batch_size,
                    "grad_accum": opts.grad_accum, "processes": world, "lr": opts.lr,
                    "embedding_lr": opts.embedding_lr or opts.lr, "seed": opts.seed,
                    "train_file": os.path.basename(str(opts.train)),
                    "train_minutes": round(train_minutes, 2), "device": str(device),
                    "threads": torch.get_num_threads(), "vocabulary": text_vocabulary(records)}
        assert_finite_weights(alm, final)
        save_adapter(alm, final, dtype=_parse_dtype(opts.adapter_dtype),
                          extra={"training": training})
        info(f"done: {total} steps in {train_minutes:.1f} min of training (all sessions); "
             f"adapter saved to {final}")
    if world > 1:
        torch.distributed.barrier()
    return final


@torch.no_grad()
def _validate(alm, records, task, builder, opts, pad_id, device, autocast, rank, world) -> dict:
    """Mean response-token loss per task on the validation set (sharded across processes)."""
    alm.eval()
    examples = [e for e in make_examples(records, task, builder, random.Random(12345))
                if len(e) <= opts.max_length]
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]))[rank::world]
    sums: dict[str, list[float]] = {}
    for start in range(0, len(order), opts.batch_size):
        batch = [examples[i] for i in order[start:start + opts.batch_size]]
        by_task: dict[str, list] = {}
        for e in batch:
            by_task.setdefault(e.task, []).append(e)
        for name, group in by_task.items():
            ids, mask, targets = collate(group, pad_id)
            with autocast():
                loss = alm(ids.to(device), mask.to(device), targets.to(device))
            acc = sums.setdefault(name, [0.0, 0.0])
            acc[0] += float(loss)
            acc[1] += float((targets >= 0).sum())
    names = sorted({e.task for e in examples})
    flat = torch.tensor([v for n in names for v in sums.get(n, [0.0, 0.0])], dtype=torch.float64)
    if world > 1:
        torch.distributed.all_reduce(flat)
    out, total_loss, total_n = {}, 0.0, 0.0
    for i, n in enumerate(names):
        loss, count = float(flat[2 * i]), float(flat[2 * i + 1])
        out[f"loss_{n}"] = loss / max(1.0, count)
        total_loss, total_n = total_loss + loss, total_n + count
    out["loss"] = total_loss / max(1.0, total_n)
    return out
