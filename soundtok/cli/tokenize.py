"""``soundtok tokenize``: audio -> token stream (and ``--merge`` of streams)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..device import resolve_device
from ..errors import PartialFailure, UsageError
from .common import runtime
from .options import APP_SETTINGS, BatchSize, ChunkSeconds, Codec, Device, Llm, Output, Quiet, Threads, Verbose

app = typer.Typer(**APP_SETTINGS)


@app.command("tokenize")
def command(
    inputs: Annotated[list[str] | None, typer.Argument(metavar="INPUTS", show_default=False)] = None,
    output: Output = "-",
    codec: Codec = None,
    chunk_seconds: ChunkSeconds = 30.0,
    as_text: Annotated[bool, typer.Option(
        "--as-text", help="LLM-Codec only: write <id><TAB><the clip as the LLM's words> lines "
                          "instead of a token stream.")] = False,
    llm: Llm = None,
    manifests: Annotated[list[str] | None, typer.Option(
        "--manifest", metavar="FILE", show_default=False,
        help='A manifest (JSON Lines or CSV with a "path" column) to read, whatever its '
             "extension; repeatable. Same as giving it as an input.")] = None,
    shard: Annotated[str | None, typer.Option(
        "--shard", metavar="I/N", show_default=False,
        help="Tokenize only shard I of N (0 <= I < N): the items k with k mod N = I, "
             "counting items in input order from 0.")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=0, metavar="N",
        help="Audio decoding processes (0: decode in the main process). The model encodes "
             "in the main process.")] = 0,
    batch_size: BatchSize = 16,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Write -o FILE incrementally (each item appended and flushed) and, if it "
                         "exists, continue it: items already there are skipped, a cut-off last line "
                         "is repaired.")] = False,
    merge: Annotated[bool, typer.Option(
        "--merge", help="INPUTS are token stream files (e.g. shards) to merge into -o: headers "
                        "must match, ids must be unique, and shards 0..N-1 must all be there "
                        "once.")] = False,
    device: Device = "auto", threads: Threads = None, quiet: Quiet = False, verbose: Verbose = False,
):
    """Turn audio into discrete tokens (one JSON Lines stream).

    INPUTS are audio files (wav, flac, ogg, mp3), folders (searched
    recursively), glob patterns, manifests (.jsonl or .csv with a "path"
    column; "text"/"label" columns are carried into the stream) or "-" for
    audio bytes on stdin. Bad inputs are listed on stderr and skipped; the exit
    code is then 1. Items are written in input order.

    For large data sets, run N shards as independent jobs with --resume, then
    merge them (docs/scaling.md). Audio of any length is decoded and encoded as
    a stream; memory does not grow with duration.

    \b
    Examples:
      soundtok tokenize clip.wav > clip.tok.jsonl
      soundtok tokenize clip.wav | soundtok detokenize - out.wav
      soundtok tokenize recordings/ 'extra/*.flac' -o data.tok.jsonl
      cat clip.wav | soundtok tokenize - | jq -c '.codes'
      soundtok tokenize dog.wav --codec llm-codec --as-text
      soundtok tokenize --manifest m.jsonl --shard 3/8 --workers 2 -o s3.tok.jsonl --resume
      soundtok tokenize --merge s*.tok.jsonl -o all.tok.jsonl
    """
    console = runtime(threads, quiet, verbose)
    try:
        _run(inputs or [], output, codec, chunk_seconds, as_text, llm, manifests or [], shard, workers,
             batch_size, resume, merge, console, device)
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): leave with the documented 141, quietly.
        raise typer.Exit(141) from None


def _run(inputs, output, codec, chunk_seconds, as_text, llm, manifests, shard, workers, batch_size,
         resume, merge, console, device):
    if merge:
        used = [flag for flag, value in (("--manifest", manifests), ("--shard", shard),
                                         ("--workers", workers), ("--resume", resume),
                                         ("--codec", codec), ("--as-text", as_text), ("--llm", llm))
                if value]
        if used:
            raise UsageError(f"--merge takes token streams and -o only, not {used[0]}")
        from ..api import merge as merge_streams

        merge_streams(list(inputs), output, on_info=console.info)
        return
    if not inputs and not manifests:
        raise UsageError("give audio INPUTS or --manifest FILE (see 'soundtok tokenize --help')")
    from ..api import tokenize

    dev = resolve_device(device)
    with console.progress("tokenizing", preparing="loading the codec, listing the inputs") as bar:
        report = tokenize(list(inputs), output, codec=codec, device=dev,
                          chunk_seconds=chunk_seconds, on_error=console.error,
                          on_progress=bar.update, as_text=as_text, llm=llm,
                          manifests=list(manifests), shard=shard, workers=workers,
                          batch_size=batch_size, resume=resume, on_info=console.info)
    skipped = f", {report.skipped} already done" if report.skipped else ""
    console.info(f"tokenized {report.ok} item(s), {report.audio_seconds:.1f} s of audio{skipped}")
    if report.failed:
        raise PartialFailure(f"{len(report.failed)} of {report.ok + len(report.failed)} "
                             f"inputs failed (listed above)")
