"""``soundtok detokenize``: token stream -> audio."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from ..device import resolve_device
from .common import runtime
from .options import APP_SETTINGS, ChunkSeconds, Codec, Decoder, DecodeSteps, Device, Llm, Quiet, Seed, Threads, Verbose

app = typer.Typer(**APP_SETTINGS)


@app.command("detokenize")
def command(
    stream: Annotated[str, typer.Argument(metavar="STREAM", help="Token stream file (- = stdin).")] = "-",
    output: Annotated[str, typer.Argument(metavar="OUTPUT", help="Audio file, folder or - (WAV on stdout).")] = "-",
    codec: Codec = None,
    decoder: Decoder = None,
    steps: DecodeSteps = None,
    seed: Seed = 0,
    guidance: Annotated[float | None, typer.Option(
        "--guidance", metavar="G", show_default=False,
        help="Classifier-free guidance scale of the flow decoder (1 = none; default: the "
             "codec's fm_guidance).")] = None,
    solver: Annotated[Literal["euler", "midpoint"], typer.Option(
        "--solver", help="ODE solver of the flow decoder.")] = "euler",
    fmt: Annotated[Literal["wav", "flac"] | None, typer.Option(
        "--format", show_default=False,
        help="Audio format (default: from the file extension, wav for stdout).")] = None,
    chunk_seconds: ChunkSeconds = 30.0,
    llm: Llm = None,
    device: Device = "auto", threads: Threads = None, quiet: Quiet = False, verbose: Verbose = False,
):
    """Turn a token stream back into audio.

    STREAM is a token stream file or "-" (stdin, the default). OUTPUT is "-"
    (WAV on stdout, the default) or a file for a one-item stream, or a folder
    (existing, or ending in "/") that receives <id>.wav for every item.

    The default codec is the built-in one, or the built-in LLM-Codec for an
    llm-codec stream (its one deterministic decoder ignores --decoder, --steps
    and --seed). --seed sets the flow decoder's noise.

    \b
    Examples:
      soundtok tokenize clip.wav | soundtok detokenize - out.wav
      soundtok detokenize data.tok.jsonl decoded/
      soundtok detokenize clip.tok.jsonl out.wav --steps 16 --seed 3
      soundtok detokenize clip.tok.jsonl - --decoder mse | play -
    """
    import sys

    from ..api import detokenize
    from ..errors import UsageError

    console = runtime(threads, quiet, verbose)
    if output == "-" and sys.stdout.isatty():
        raise UsageError("refusing to write binary audio to a terminal: redirect stdout "
                         "(> out.wav, | play -) or give an OUTPUT file or folder")
    dev = resolve_device(device)
    with console.progress("decoding", preparing="loading the codec") as bar:
        report = detokenize(stream, output, codec=codec, device=dev, decoder=decoder, steps=steps,
                            seed=seed, guidance=guidance, solver=solver, llm=llm,
                            chunk_seconds=chunk_seconds, fmt=fmt, on_progress=bar.update,
                            on_error=console.error)
    console.info(f"decoded {report.ok} item(s), {report.audio_seconds:.1f} s of audio")
