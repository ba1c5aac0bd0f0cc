"""``soundtok evaluate``: reconstruction and caption metrics (a group of subcommands)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Literal

import typer

from ..device import resolve_device
from ..errors import PartialFailure, UsageError
from ..llmcodec.templates import USE_INSTRUCTION
from .common import runtime
from .options import (
    APP_SETTINGS,
    Codec,
    Decoder,
    DecodeSteps,
    Device,
    Instruction,
    Json,
    Llm,
    Quiet,
    Scales,
    Seed,
    Threads,
    Verbose,
)

app = typer.Typer(name="evaluate", **APP_SETTINGS)


@app.callback()
def command() -> None:
    """Measure how good tokens and captions are.

    \b
    Subcommands:
      recon    reconstruction quality (WER/CER, mel-L1, LSD, STOI, PESQ,
               speaker similarity, DNSMOS, ...),
               bitrate and token statistics, with codec2/Opus side by side
      caption  caption metrics (BLEU, METEOR, ROUGE-L, CIDEr-D, embedding
               similarity, label accuracy)
      fewshot  few-shot in-context classification by a frozen LLM over
               llm-codec tokens (accuracy, 95% CI, chance)

    Metric definitions: docs/evaluate.md.

    \b
    Examples:
      soundtok evaluate recon clips/ --codec default --baselines codec2-450,opus-6k
      soundtok evaluate caption captions.jsonl refs.jsonl --json
      soundtok evaluate fewshot esc10.tokens.jsonl --ways 5 --shots 1
    """


def _out_console():
    from rich.console import Console

    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200,
                   highlight=False)


def _print_json(rows) -> None:
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


def _table(title, headers, rows):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        t.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for r in rows:
        t.add_row(*r)
    return t


@app.command("recon")
def recon(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUTS", help="Reference audio.")],
    deg: Annotated[str | None, typer.Option(
        "--deg", metavar="DIR", show_default=False,
        help="Folder of decoded files, matched to the references by relative path "
             "(then by file name).")] = None,
    codec: Codec = None,
    llm: Llm = None,
    decoder: Decoder = None,
    decoders: Annotated[str | None, typer.Option(
        "--decoders", metavar="LIST", show_default=False,
        help="Several decoders in one run, e.g. flow,mse (overrides --decoder).")] = None,
    steps: DecodeSteps = None,
    seed: Seed = 0,
    baselines: Annotated[str | None, typer.Option(
        "--baselines", metavar="LIST", show_default=False,
        help="Classical codecs on the same clips: codec2-MODE (3200, 2400, 1600, 1400, "
             "1300, 1200, 700C, 450) and opus-Nk, comma-separated.")] = None,
    tokens: Annotated[str | None, typer.Option(
        "--tokens", metavar="STREAM", show_default=False,
        help="Pairs mode: the token stream the decoded files came from (exact bitrate, "
             "token statistics).")] = None,
    name: Annotated[str, typer.Option("--name", metavar="NAME",
                                      help="Pairs mode: the name of the decoded system.")] = "decoded",
    max_delay_ms: Annotated[float, typer.Option("--max-delay-ms", min=0.0, metavar="MS",
                                                help="Largest delay searched for and removed.")] = 100.0,
    extended_stoi: Annotated[bool, typer.Option("--extended-stoi",
                                                help="Also compute extended STOI (ESTOI).")] = False,
    no_dnsmos: Annotated[bool, typer.Option("--no-dnsmos",
                                            help="Skip DNSMOS even when speechmos works.")] = False,
    no_asr: Annotated[bool, typer.Option("--no-asr", help="Skip the Whisper WER/CER.")] = False,
    asr_model: Annotated[Literal["base", "tiny.en"], typer.Option(
        "--asr-model", help="Whisper model judging intelligibility (offline weights).")] = "base",
    text_field: Annotated[str, typer.Option(
        "--text-field", metavar="FIELD",
        help="Manifest field with what is said (e.g. label for digit strings); 'none': always "
             "Whisper's transcript of the reference.")] = "text",
    no_speaker: Annotated[bool, typer.Option("--no-speaker",
                                             help="Skip the speaker similarity.")] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, metavar="N", show_default=False,
                                              help="Score only the first N clips.")] = None,
    as_json: Json = False,
    per_clip: Annotated[bool, typer.Option("--per-clip", help="Also report every clip.")] = False,
    report_dir: Annotated[str | None, typer.Option(
        "--report", metavar="DIR", show_default=False,
        help="Write figures (PNG) and report.md into DIR.")] = None,
    report_clips: Annotated[str, typer.Option(
        "--report-clips", metavar="N|ID,...",
        help="Clips shown as spectrograms in the report: the first N, or these clip ids.")] = "3",
    device: Device = "auto", threads: Threads = None, quiet: Quiet = False, verbose: Verbose = False,
):
    """Reconstruction metrics: references vs decoded audio.

    INPUTS are the reference audio: files, folders, globs or manifests (a
    .jsonl/.csv manifest with "ref" and "deg" columns gives the pairs
    directly). Decoded audio comes from --codec (tokenize + detokenize here),
    from --deg DIR, or only from --baselines. Everything is scored at 16 kHz,
    after the delay of each output (found from band-envelope and waveform
    cross-correlation within +-100 ms) is removed. SI-SDR is meaningless for codecs that do not keep
    phase, soundtok's included. Bitrates are payload bits (no containers).
    Optional metrics, skipped with one note when their packages are absent:
    Whisper WER/CER (against the manifest's text, else Whisper's transcript of
    the reference), speaker similarity (resemblyzer) and DNSMOS (speechmos).
    --codec "default" is the built-in codec; --seed sets the flow decoder's
    noise. With --json: a run row, one row per system (and per clip with
    --per-clip).

    \b
    Examples:
      soundtok evaluate recon clips/ --codec default --baselines codec2-450,opus-6k
      soundtok evaluate recon clips/ --codec mycodec/ --decoders flow,mse --report out/
      soundtok evaluate recon clips/ --codec default --report out/ --report-clips spk1/utt3,dog_2
      soundtok evaluate recon clips/ --codec llm-codec --no-dnsmos --json
      soundtok evaluate recon clips/ --deg decoded/ --tokens clips.tok.jsonl --json
      soundtok evaluate recon pairs.csv --per-clip --json | jq -c 'select(.type=="clip")'
      soundtok evaluate recon digits.jsonl --codec default --text-field label --baselines codec2-450
    """
    from ..evaluate.recon import evaluate_recon

    console = runtime(threads, quiet, verbose)
    shown = _report_clips(report_clips)
    if report_dir is not None:
        from ..evaluate.report import check_report_dir

        check_report_dir(report_dir)
    decs = [d.strip() for d in decoders.split(",") if d.strip()] if decoders else [decoder]
    dev = resolve_device(device) if codec is not None else "cpu"
    with console.progress("scoring", unit="clip", preparing="loading, listing the clips") as bar:
        result = evaluate_recon(list(inputs), deg=deg, codec=codec, decoders=decs, steps=steps,
                                seed=seed, baselines=baselines, tokens=tokens, name=name,
                                device=dev, max_delay_ms=max_delay_ms,
                                extended_stoi=extended_stoi, dnsmos=not no_dnsmos,
                                asr=not no_asr, asr_model=asr_model,
                                text_field=None if text_field.lower() == "none" else text_field,
                                speaker=not no_speaker,
                                examples=shown if report_dir else 0, limit=limit,
                                on_progress=bar.update, on_error=console.error, llm=llm)
    if as_json:
        _print_json(result.rows(per_clip=per_clip))
    else:
        _print_recon(result, per_clip)
    if report_dir:
        import shlex

        from ..evaluate.report import write_report

        cmd = ("soundtok " + shlex.join(sys.argv[1:])
               if sys.argv[1:3] == ["evaluate", "recon"] else None)
        paths = write_report(result, report_dir, command=cmd)
        figures = sum(p.endswith(".png") for p in paths)
        console.info(f"report: {paths[-1]} ({figures} figures)")
    if result.failed:
        raise PartialFailure(f"{len(result.failed)} clip(s) could not be scored (listed above)")


def _report_clips(value: str) -> int | list[str]:
    """``--report-clips``: a count (``3``) or clip ids (``spk1/utt3,dog_2``)."""
    value = value.strip()
    if value.isdigit():
        return int(value)
    ids = [x.strip() for x in value.split(",") if x.strip()]
    if not ids:
        raise UsageError("--report-clips takes a number or comma-separated clip ids")
    return ids


def _print_recon(result, per_clip: bool) -> None:
    from ..evaluate.report import summary_table

    out = _out_console()
    headers, rows = summary_table(result)
    out.print(_table(f"Reconstruction, {result.clips} clips at 16 kHz (↑ higher is better, "
                     f"↓ lower is better)", headers, rows))
    stats = [(s.name, t) for s in result.systems for t in (s.token_stats or [])]
    if stats:
        out.print(_table("Token statistics", ["system", "codebook", "size", "usage",
                                              "entropy bits", "perplexity"],
                         [[n, str(t.codebook), str(t.size), f"{t.usage:.3f}",
                           f"{t.entropy_bits:.2f}", f"{t.perplexity:.1f}"] for n, t in stats]))
    if per_clip:
        keys = [k for k in ("wer", "mel_l1", "mel_l1_4k", "lsd_db", "stoi", "pesq_wb",
                            "pesq_nb", "si_sdr_db", "speaker_sim")
                if any(k in c.metrics for s in result.systems for c in s.clips)]
        rows = []
        for s in result.systems:
            for c in s.clips:
                rows.append([s.name, c.id, f"{c.delay_ms:.1f}"]
                            + [("–" if c.metrics.get(k) is None or c.metrics[k] != c.metrics[k]
                                else f"{c.metrics[k]:.3f}") for k in keys])
        out.print(_table("Per clip", ["system", "clip", "delay ms", *keys], rows))
    notes = list(result.notes) + [f"{s.name}: {n}" for s in result.systems for n in s.notes()]
    for n in notes:
        out.print(f"note: {n}", markup=False)


def _parse_labels(labels: str | None) -> list[str] | None:
    if not labels:
        return None
    if labels.startswith("@"):
        try:
            with open(labels[1:], encoding="utf-8") as f:
                return [ln.strip() for ln in f if ln.strip()]
        except OSError as e:
            raise UsageError(f"cannot read label list {labels[1:]}: {e.strerror or e}") from None
    return [x.strip() for x in labels.split(",") if x.strip()]


def _parse_synonyms(path: str | None) -> dict[str, list[str]] | None:
    if not path:
        return None
    from ..fileio import loads_json

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1 << 24)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read synonyms {path}: {getattr(e, 'strerror', None) or e}") from e
    data = loads_json(text, f"synonyms {path}")
    if not isinstance(data, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()):
        raise UsageError(f"synonyms {path}: expected a JSON object {{label: [phrase, ...]}}")
    return data


@app.command("caption")
def caption(
    hyps: Annotated[str, typer.Argument(metavar="HYPS", help="Hypotheses (JSON Lines).")],
    refs: Annotated[str, typer.Argument(metavar="REFS", help="References (JSON Lines).")],
    labels: Annotated[str | None, typer.Option(
        "--labels", metavar="LIST|@FILE", show_default=False,
        help="Label set for the accuracy: comma-separated, or @file with one per line "
             "(default: the items' gold labels).")] = None,
    synonyms: Annotated[str | None, typer.Option(
        "--synonyms", metavar="FILE", show_default=False,
        help="JSON {label: [phrase, ...]} of extra phrases for the label matcher.")] = None,
    no_embedding: Annotated[bool, typer.Option("--no-embedding",
                                               help="Skip the sentence-embedding similarity.")] = False,
    as_json: Json = False,
    per_item: Annotated[bool, typer.Option("--per-item", help="Also report every item.")] = False,
    device: Device = "auto", threads: Threads = None, quiet: Quiet = False, verbose: Verbose = False,
):
    """Caption metrics: hypotheses vs references.

    HYPS and REFS are JSON Lines files with an "id" per line (token streams
    work too). A hypothesis has "text"; references have "text" (several lines
    may share an id) or a "texts" list, and optionally the gold "label".
    Metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (pycocoevalcap; METEOR and
    the PTB tokenizer need Java), MiniLM sentence-embedding similarity, and
    label accuracy from a documented matcher ("seven" matches "7", "barking"
    matches "bark"). SPICE and FENSE are not offered (they need downloads).

    \b
    Examples:
      soundtok evaluate caption captions.jsonl refs.jsonl
      soundtok evaluate caption captions.jsonl refs.jsonl --labels @classes.txt --json
    """
    from ..evaluate.captions import evaluate_captions

    console = runtime(threads, quiet, verbose)
    with console.status("scoring captions"):
        result = evaluate_captions(hyps, refs, labels=_parse_labels(labels),
                                   synonyms=_parse_synonyms(synonyms), embedding=not no_embedding,
                                   device=resolve_device(device) if not no_embedding else "cpu")
    if as_json:
        _print_json(result.rows(per_item=per_item))
        return
    out = _out_console()
    names = {"bleu_1": "BLEU-1", "bleu_2": "BLEU-2", "bleu_3": "BLEU-3", "bleu_4": "BLEU-4",
             "meteor": "METEOR", "rouge_l": "ROUGE-L", "cider_d": "CIDEr-D",
             "embed_sim": "MiniLM cosine", "accuracy": "label accuracy"}
    rows = [[names.get(k, k), "–" if v != v else f"{v:.4f}"] for k, v in result.metrics.items()]
    out.print(f"{result.items} items, {result.labelled} with a gold label, "
              f"{result.unmatched} of them matched no label", markup=False)
    out.print(_table("Caption metrics", ["metric", "value"], rows))
    if per_item:
        out.print(_table("Per item", ["id", "label", "predicted", "MiniLM", "hypothesis"],
                         [[r["id"], str(r["label"] or "–"), str(r["predicted"] or "–"),
                           "–" if r["embed_sim"] != r["embed_sim"] else f"{r['embed_sim']:.3f}",
                           r["hyp"]] for r in result.per_item]))
    for n in result.notes:
        out.print(f"note: {n}", markup=False)


@app.command("fewshot")
def fewshot(
    tokens: Annotated[str, typer.Argument(metavar="TOKENS", help="A labelled llm-codec token stream.")],
    ways: Annotated[int, typer.Option("--ways", min=2, metavar="N", help="Labels per episode (N).")] = 5,
    shots: Annotated[int, typer.Option("--shots", min=0, metavar="K",
                                       help="Demonstrations per label (K).")] = 1,
    episodes: Annotated[int, typer.Option("--episodes", min=1, metavar="N",
                                          help="Episodes to sample.")] = 100,
    seed: Seed = 0,
    repeats: Annotated[int, typer.Option(
        "--repeats", min=1, metavar="N",
        help="Ask every episode N times, its demonstrations reshuffled each time.")] = 1,
    llm: Llm = None,
    instruction: Instruction = USE_INSTRUCTION,
    mode: Annotated[Literal["rank", "generate"], typer.Option(
        "--mode", help="rank: the label with the highest log-likelihood; generate: greedy text, "
                       "matched to a label.")] = "rank",
    scales: Scales = None,
    demos: Annotated[str | None, typer.Option(
        "--demos", metavar="STREAM", show_default=False,
        help="Take demonstrations from this labelled llm-codec stream (e.g. training folds) and "
             "queries from TOKENS (default: both from TOKENS).")] = None,
    calibrate: Annotated[bool, typer.Option(
        "--calibrate", help="rank mode: contextual calibration (subtract each label's score for a "
                            "content-free query).")] = False,
    predictions: Annotated[str | None, typer.Option(
        "--predictions", metavar="FILE", show_default=False,
        help="Also write every judged query (episode, id, label, predicted) as JSON Lines.")] = None,
    as_json: Json = False,
    device: Device = "auto", threads: Threads = None, quiet: Quiet = False, verbose: Verbose = False,
):
    """Few-shot in-context classification by a frozen LLM over llm-codec tokens.

    TOKENS is a labelled token stream written by an llm-codec (its codes are
    the LLM's own tokens). Each N-way K-shot episode puts K demonstrations
    per label ("audio words" + answer) and one query into a prompt and ranks
    the labels by log-likelihood. Reports accuracy with a 95% bootstrap CI
    over episodes, the Wilson interval and chance (1/N). --seed sets the
    episode sampling; --llm defaults to the LLM the stream's llm-codec was
    built on (another one is refused). With --json: one line. See
    docs/llm-codec.md.

    \b
    Examples:
      soundtok evaluate fewshot esc10.tokens.jsonl --ways 5 --shots 1 --episodes 200
      soundtok evaluate fewshot digits.jsonl --ways 10 --shots 2 --repeats 3 --json
      soundtok evaluate fewshot esc10_fold4.llm.jsonl --demos esc10_folds123.llm.jsonl --ways 2
    """
    from ..evaluate.fewshot import run_fewshot
    from ..fileio import atomic_write
    from ..llm.loader import load_llm
    from ..llmcodec.incontext import read_labelled_stream

    console = runtime(threads, quiet, verbose)
    try:
        picked = None if scales == "all" else [int(s) for s in (scales or "0").split(",")]
    except ValueError:
        raise UsageError(f"--scales must be comma-separated integers, not {scales!r}") from None
    header, items = read_labelled_stream(tokens)
    demo_header, demo_items = read_labelled_stream(demos) if demos else (None, None)
    with console.progress("episodes", episodes, unit="episode", preparing="loading the LLM") as bar:
        model, tokenizer = load_llm(llm or (header.codec.get("llm") or {}).get("name"),
                                    device=resolve_device(device), progress=console.notice)
        bar.start(episodes)
        res = run_fewshot(model, tokenizer, header, items, ways=ways, shots=shots,
                          episodes=episodes, seed=seed, repeats=repeats, instruction=instruction,
                          mode=mode, scales=picked, progress=bar.advance,
                          demo_items=demo_items, demo_header=demo_header, calibrate=calibrate)
    if predictions:
        with atomic_write(predictions, "w") as f:
            for p in res.predictions:
                f.write(json.dumps(p) + "\n")
    row = res.row()
    row.update(queries=tokens, demos=demos or tokens, scales=picked if picked is not None else "all",
               calibrate=calibrate)
    if as_json:
        row.pop("per_episode")
        _print_json([row])
        return
    out = _out_console()
    out.print(_table(f"{ways}-way {shots}-shot, {episodes} episodes x {repeats}",
                     ["metric", "value"],
                     [["accuracy", f"{res.accuracy:.4f}"],
                      ["95% CI (bootstrap over episodes)", f"{res.ci_low:.4f} - {res.ci_high:.4f}"],
                      ["95% CI (Wilson)", f"{res.wilson_low:.4f} - {res.wilson_high:.4f}"],
                      ["chance (1/N)", f"{res.chance:.4f}"],
                      ["judged", str(res.judged)],
                      ["code perplexity per scale (queries)",
                       " / ".join(f"{u['perplexity']:.1f}" for u in res.code_use)],
                      ["rows used per scale (queries)",
                       " / ".join(f"{u['used']} of {u['size']}" for u in res.code_use)]]))
