"""``soundtok finetune-llm``: LoRA-finetune an LLM to read and write audio tokens."""

from __future__ import annotations

import click

from .common import resolve_device, runtime_options


@click.command("finetune-llm")
@click.argument("train")
@click.option("-o", "--out", required=True, help="Run directory (checkpoints, logs, final/ adapter).")
@click.option("--val", default=None, metavar="FILE", help="Validation data (same format as TRAIN).")
@click.option("--task", type=click.Choice(["caption", "generate", "mixed"]), default="caption",
              show_default=True, help="Token streams: audio->text, text->audio, or both.")
@click.option("--llm", default=None, metavar="SPEC",
              help="Base LLM: built-in name, Hugging Face directory or .gguf (default: gemma3-270m).")
@click.option("--codec", default=None, metavar="DIR",
              help="Codec of a prompt/response file without a header line ('default' or a directory).")
@click.option("--init-adapter", default=None, metavar="DIR",
              help="Start from an existing adapter ('default' = the shipped one) instead of fresh weights.")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=3.0, show_default=True)
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Stop after N optimizer steps (overrides --epochs).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Sequences per micro-batch and process.")
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True,
              help="Micro-batches per optimizer step.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True,
              help="AdamW learning rate of the LoRA weights.")
@click.option("--embedding-lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate of the audio-token rows (default: --lr).")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=50, show_default=True,
              help="Linear warm-up steps (then cosine decay to 10%).")
@click.option("--lora-r", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lora-alpha", type=click.FloatRange(min=0, min_open=True), default=128.0, show_default=True)
@click.option("--lora-dropout", type=click.FloatRange(0, 1), default=0.05, show_default=True)
@click.option("--lora-targets", default="all-linear", show_default=True,
              help="Modules that get LoRA: all-linear or a comma list (q_proj,v_proj,...).")
@click.option("--max-length", type=click.IntRange(min=8), default=1024, show_default=True,
              help="Longer sequences are skipped.")
@click.option("--save-every", type=click.IntRange(min=1), default=500, show_default=True,
              help="Checkpoint every N steps (atomically; the last 2 are kept).")
@click.option("--val-every", type=click.IntRange(min=1), default=None,
              help="Validate every N steps (default: once per epoch).")
@click.option("--log-every", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dtype", default=None, help="LLM weights: bfloat16 or float32 (default: bf16 where fast).")
@click.option("--adapter-dtype", default=None,
              help="Store the final adapter in this precision (e.g. bfloat16 halves its size).")
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in --out.")
@runtime_options
def command(train, out, val, task, llm, codec, init_adapter, epochs, max_steps, batch_size, grad_accum, lr,
            embedding_lr, weight_decay, warmup, lora_r, lora_alpha, lora_dropout, lora_targets, max_length, save_every,
            val_every, log_every, seed, dtype, adapter_dtype, resume, console, device):
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

    opts = FinetuneOptions(
        train=train, out=out, val=val, task=task, llm=llm, codec=codec, init_adapter=init_adapter,
        epochs=epochs, max_steps=max_steps,
        batch_size=batch_size, grad_accum=grad_accum, lr=lr, embedding_lr=embedding_lr,
        weight_decay=weight_decay, warmup=warmup, lora_r=lora_r, lora_alpha=lora_alpha,
        lora_dropout=lora_dropout, lora_targets=lora_targets, max_length=max_length, save_every=save_every,
        val_every=val_every, log_every=log_every, seed=seed, device=resolve_device(device), dtype=dtype,
        adapter_dtype=adapter_dtype, resume=resume)
    final = finetune(opts, echo=console.info)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(str(final))
