"""``soundtok generate``: text prompts -> token stream."""

from __future__ import annotations

import json
import re
import sys

import click

from .common import resolve_device, runtime_options


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
        try:
            f = sys.stdin if prompts_file == "-" else open(prompts_file, encoding="utf-8-sig")
        except OSError as e:
            raise UsageError(f"cannot read {prompts_file}: {e.strerror or e}") from None
        with f:
            try:
                lines = list(f)
            except UnicodeDecodeError:
                raise UsageError(f"{prompts_file} is not valid UTF-8 text (expected JSON Lines prompts)") from None
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    raise UsageError(f"{prompts_file} line {n}: invalid JSON") from None
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
        for line in sys.stdin:
            if line.strip():
                out.append((None, line.strip()))
    if not out:
        raise UsageError("no prompts given (arguments, --prompts FILE or lines on stdin)")
    return [(pid or f"{i:04d}-{_slug(text)}", text) for i, (pid, text) in enumerate(out, 1)]


@click.command("generate")
@click.argument("prompts", nargs=-1)
@click.option("--prompts", "prompts_file", default=None, metavar="FILE",
              help='JSON Lines of {"prompt": ..., "id": ...} (- = stdin).')
@click.option("-o", "--output", default="-", show_default=True, help="Token stream to write (- = stdout).")
@click.option("--adapter", default=None, metavar="DIR", help="Adapter directory (default: the shipped one).")
@click.option("--llm", default=None, metavar="SPEC",
              help="Where to load the adapter's LLM from (default: what the adapter records).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Longest audio to generate, in seconds (25 tokens/s with the default codec).")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Nucleus sampling: keep the most likely tokens holding this much probability.")
@click.option("--greedy", is_flag=True, help="Most likely token at each step instead of sampling.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Prompt i (0-based, in input order) samples with seed SEED+i.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@runtime_options
def command(prompts, prompts_file, output, adapter, llm, duration, temperature, top_p, greedy, seed,
            batch_size, console, device):
    """Generate audio tokens for text PROMPTS (arguments, --prompts FILE, or
    one prompt per line on stdin).

    Writes a token stream for the adapter's codec; pipe it to `soundtok
    detokenize` to hear it. Only audio tokens can be generated; each item
    stops at </audio> or after --duration seconds.

    \b
    Examples:
      soundtok generate "spoken digit seven" | soundtok detokenize - seven.wav
      soundtok generate "a dog is barking" "the sound of rain" -o gen.tok.jsonl
      soundtok generate --prompts prompts.jsonl --seed 3 | soundtok detokenize - out/
      echo "someone says four" | soundtok generate --temperature 0.8 --top-p 0.9
    """
    from ..llm.adapter import load_adapter
    from ..llm.tasks import GenerateOptions, generate_items
    from ..tokens import open_token_writer

    pairs = _read_prompts(prompts, prompts_file)
    alm, tokenizer, _ = load_adapter(adapter, llm=llm, device=resolve_device(device), progress=console.info)
    opts = GenerateOptions(duration=duration, temperature=temperature, top_p=top_p, seed=seed,
                           greedy=greedy, batch_size=batch_size)
    n = 0
    with console.progress(len(pairs), "generating") as bar, open_token_writer(output, alm.vocab.header) as w:
        for item in generate_items(alm, tokenizer, pairs, opts):
            w.write(item)
            n += 1
            bar.advance()
    console.info(f"generated {n} item(s)")
