"""``soundtok caption``: token stream -> text captions."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Literal

import typer

from ..device import resolve_device
from ..llmcodec.templates import USE_INSTRUCTION
from .common import runtime
from .options import (
    APP_SETTINGS,
    Adapter,
    BatchSize,
    Device,
    Instruction,
    Llm,
    Quiet,
    Scales,
    Seed,
    Temperature,
    Threads,
    TopP,
    Verbose,
)

app = typer.Typer(**APP_SETTINGS)


@app.command("caption")
def command(
    stream: Annotated[str, typer.Argument(metavar="STREAM", help="Token stream file (- = stdin).")] = "-",
    adapter: Adapter = None,
    llm: Llm = None,
    fmt: Annotated[Literal["jsonl", "text"], typer.Option(
        "--format", help='jsonl: {"id", "caption"} per line; text: one caption per line.')] = "jsonl",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, metavar="N",
                                                help="Longest caption, in LLM tokens.")] = 32,
    beams: Annotated[int, typer.Option("--beams", min=1, metavar="N",
                                       help="Beam search with N beams (1 = greedy).")] = 1,
    sample: Annotated[bool, typer.Option("--sample", help="Sample instead of greedy decoding.")] = False,
    temperature: Temperature = 1.0,
    top_p: TopP = 1.0,
    seed: Seed = 0,
    batch_size: BatchSize = 8,
    shots_file: Annotated[str | None, typer.Option(
        "--shots", metavar="DEMOS", show_default=False,
        help="Few-shot, no adapter: a labelled llm-codec token stream whose items are put into the "
             "prompt as demonstrations; a frozen LLM answers in context (docs/llm-codec.md).")] = None,
    labels: Annotated[str | None, typer.Option(
        "--labels", metavar="A,B,...", show_default=False,
        help="With --shots: answer by ranking these labels by log-likelihood (default: free "
             "generation).")] = None,
    instruction: Instruction = USE_INSTRUCTION,
    scales: Scales = None,
    output: Annotated[str, typer.Option("-o", "--output", metavar="FILE",
                                        help="Captions file to write (- = stdout); a file appears "
                                             "complete or not at all.")] = "-",
    device: Device = "auto", threads: Threads = None, quiet: Quiet = False, verbose: Verbose = False,
):
    """Describe the audio of each item of a token STREAM (file or - for stdin).

    The stream must come from the codec the adapter was trained with.
    Captions are written in input order, one line per item. --temperature,
    --top-p and --seed apply with --sample; --instruction and --scales with
    --shots.

    \b
    Examples:
      soundtok tokenize clip.wav | soundtok caption
      soundtok caption clips.tok.jsonl --format text
      soundtok caption clips.tok.jsonl --beams 4 -o captions.jsonl
      soundtok caption clips.tok.jsonl --sample --temperature 0.8 --top-p 0.9 --seed 1
      soundtok caption clips.tok.jsonl --adapter runs/cap/final
      soundtok tokenize q.wav --codec llm-codec | soundtok caption --shots demos.llm.jsonl --labels dog,rain
    """
    from ..errors import UsageError

    console = runtime(threads, quiet, verbose)
    if shots_file:
        if adapter or beams > 1 or sample:
            raise UsageError("--shots uses a frozen LLM in context: --adapter, --beams and --sample do not apply")
        _few_shot(stream, shots_file, labels, instruction, scales, llm, fmt, max_new_tokens, batch_size,
                  console, resolve_device(device), output)
        return
    if labels or scales:
        raise UsageError("--labels and --scales need --shots")
    from ..audiolm.tasks import CaptionOptions, caption_stream, open_and_load
    from ..tokens import count_items

    if sample and beams > 1:
        raise UsageError("--beams and --sample cannot be combined")
    dev = resolve_device(device)
    opts = CaptionOptions(max_new_tokens=max_new_tokens, beams=beams, sample=sample, temperature=temperature,
                          top_p=top_p, seed=seed, batch_size=batch_size)
    n = 0
    with console.progress("captioning", preparing="loading the LLM and the adapter") as bar:
        # the stream's header is read while the model loads (a stream from another codec
        # fails before a merged model is built, see open_and_load)
        reader, (alm, tokenizer, _) = open_and_load(stream, adapter, llm=llm, device=dev,
                                                    progress=console.notice)
        with reader, _lines_out(output) as emit:  # opened after the stream: an output that is it is refused
            bar.start(count_items(stream))
            for item, caption in caption_stream(alm, tokenizer, reader, opts):
                emit(_caption_line(item.id, caption, fmt))
                n += 1
                bar.advance()
    console.info(f"captioned {n} item(s)" + (f" into {output}" if output != "-" else ""))


def _caption_line(item_id: str, caption, fmt: str) -> str:
    """One output line: JSON ``{"id", "caption", "score"[, "unsure"]}``, or the caption as
    text (``(unsure)`` in front where the adapter's calibration flags it)."""
    if fmt == "text":
        return ("(unsure) " if caption.unsure else "") + " ".join(caption.text.split())
    row = {"id": item_id, "caption": caption.text, "score": caption.score}
    if caption.unsure is not None:
        row["unsure"] = caption.unsure
    return json.dumps(row, ensure_ascii=False)


@contextlib.contextmanager
def _lines_out(output: str):
    """``emit(line)`` for stdout (``-``) or for a file written atomically (complete or absent);
    an output that is one of the inputs read so far is refused (:func:`~soundtok.fileio.output_target`)."""
    from ..fileio import atomic_write, output_target

    if output_target(output).kind == "stdout":
        yield typer.echo
        return

    with atomic_write(output, "w") as f:
        yield lambda line: f.write(line + "\n")


def _few_shot(stream, shots_file, labels, instruction, scales, llm, fmt, max_new_tokens, batch_size, console,
              device, output) -> None:
    from ..errors import UsageError
    from ..llm.loader import load_llm
    from ..llmcodec.incontext import answer_stream
    from ..llmcodec.text import header_vocabularies
    from ..tokens import TokenReader, count_items

    names = [x.strip() for x in labels.split(",") if x.strip()] if labels else None
    if labels is not None and not names:
        raise UsageError("--labels is empty")
    try:
        picked = None if scales == "all" else [int(x) for x in (scales or "0").split(",")]
    except ValueError:
        raise UsageError(f"--scales must be comma-separated integers, not {scales!r}") from None
    with TokenReader(shots_file) as r:
        demo_header, demos = r.header, list(r)
    header_vocabularies(demo_header)
    with TokenReader(stream) as reader:
        header = reader.header
        header_vocabularies(header)
        n = 0
        with console.progress("answering", preparing="loading the LLM") as bar, _lines_out(output) as emit:
            model, tokenizer = load_llm(llm or (header.codec.get("llm") or {}).get("name"), device=device,
                                        progress=console.notice)
            bar.start(count_items(stream))
            for item, answer, scores in answer_stream(model, tokenizer, header, reader, demos, demo_header,
                                                      labels=names, instruction=instruction, scales=picked,
                                                      max_new_tokens=max_new_tokens, batch_size=batch_size):
                if fmt == "text":
                    emit(" ".join(answer.split()))
                else:
                    row = {"id": item.id, "caption": answer}
                    if scores is not None:
                        row["scores"] = {k: round(v, 4) for k, v in scores.items()}
                    emit(json.dumps(row, ensure_ascii=False))
                n += 1
                bar.advance()
    console.info(f"answered {n} item(s) from {len(demos)} demonstration(s)")
