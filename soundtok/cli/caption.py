"""``soundtok caption``: token stream -> text captions."""

from __future__ import annotations

import json

import click

from .common import resolve_device, runtime_options


@click.command("caption")
@click.argument("stream", default="-")
@click.option("--adapter", default=None, metavar="DIR", help="Adapter directory (default: the shipped one).")
@click.option("--llm", default=None, metavar="SPEC",
              help="Where to load the adapter's LLM from (default: what the adapter records).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "text"]), default="jsonl", show_default=True,
              help='jsonl: {"id", "caption"} per line; text: one caption per line.')
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--beams", type=click.IntRange(min=1), default=1, show_default=True,
              help="Beam search with N beams (1 = greedy).")
@click.option("--sample", is_flag=True, help="Sample instead of greedy decoding.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="With --sample.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="With --sample: nucleus sampling.")
@click.option("--seed", type=int, default=0, show_default=True, help="With --sample.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--shots", "shots_file", default=None, metavar="DEMOS",
              help="Few-shot, no adapter: a labelled llm-codec token stream whose items are put into the "
                   "prompt as demonstrations; a frozen LLM answers in context (docs/llm-codec.md).")
@click.option("--labels", default=None, metavar="A,B,...",
              help="With --shots: answer by ranking these labels by log-likelihood (default: free "
                   "generation).")
@click.option("--instruction/--no-instruction", default=True, show_default=True,
              help="With --shots: start the prompt with an instruction naming the labels.")
@click.option("--scales", default=None, metavar="LIST",
              help="With --shots: llm-codec scales shown to the LLM: 0 (the words; default), e.g. 0,1, or all.")
@runtime_options
def command(stream, adapter, llm, fmt, max_new_tokens, beams, sample, temperature, top_p, seed, batch_size,
            shots_file, labels, instruction, scales, console, device):
    """Describe the audio of each item of a token STREAM (file or - for stdin).

    The stream must come from the codec the adapter was trained with.
    Captions are written in input order, one line per item.

    \b
    Examples:
      soundtok tokenize clip.wav | soundtok caption
      soundtok caption clips.tok.jsonl --format text
      soundtok caption clips.tok.jsonl --beams 4 > captions.jsonl
      soundtok caption clips.tok.jsonl --sample --temperature 0.8 --top-p 0.9 --seed 1
      soundtok caption clips.tok.jsonl --adapter runs/cap/final
      soundtok tokenize q.wav --codec llm-codec | soundtok caption --shots demos.llm.jsonl --labels dog,rain
    """
    from ..errors import UsageError

    if shots_file:
        if adapter or beams > 1 or sample:
            raise UsageError("--shots uses a frozen LLM in context: --adapter, --beams and --sample do not apply")
        _few_shot(stream, shots_file, labels, instruction, scales, llm, fmt, max_new_tokens, batch_size,
                  console, resolve_device(device))
        return
    if labels or scales:
        raise UsageError("--labels and --scales need --shots")
    from ..llm.adapter import load_adapter, read_meta, resolve_adapter
    from ..llm.tasks import CaptionOptions, caption_stream, open_stream
    from ..llm.vocab import AudioVocab

    if sample and beams > 1:
        raise UsageError("--beams and --sample cannot be combined")
    dev = resolve_device(device)
    vocab = AudioVocab.from_dict(read_meta(resolve_adapter(adapter)).get("codec") or {})
    reader = open_stream(stream, vocab)  # a stream from another codec fails before the model loads
    alm, tokenizer, _ = load_adapter(adapter, llm=llm, device=dev, progress=console.info)
    opts = CaptionOptions(max_new_tokens=max_new_tokens, beams=beams, sample=sample, temperature=temperature,
                          top_p=top_p, seed=seed, batch_size=batch_size)
    n = 0
    with console.progress(None, "captioning") as bar:
        for item, caption in caption_stream(alm, tokenizer, reader, opts):
            if fmt == "text":
                click.echo(" ".join(caption.split()))
            else:
                click.echo(json.dumps({"id": item.id, "caption": caption}, ensure_ascii=False))
            n += 1
            bar.advance()
    console.info(f"captioned {n} item(s)")


def _few_shot(stream, shots_file, labels, instruction, scales, llm, fmt, max_new_tokens, batch_size, console,
              device) -> None:
    from ..errors import UsageError
    from ..llm.loader import load_llm
    from ..llmcodec.fewshot import answer_stream
    from ..llmcodec.text import header_vocabularies
    from ..tokens import TokenReader

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
        model, tokenizer = load_llm(llm or (header.codec.get("llm") or {}).get("name"), device=device,
                                    progress=console.info)
        n = 0
        with console.progress(None, "answering") as bar:
            for item, answer, scores in answer_stream(model, tokenizer, header, reader, demos, demo_header,
                                                      labels=names, instruction=instruction, scales=picked,
                                                      max_new_tokens=max_new_tokens, batch_size=batch_size):
                if fmt == "text":
                    click.echo(" ".join(answer.split()))
                else:
                    row = {"id": item.id, "caption": answer}
                    if scores is not None:
                        row["scores"] = {k: round(v, 4) for k, v in scores.items()}
                    click.echo(json.dumps(row, ensure_ascii=False))
                n += 1
                bar.advance()
    console.info(f"answered {n} item(s) from {len(demos)} demonstration(s)")
