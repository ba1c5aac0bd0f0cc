"""``soundtok generate``: text prompts -> token stream."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from ..device import resolve_device
from .common import runtime
from .options import (
    APP_SETTINGS,
    Adapter,
    BatchSize,
    Device,
    Llm,
    Output,
    Quiet,
    Seed,
    Temperature,
    Threads,
    TopP,
    Verbose,
    above,
)

app = typer.Typer(**APP_SETTINGS)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "prompt"


def _read_prompts(prompts: tuple[str, ...], prompts_file: str | None) -> list[tuple[str, str]]:
    """``(id, prompt)`` pairs from arguments, a JSONL file or stdin lines."""
    from ..errors import UsageError

    out: list[tuple[str | None, str]] = []
    if prompts and prompts_file:
        raise UsageError("give prompts as arguments or with --prompts, not both")
    if prompts:
        for i, p in enumerate(prompts, 1):
            if not p.strip():
                raise UsageError(f"prompt {i} is empty")
            out.append((None, p))
    elif prompts_file:
        from ..fileio import iter_jsonl, note_input, std_stream

        try:
            f = std_stream("stdin", binary=False) if prompts_file == "-" else open(prompts_file, encoding="utf-8-sig")
        except OSError as e:
            raise UsageError(f"cannot read {prompts_file}: {e.strerror or e}") from None
        if prompts_file != "-":
            note_input(f)
        with f:
            try:
                rows = list(iter_jsonl(f, prompts_file, UsageError))
            except UnicodeDecodeError:
                from ..sniff import audio_file_kind

                kind = audio_file_kind(prompts_file) if prompts_file != "-" else None
                if kind:
                    raise UsageError(f"{prompts_file}: this is audio ({kind}), not prompts "
                                     f"(JSON Lines)") from None
                raise UsageError(f"{prompts_file} is not valid UTF-8 text (expected JSON Lines prompts)") from None
            for n, obj in rows:
                if isinstance(obj, str):
                    obj = {"prompt": obj}
                text = obj.get("prompt", obj.get("text")) if isinstance(obj, dict) else None
                if not isinstance(text, str):
                    raise UsageError(f'{prompts_file} line {n}: expected {{"prompt": "..."}}')
                if not text.strip():
                    raise UsageError(f"{prompts_file} line {n}: empty prompt")
                pid = obj.get("id")
                out.append((str(pid) if pid is not None else None, text))
    else:
        from ..fileio import read_line, std_stream

        f, n = std_stream("stdin", binary=False), 0
        while line := read_line(f, "<stdin>", n + 1, UsageError):
            n += 1
            if line.strip():
                out.append((None, line.strip()))
    if not out:
        raise UsageError("no prompts given (arguments, --prompts FILE or lines on stdin)")
    pairs = [(pid or f"{i:04d}-{_slug(text)}", text) for i, (pid, text) in enumerate(out, 1)]
    seen: set[str] = set()
    for pid, _ in pairs:  # every id is checked before anything is generated or written
        if pid in seen:
            raise UsageError(f"prompt id {pid!r} occurs twice; ids must be unique")
        try:
            pid.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"prompt id {pid!r} is not valid Unicode text") from None
        seen.add(pid)
    return pairs


@app.command("generate")
def command(
    prompts: Annotated[list[str] | None, typer.Argument(metavar="PROMPTS", show_default=False)] = None,
    prompts_file: Annotated[str | None, typer.Option(
        "--prompts", metavar="FILE", show_default=False,
        help='JSON Lines of {"prompt": ..., "id": ...} (- = stdin).')] = None,
    output: Output = "-",
    adapter: Adapter = None,
    llm: Llm = None,
    duration: Annotated[float, typer.Option(
        "--duration", metavar="S", callback=above(0),
        help="Longest audio to generate, in seconds (25 tokens/s with the default codec).")] = 10.0,
    temperature: Temperature = 1.0,
    top_p: TopP = 1.0,
    greedy: Annotated[bool, typer.Option(
        "--greedy", help="Most likely token at each step instead of sampling.")] = False,
    seed: Seed = 0,
    batch_size: BatchSize = 8,
    device: Device = "auto", threads: Threads = None, quiet: Quiet = False, verbose: Verbose = False,
):
    """Generate audio tokens for text PROMPTS (arguments, --prompts FILE, or
    one prompt per line on stdin).

    Writes a token stream for the adapter's codec; pipe it to `soundtok
    detokenize` to hear it. Only audio tokens can be generated; each item
    stops at </audio> or after --duration seconds. Prompt i (0-based, in
    input order) samples with seed SEED+i.

    \b
    Examples:
      soundtok generate "spoken digit seven" | soundtok detokenize - seven.wav
      soundtok generate "a dog is barking" "the sound of rain" -o gen.tok.jsonl
      soundtok generate --prompts prompts.jsonl --seed 3 | soundtok detokenize - out/
      echo "someone says four" | soundtok generate --temperature 0.8 --top-p 0.9
    """
    from ..audiolm.adapter import load_adapter
    from ..audiolm.tasks import GenerateOptions, generate_items, unfamiliar_prompts
    from ..tokens import open_token_writer

    console = runtime(threads, quiet, verbose)
    pairs = _read_prompts(tuple(prompts or ()), prompts_file)
    opts = GenerateOptions(duration=duration, temperature=temperature, top_p=top_p, seed=seed,
                           greedy=greedy, batch_size=batch_size)
    n = 0
    with console.progress("generating", len(pairs), unit="prompt",
                          preparing="loading the LLM and the adapter") as bar:
        alm, tokenizer, meta = load_adapter(adapter, llm=llm, device=resolve_device(device),
                                            progress=console.notice)
        _warn_unfamiliar(console, unfamiliar_prompts(meta, pairs))
        bar.start(len(pairs))
        with open_token_writer(output, alm.vocab.header) as w:
            for item in generate_items(alm, tokenizer, pairs, opts):
                w.write(item)
                n += 1
                bar.advance()
    console.info(f"generated {n} item(s)")


def _warn_unfamiliar(console, unknown: list[tuple[str, list[str]]]) -> None:
    """One ``warning:`` line per prompt with words the adapter never saw (at most five)."""
    for text, new in unknown[:5]:
        console.notice(f"warning: prompt {text!r}: this adapter was never trained on "
                       f"{', '.join(repr(w) for w in new[:4])}; expect audio unrelated to "
                       f"{'them' if len(new) > 1 else 'it'} (docs/llm.md, 'Prompts it knows')")
    if len(unknown) > 5:
        console.notice(f"warning: {len(unknown) - 5} more prompts hold words the adapter was never trained on")

