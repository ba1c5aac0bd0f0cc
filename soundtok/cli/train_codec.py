"""``soundtok train-codec``: train or fine-tune a codec."""

from __future__ import annotations

import json

import click

from .common import resolve_device, runtime_options


@click.command("train-codec")
@click.argument("train", nargs=-1, required=True)
@click.option("-o", "--out", required=True, help="Run directory (checkpoints, logs, final/).")
@click.option("--val", multiple=True, help="Validation audio (files, folders, globs, manifests).")
@click.option("--stage", default="all", show_default=True,
              help="vae, tokenizer, vocoder, a comma-separated list, or all (= vae,tokenizer,vocoder).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Steps for every selected stage (overrides the per-stage defaults).")
@click.option("--vae-steps", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--tokenizer-steps", type=click.IntRange(min=1), default=5000, show_default=True)
@click.option("--vocoder-steps", type=click.IntRange(min=1), default=5000, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--save-every", type=click.IntRange(min=1), default=500, show_default=True,
              help="Checkpoint every N steps (atomically; the last 2 are kept).")
@click.option("--val-every", type=click.IntRange(min=1), default=None,
              help="Validate every N steps (default: once per epoch of training audio).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in --out.")
@click.option("--init-from", default=None, metavar="DIR",
              help="Fine-tune an existing codec (a codec directory or 'default').")
@click.option("--config", "config_json", default=None, metavar="JSON",
              help='Codec config overrides, e.g. \'{"codebook_size": 1024}\' or a JSON file.')
@click.option("--vocoder-input", type=click.Choice(["mel", "vae"]), default="mel", show_default=True,
              help="Vocoder stage input: analysed mels, or mels reconstructed by the VAE "
                   "(for fine-tuning a vocoder to what it sees when decoding tokens).")
@click.option("--tensorboard", is_flag=True, help="Also write TensorBoard logs.")
@click.option("--arch", type=click.Choice(["soundtok-fm", "llm-codec"]), default="soundtok-fm",
              show_default=True,
              help="llm-codec: codes are a frozen LLM's own tokens (docs/llm-codec.md); it "
                   "trains in one stage for --steps (default 20000) and ignores --stage, "
                   "--val and the per-stage step options.")
@click.option("--llm", default=None, metavar="SPEC",
              help="llm-codec only: the frozen LLM whose embedding rows are the codebooks "
                   "(default: gemma3-270m).")
@click.option("--crop-seconds", type=click.FloatRange(min=0.1), default=None,
              help="llm-codec only: training crop length (default 2.56; rounded down to the coarsest hop).")
@click.option("--freeze-vocoder", is_flag=True,
              help="llm-codec only: keep the vocoder (initialised from the default codec) frozen.")
@runtime_options
def command(train, out, val, stage, steps, vae_steps, tokenizer_steps, vocoder_steps, batch, lr,
            save_every, val_every, seed, resume, init_from, config_json, vocoder_input,
            tensorboard, arch, llm, crop_seconds, freeze_vocoder, console, device):
    """Train a codec on TRAIN audio (files, folders, globs or manifests).

    Metrics go to OUT/metrics.csv (and TensorBoard with --tensorboard), a log
    to OUT/train.log, the trained codec to OUT/final/. For several GPUs (or
    CPU processes), launch under torchrun: each process trains on its own
    random crops and gradients are averaged (DDP).

    \b
    Examples:
      soundtok train-codec data/train/ --val data/val/ -o runs/codec
      soundtok train-codec train.jsonl -o runs/codec --resume
      soundtok train-codec new_sounds/ --init-from default -o runs/ft --stage tokenizer
      torchrun --nproc_per_node 4 -m soundtok train-codec train.jsonl -o runs/codec --device cuda
      soundtok train-codec train.jsonl --arch llm-codec --llm gemma3-270m -o runs/llmcodec
    """
    from ..errors import UsageError
    from ..train.codec_trainer import TrainCodecOptions, train_codec

    overrides = {}
    if config_json:
        import os
        try:
            text = open(config_json).read() if os.path.isfile(config_json) else config_json
            overrides = json.loads(text)
        except (OSError, json.JSONDecodeError) as e:
            raise UsageError(f"--config is neither a JSON file nor JSON: {e}") from None
        if not isinstance(overrides, dict):
            raise UsageError("--config must be a JSON object")
    if arch == "llm-codec":
        from ..train.llmcodec_trainer import TrainLLMCodecOptions, train_llm_codec

        if init_from:
            raise UsageError("--init-from is not supported with --arch llm-codec")
        opts = TrainLLMCodecOptions(train=list(train), out=out, llm=llm, steps=steps or 20000,
                                    batch=batch, lr=lr, save_every=save_every, seed=seed,
                                    device=resolve_device(device), resume=resume,
                                    codec_config=overrides, train_vocoder=not freeze_vocoder,
                                    **({"crop_seconds": crop_seconds} if crop_seconds else {}))
        click.echo(str(train_llm_codec(opts, echo=console.info)))
        return
    for flag, value in (("--llm", llm), ("--crop-seconds", crop_seconds), ("--freeze-vocoder", freeze_vocoder)):
        if value:
            raise UsageError(f"{flag} needs --arch llm-codec")
    per_stage = {"vae": vae_steps, "tokenizer": tokenizer_steps, "vocoder": vocoder_steps}
    if steps:
        per_stage = {k: steps for k in per_stage}
    opts = TrainCodecOptions(train=list(train), out=out, val=list(val), stage=stage,
                             steps=per_stage, batch=batch, lr=lr, save_every=save_every,
                             val_every=val_every, seed=seed, device=resolve_device(device),
                             resume=resume, init_from=init_from, codec_config=overrides,
                             tensorboard=tensorboard, vocoder_input=vocoder_input)
    final = train_codec(opts, echo=console.info)
    click.echo(str(final))
