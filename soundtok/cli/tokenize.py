"""``soundtok tokenize``: audio -> token stream."""

from __future__ import annotations

import click

from ..errors import PartialFailure
from .common import resolve_device, runtime_options


@click.command("tokenize")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", default="-", show_default=True,
              help="Token stream to write (- = stdout).")
@click.option("--codec", default=None, metavar="DIR",
              help='Codec directory, or "llm-codec" for the built-in LLM-Codec (default: the built-in '
                   'sound codec).')
@click.option("--chunk-seconds", type=click.FloatRange(min=1.0), default=30.0, show_default=True,
              help="Encode long audio in chunks of this length (memory stays flat).")
@click.option("--as-text", is_flag=True,
              help="LLM-Codec only: write <id><TAB><the clip as the LLM's words> lines instead of a "
                   "token stream.")
@click.option("--llm", default=None, metavar="SPEC",
              help="LLM-Codec only: where to load its LLM from (default: the one it records).")
@runtime_options
def command(inputs, output, codec, chunk_seconds, as_text, llm, console, device):
    """Turn audio into discrete tokens (one JSON Lines stream).

    INPUTS are audio files (wav, flac, ogg, mp3), folders (searched
    recursively), glob patterns, manifests (.jsonl or .csv with a "path"
    column; "text"/"label" columns are carried into the stream) or "-" for
    audio bytes on stdin. Bad inputs are listed on stderr and skipped; the exit
    code is then 1.

    \b
    Examples:
      soundtok tokenize clip.wav > clip.tok.jsonl
      soundtok tokenize clip.wav | soundtok detokenize - out.wav
      soundtok tokenize recordings/ 'extra/*.flac' -o data.tok.jsonl
      cat clip.wav | soundtok tokenize - | jq -c '.codes'
      soundtok tokenize dog.wav --codec llm-codec --as-text
    """
    from ..api import tokenize

    dev = resolve_device(device)
    with console.progress(None, "tokenizing") as bar:
        report = tokenize(list(inputs), output, codec=codec, device=dev,
                          chunk_seconds=chunk_seconds, on_error=console.error,
                          on_item=lambda item: bar.advance(), as_text=as_text, llm=llm)
    console.info(f"tokenized {report.ok} item(s), {report.audio_seconds:.1f} s of audio")
    if report.failed:
        raise PartialFailure(f"{len(report.failed)} of {report.ok + len(report.failed)} "
                             f"inputs failed (listed above)")
