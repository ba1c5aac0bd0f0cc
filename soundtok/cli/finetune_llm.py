"""``soundtok finetune-llm``: LoRA-finetune an LLM to read and write audio tokens."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from ..device import resolve_device
from .common import runtime
from .options import (
    APP_SETTINGS,
    BatchSize,
    Codec,
    Device,
    Llm,
    Lr,
    Quiet,
    Resume,
    RunDir,
    SaveEvery,
    Seed,
    Threads,
    ValEvery,
    Verbose,
    above,
)

app = typer.Typer(**APP_SETTINGS)


@app.command("finetune-llm")
def command(
    train: Annotated[str, typer.Argument(metavar="TRAIN", help="Token stream or prompt/response JSON Lines.")],
    out: RunDir,
    val: Annotated[str | None, typer.Option("--val", metavar="FILE", show_default=False,
                                    help="Validation data (same format as TRAIN).")] = None,
    task: Annotated[Literal["caption", "generate", "mixed"], typer.Option(
        "--task", help="Token streams: audio->text, text->audio, or both.")] = "caption",
    llm: Llm = None,
    codec: Codec = None,
    init_adapter: Annotated[str | None, typer.Option(
        "--init-adapter", metavar="DIR", show_default=False,
        help="Start from an existing adapter ('default' = the shipped one) instead of fresh "
             "weights.")] = None,
    epochs: Annotated[float, typer.Option("--epochs", metavar="E", callback=above(0),
                                  help="Passes over TRAIN.")] = 3.0,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, metavar="N", show_default=False,
                                          help="Stop after N optimizer steps (overrides --epochs).")] = None,
    batch_size: BatchSize = 8,
    grad_accum: Annotated[int, typer.Option("--grad-accum", min=1, metavar="N",
                                    help="Micro-batches per optimizer step.")] = 1,
    lr: Lr = 1e-4,
    embedding_lr: Annotated[float | None, typer.Option(
        "--embedding-lr", metavar="LR", callback=above(0), show_default=False,
        help="Learning rate of the audio-token rows (default: --lr, the LoRA weights').")] = None,
    weight_decay: Annotated[float, typer.Option("--weight-decay", min=0.0, metavar="W",
                                        help="AdamW weight decay.")] = 0.0,
    warmup: Annotated[int, typer.Option("--warmup", min=0, metavar="N",
                                help="Linear warm-up steps (then cosine decay to 10%).")] = 50,
    lora_r: Annotated[int, typer.Option("--lora-r", min=1, metavar="R", help="LoRA rank.")] = 64,
    lora_alpha: Annotated[float, typer.Option("--lora-alpha", metavar="A", callback=above(0),
                                      help="LoRA scaling alpha.")] = 128.0,
    lora_dropout: Annotated[float, typer.Option("--lora-dropout", min=0.0, max=1.0, metavar="P",
                                        help="LoRA dropout.")] = 0.05,
    lora_targets: Annotated[str, typer.Option(
        "--lora-targets", metavar="LIST",
        help="Modules that get LoRA: all-linear or a comma list (q_proj,v_proj,...).")] = "all-linear",
    max_length: Annotated[int, typer.Option("--max-length", min=8, metavar="N",
                                    help="Longer sequences are skipped.")] = 1024,
    save_every: SaveEvery = 500,
    val_every: ValEvery = None,
    log_every: Annotated[int, typer.Option("--log-every", min=1, metavar="N",
                                   help="Log every N steps.")] = 20,
    seed: Seed = 0,
    dtype: Annotated[str | None, typer.Option(
        "--dtype", metavar="DTYPE", show_default=False,
        help="LLM weights: bfloat16 or float32 (default: bf16 where fast).")] = None,
    adapter_dtype: Annotated[str | None, typer.Option(
        "--adapter-dtype", metavar="DTYPE", show_default=False,
        help="Store the final adapter in this precision (e.g. bfloat16 halves its size).")] = None,
    resume: Resume = False,
    device: Device = "auto", threads: Threads = None, quiet: Quiet = False, verbose: Verbose = False,
):
    """Teach an LLM audio tokens: LoRA + new audio-token embeddings.

    TRAIN is a token stream whose items carry "text" (or "label"; optional
    meta.captions / meta.prompts lists give alternative wordings), or a JSON
    Lines file of {"prompt": ..., "response": ...} pairs in which audio is
    written <audio><a0_5>...</audio>. Loss is computed on responses only.

    The adapter (a standard peft LoRA adapter + audio embeddings +
    soundtok-adapter.json recording codec, token list and LLM) is written to
    OUT/final; its path is printed on stdout. Checkpoints, train.log and
    metrics.csv go to OUT. For several GPUs (or CPU processes) launch under
    torchrun (DDP).

    \b
    Examples:
      soundtok tokenize data.jsonl -o train.tok.jsonl
      soundtok finetune-llm train.tok.jsonl --val val.tok.jsonl -o runs/cap
      soundtok finetune-llm train.tok.jsonl --task mixed -o runs/mix --epochs 5
      soundtok finetune-llm train.tok.jsonl -o runs/cap --resume
      soundtok finetune-llm pairs.jsonl --codec default -o runs/pairs
      soundtok finetune-llm my_sounds.tok.jsonl --init-adapter default --lora-r 32 -o runs/more
      torchrun --nproc_per_node 4 -m soundtok finetune-llm train.tok.jsonl -o runs/cap --device cuda
    """
    from ..train.llm_trainer import FinetuneOptions, finetune

    console = runtime(threads, quiet, verbose)
    opts = FinetuneOptions(
        train=train, out=out, val=val, task=task, llm=llm, codec=codec, init_adapter=init_adapter,
        epochs=epochs, max_steps=max_steps,
        batch_size=batch_size, grad_accum=grad_accum, lr=lr, embedding_lr=embedding_lr,
        weight_decay=weight_decay, warmup=warmup, lora_r=lora_r, lora_alpha=lora_alpha,
        lora_dropout=lora_dropout, lora_targets=lora_targets, max_length=max_length, save_every=save_every,
        val_every=val_every, log_every=log_every, seed=seed, device=resolve_device(device), dtype=dtype,
        adapter_dtype=adapter_dtype, resume=resume)
    with console.progress("training", unit="step", preparing="loading the LLM and the data") as bar:
        final = finetune(opts, echo=console.info, on_progress=bar.update, notice=console.notice)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(str(final))
