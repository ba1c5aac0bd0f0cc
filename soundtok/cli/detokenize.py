"""``soundtok detokenize``: token stream -> audio."""

from __future__ import annotations

import click

from .common import resolve_device, runtime_options


@click.command("detokenize")
@click.argument("stream", default="-")
@click.argument("output", default="-")
@click.option("--codec", default=None, metavar="DIR",
              help='Codec directory or "llm-codec" (default: the built-in codec, or the built-in LLM-Codec '
                   'for an llm-codec stream; its one deterministic decoder ignores --decoder/--steps/--seed).')
@click.option("--decoder", type=click.Choice(["flow", "mse"]), default="flow", show_default=True,
              help="flow: conditional flow matching (probabilistic); mse: deterministic baseline.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="ODE steps of the flow decoder (default: the codec's, 6 for the built-in).")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed of the flow decoder.")
@click.option("--guidance", type=float, default=1.0, show_default=True,
              help="Classifier-free guidance scale (1 = none).")
@click.option("--solver", type=click.Choice(["euler", "midpoint"]), default="euler", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["wav", "flac"]), default=None,
              help="Audio format (default: from the file extension, wav for stdout).")
@click.option("--chunk-seconds", type=click.FloatRange(min=1.0), default=30.0, show_default=True)
@click.option("--llm", default=None, metavar="SPEC",
              help="LLM-Codec only: where to load its LLM from (default: the one it records).")
@runtime_options
def command(stream, output, codec, decoder, steps, seed, guidance, solver, fmt, chunk_seconds, llm,
            console, device):
    """Turn a token stream back into audio.

    STREAM is a token stream file or "-" (stdin, the default). OUTPUT is "-"
    (WAV on stdout, the default) or a file for a one-item stream, or a folder
    (existing, or ending in "/") that receives <id>.wav for every item.

    \b
    Examples:
      soundtok tokenize clip.wav | soundtok detokenize - out.wav
      soundtok detokenize data.tok.jsonl decoded/
      soundtok detokenize clip.tok.jsonl out.wav --steps 16 --seed 3
      soundtok detokenize clip.tok.jsonl - --decoder mse | play -
    """
    from ..api import detokenize

    dev = resolve_device(device)
    with console.progress(None, "decoding") as bar:
        report = detokenize(stream, output, codec=codec, device=dev, decoder=decoder, steps=steps,
                            seed=seed, guidance=guidance, solver=solver, llm=llm,
                            chunk_seconds=chunk_seconds, fmt=fmt, on_item=lambda p: bar.advance())
    console.info(f"decoded {report.ok} item(s), {report.audio_seconds:.1f} s of audio")
