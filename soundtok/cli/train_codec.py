"""``soundtok train-codec``: train or fine-tune a codec."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import typer

from ..device import resolve_device
from ..train import architectures
from .common import runtime
from .options import APP_SETTINGS, Device, Llm, Lr, Quiet, Resume, RunDir, SaveEvery, Seed, Threads, ValEvery, Verbose

app = typer.Typer(**APP_SETTINGS)

#: ``--arch`` choices: the codec architectures soundtok.train has a trainer for
Arch = enum.Enum("Arch", {a: a for a in architectures()}, type=str)


@app.command("train-codec")
def command(
    train: Annotated[list[str], typer.Argument(metavar="TRAIN", help="Training audio.")],
    out: RunDir,
    val: Annotated[list[str] | None, typer.Option(
        "--val", metavar="AUDIO", show_default=False,
        help="Validation audio (files, folders, globs, manifests); repeatable.")] = None,
    stage: Annotated[str, typer.Option(
        "--stage", metavar="STAGES",
        help="vae, tokenizer, decoder (the flow and MSE decoders on frozen codes), vocoder, a "
             "comma-separated list, or all (= vae,tokenizer,vocoder).")] = "all",
    steps: Annotated[int | None, typer.Option(
        "--steps", min=1, metavar="N", show_default=False,
        help="Training steps for every selected stage (overrides the per-stage defaults).")] = None,
    vae_steps: Annotated[int, typer.Option("--vae-steps", min=1, metavar="N",
                                           help="Steps of the vae stage.")] = 3000,
    tokenizer_steps: Annotated[int, typer.Option("--tokenizer-steps", min=1, metavar="N",
                                                 help="Steps of the tokenizer stage.")] = 5000,
    decoder_steps: Annotated[int, typer.Option("--decoder-steps", min=1, metavar="N",
                                               help="Steps of the decoder stage.")] = 5000,
    vocoder_steps: Annotated[int, typer.Option("--vocoder-steps", min=1, metavar="N",
                                               help="Steps of the vocoder stage.")] = 5000,
    batch: Annotated[int, typer.Option("--batch", min=1, metavar="N", help="Clips per step.")] = 16,
    lr: Lr = 1e-3,
    save_every: SaveEvery = 500,
    val_every: ValEvery = None,
    seed: Seed = 0,
    resume: Resume = False,
    init_from: Annotated[str | None, typer.Option(
        "--init-from", metavar="DIR", show_default=False,
        help="Fine-tune an existing codec (a codec directory or 'default').")] = None,
    config_json: Annotated[str | None, typer.Option(
        "--config", metavar="JSON", show_default=False,
        help='Codec config overrides, e.g. \'{"codebook_size": 1024}\' or a JSON file.')] = None,
    vocoder_input: Annotated[Literal["mel", "vae"], typer.Option(
        "--vocoder-input",
        help="Vocoder stage input: analysed mels, or mels reconstructed by the VAE "
             "(for fine-tuning a vocoder to what it sees when decoding tokens).")] = "mel",
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also write TensorBoard logs.")] = False,
    arch: Annotated[Arch, typer.Option(
        "--arch",
        help="llm-codec: codes are a frozen LLM's own tokens (docs/llm-codec.md); it "
             "trains in one stage for --steps (default 20000) and ignores --stage "
             "and the per-stage step options.")] = list(Arch)[0].value,
    llm: Llm = None,
    crop_seconds: Annotated[float | None, typer.Option(
        "--crop-seconds", min=0.1, metavar="S", show_default=False,
        help="llm-codec only: training crop length (default 2.56; rounded down to the coarsest "
             "hop).")] = None,
    freeze_vocoder: Annotated[bool, typer.Option(
        "--freeze-vocoder",
        help="llm-codec only: keep the vocoder (initialised from the default codec) frozen.")] = False,
    teacher_cache: Annotated[str | None, typer.Option(
        "--teacher-cache", metavar="DIR", show_default=False,
        help="Teacher-feature cache (default OUT/teacher): computed there once, or reused when it "
             "holds the same teacher's features of the same packed clips (e.g. another run's).")] = None,
    device: Device = "auto", threads: Threads = None, quiet: Quiet = False, verbose: Verbose = False,
):
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
      soundtok train-codec train.jsonl -o runs/codec --stage decoder --decoder-steps 4000 --resume
      torchrun --nproc_per_node 4 -m soundtok train-codec train.jsonl -o runs/codec --device cuda
      soundtok train-codec train.jsonl --arch llm-codec --llm gemma3-270m -o runs/llmcodec
    """
    from ..train import CodecTrainingRequest
    from ..train import train as train_codec
    from .options import json_option

    console = runtime(threads, quiet, verbose)
    overrides = json_option(config_json, "--config") if config_json else {}
    request = CodecTrainingRequest(
        train=list(train), out=out, arch=Arch(arch).value, val=list(val or []), stage=stage, steps=steps,
        stage_steps={"vae": vae_steps, "tokenizer": tokenizer_steps, "decoder": decoder_steps,
                     "vocoder": vocoder_steps},
        batch=batch, lr=lr, save_every=save_every, val_every=val_every, seed=seed, resume=resume,
        init_from=init_from, codec_config=overrides, vocoder_input=vocoder_input,
        tensorboard=tensorboard, llm=llm, crop_seconds=crop_seconds, freeze_vocoder=freeze_vocoder,
        teacher_cache=teacher_cache, device=resolve_device(device))
    preparing = "loading the LLM and the audio" if request.arch == "llm-codec" else "loading the audio"
    with console.progress("training", unit="step", preparing=preparing) as bar:
        final = train_codec(request, echo=console.info, on_progress=bar.update, notice=console.notice)
    typer.echo(str(final))
