"""``soundtok evaluate``: reconstruction and caption metrics (a group of subcommands)."""

from __future__ import annotations

import json
import sys

import click

from ..errors import PartialFailure, UsageError
from .common import resolve_device, runtime_options


@click.group("evaluate", context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """Measure how good tokens and captions are.

    \b
    Subcommands:
      recon    reconstruction quality (mel-L1, LSD, STOI, PESQ, SI-SDR, ...),
               bitrate and token statistics, with codec2/Opus side by side
      caption  caption metrics (BLEU, METEOR, ROUGE-L, CIDEr-D, embedding
               similarity, label accuracy)
      fewshot  few-shot in-context classification by a frozen LLM over
               llm-codec tokens (accuracy, 95% CI, chance)

    Metric definitions: docs/evaluate.md.
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


@command.command("recon")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--deg", default=None, metavar="DIR",
              help="Folder of decoded files, matched to the references by relative path "
                   "(then by file name).")
@click.option("--codec", default=None, metavar="DIR|default",
              help="Tokenize and detokenize the references with this codec ('default' = the "
                   "built-in one).")
@click.option("--decoder", type=click.Choice(["flow", "mse"]), default="flow", show_default=True,
              help="Decoder of the codec.")
@click.option("--decoders", default=None, metavar="LIST",
              help="Several decoders in one run, e.g. flow,mse (overrides --decoder).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="ODE steps of the flow decoder (default: the codec's).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Noise seed of the flow decoder.")
@click.option("--baselines", default=None, metavar="LIST",
              help="Classical codecs on the same clips: codec2-MODE (3200, 2400, 1600, 1400, "
                   "1300, 1200, 700C, 450) and opus-Nk, comma-separated.")
@click.option("--tokens", default=None, metavar="STREAM",
              help="Pairs mode: the token stream the decoded files came from (exact bitrate, "
                   "token statistics).")
@click.option("--name", default="decoded", show_default=True,
              help="Pairs mode: the name of the decoded system.")
@click.option("--max-delay-ms", type=click.FloatRange(min=0), default=100.0, show_default=True,
              help="Largest delay searched for and removed.")
@click.option("--extended-stoi", is_flag=True, help="Also compute extended STOI (ESTOI).")
@click.option("--no-dnsmos", is_flag=True, help="Skip DNSMOS even when speechmos works.")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Score only the first N clips.")
@click.option("--json", "as_json", is_flag=True,
              help="JSON Lines on stdout: a run row, one row per system (and per clip with "
                   "--per-clip).")
@click.option("--per-clip", is_flag=True, help="Also report every clip.")
@click.option("--report", "report_dir", default=None, metavar="DIR",
              help="Write figures (PNG) and report.md into DIR.")
@click.option("--report-clips", type=click.IntRange(min=0), default=3, show_default=True,
              help="Clips shown as spectrograms in the report.")
@runtime_options
def recon(inputs, deg, codec, decoder, decoders, steps, seed, baselines, tokens, name,
          max_delay_ms, extended_stoi, no_dnsmos, limit, as_json, per_clip, report_dir,
          report_clips, console, device):
    """Reconstruction metrics: references vs decoded audio.

    INPUTS are the reference audio: files, folders, globs or manifests (a
    .jsonl/.csv manifest with "ref" and "deg" columns gives the pairs
    directly). Decoded audio comes from --codec (tokenize + detokenize here),
    from --deg DIR, or only from --baselines. Everything is scored at 16 kHz,
    after the delay of each output (found from band-envelope and waveform
    cross-correlation within +-100 ms) is removed. SI-SDR is meaningless for codecs that do not keep
    phase, soundtok's included. Bitrates are payload bits (no containers).

    \b
    Examples:
      soundtok evaluate recon clips/ --codec default --baselines codec2-450,opus-6k
      soundtok evaluate recon clips/ --codec mycodec/ --decoders flow,mse --report out/
      soundtok evaluate recon clips/ --deg decoded/ --tokens clips.tok.jsonl --json
      soundtok evaluate recon pairs.csv --per-clip --json | jq -c 'select(.type=="clip")'
    """
    from ..evaluate.recon import evaluate_recon

    decs = [d.strip() for d in decoders.split(",") if d.strip()] if decoders else [decoder]
    dev = resolve_device(device) if codec is not None else "cpu"
    with console.progress(limit, "scoring") as bar:
        result = evaluate_recon(list(inputs), deg=deg, codec=codec, decoders=decs, steps=steps,
                                seed=seed, baselines=baselines, tokens=tokens, name=name,
                                device=dev, max_delay_ms=max_delay_ms,
                                extended_stoi=extended_stoi, dnsmos=not no_dnsmos,
                                examples=report_clips if report_dir else 0, limit=limit,
                                on_clip=lambda _id: bar.advance(), on_error=console.error)
    if as_json:
        _print_json(result.rows(per_clip=per_clip))
    else:
        _print_recon(result, per_clip)
    if report_dir:
        from ..evaluate.report import write_report

        import shlex

        cmd = ("soundtok " + shlex.join(sys.argv[1:])
               if sys.argv[1:3] == ["evaluate", "recon"] else None)
        paths = write_report(result, report_dir, command=cmd)
        figures = sum(p.endswith(".png") for p in paths)
        console.info(f"report: {paths[-1]} ({figures} figures)")
    if result.failed:
        raise PartialFailure(f"{len(result.failed)} clip(s) could not be scored (listed above)")


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
        keys = ["mel_l1", "lsd_db", "stoi", "pesq_wb", "pesq_nb", "si_sdr_db"]
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
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read synonyms {path}: {getattr(e, 'strerror', None) or e}")
    if not isinstance(data, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()):
        raise UsageError(f"synonyms {path}: expected a JSON object {{label: [phrase, ...]}}")
    return data


@command.command("caption")
@click.argument("hyps")
@click.argument("refs")
@click.option("--labels", default=None, metavar="LIST|@FILE",
              help="Label set for the accuracy: comma-separated, or @file with one per line "
                   "(default: the items' gold labels).")
@click.option("--synonyms", default=None, metavar="FILE",
              help="JSON {label: [phrase, ...]} of extra phrases for the label matcher.")
@click.option("--no-embedding", is_flag=True, help="Skip the sentence-embedding similarity.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines on stdout.")
@click.option("--per-item", is_flag=True, help="Also report every item.")
@runtime_options
def caption(hyps, refs, labels, synonyms, no_embedding, as_json, per_item, console, device):
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


@command.command("fewshot")
@click.argument("tokens")
@click.option("--ways", type=click.IntRange(min=2), default=5, show_default=True,
              help="Labels per episode (N).")
@click.option("--shots", type=click.IntRange(min=0), default=1, show_default=True,
              help="Demonstrations per label (K).")
@click.option("--episodes", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Episode sampling seed.")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Ask every episode N times, its demonstrations reshuffled each time.")
@click.option("--llm", default=None, metavar="SPEC",
              help="The frozen LLM (default: the one the stream's llm-codec was built on; "
                   "another one is refused).")
@click.option("--instruction/--no-instruction", default=True, show_default=True,
              help="Start the prompt with an instruction naming the labels.")
@click.option("--mode", type=click.Choice(["rank", "generate"]), default="rank", show_default=True,
              help="rank: the label with the highest log-likelihood; generate: greedy text, "
                   "matched to a label.")
@click.option("--scales", default=None, metavar="LIST",
              help="Scales shown to the LLM: 0 (the words; the default, measured best), e.g. 0,1, or all.")
@click.option("--demos", default=None, metavar="STREAM",
              help="Take demonstrations from this labelled llm-codec stream (e.g. training folds) and "
                   "queries from TOKENS (default: both from TOKENS).")
@click.option("--calibrate", is_flag=True,
              help="rank mode: contextual calibration (subtract each label's score for a content-free query).")
@click.option("--predictions", default=None, metavar="FILE",
              help="Also write every judged query (episode, id, label, predicted) as JSON Lines.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line on stdout.")
@runtime_options
def fewshot(tokens, ways, shots, episodes, seed, repeats, llm, instruction, mode, scales, demos, calibrate,
            predictions, as_json, console, device):
    """Few-shot in-context classification by a frozen LLM over llm-codec tokens.

    TOKENS is a labelled token stream written by an llm-codec (its codes are
    the LLM's own tokens). Each N-way K-shot episode puts K demonstrations
    per label ("audio words" + answer) and one query into a prompt and ranks
    the labels by log-likelihood. Reports accuracy with a 95% bootstrap CI
    over episodes, the Wilson interval and chance (1/N). See docs/llm-codec.md.

    \b
    Examples:
      soundtok evaluate fewshot esc10.tokens.jsonl --ways 5 --shots 1 --episodes 200
      soundtok evaluate fewshot digits.jsonl --ways 10 --shots 2 --repeats 3 --json
      soundtok evaluate fewshot esc10_fold4.llm.jsonl --demos esc10_folds123.llm.jsonl --ways 2
    """
    from ..fileio import atomic_write
    from ..llm.loader import load_llm
    from ..llmcodec.fewshot import read_labelled_stream, run_fewshot

    try:
        picked = None if scales == "all" else [int(s) for s in (scales or "0").split(",")]
    except ValueError:
        raise UsageError(f"--scales must be comma-separated integers, not {scales!r}") from None
    header, items = read_labelled_stream(tokens)
    demo_header, demo_items = read_labelled_stream(demos) if demos else (None, None)
    model, tokenizer = load_llm(llm or (header.codec.get("llm") or {}).get("name"),
                                device=resolve_device(device))
    with console.progress(episodes, "episodes") as bar:
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
                      ["judged", str(res.judged)]]))
