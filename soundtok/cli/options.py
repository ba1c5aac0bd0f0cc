"""Every option that several commands share, declared once (typer ``Annotated`` aliases).

A command takes ``device: Device = "auto"``, ``seed: Seed = 0`` and so on; the flag names,
metavar and help text live here only. Defaults stay in the command's signature, where they
differ (``--batch-size`` is 16 for tokenize and 8 for caption). Options used by one command
only are declared in that command's module.
"""

from __future__ import annotations

import math
import os
import re
from typing import Annotated, Any, Literal

import typer

#: settings of every ``typer.Typer`` in the CLI: plain (click-style) help, soundtok's own
#: error handling (``soundtok.cli.main``), completion options on the top-level app only
APP_SETTINGS = dict(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)

#: The largest integer any option takes (C ``long``): larger values are a usage error,
#: not an overflow deep inside a library.
INT_MAX = 2**63 - 1


# --------------------------------------------------------------------------- every option

def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: Upper bounds of options, with the reason given when a value is refused:
#: ``{flag: {command name or None (any command): (limit, reason)}}``.
UPPER_BOUNDS: dict[str, dict[str | None, tuple[float, str]]] = {
    "--workers": {None: (max(8, 4 * cpu_count()), f"each worker is a process decoding audio; more than 4 "
                                                  f"per CPU core ({cpu_count()} here) only add memory")},
    "--beams": {None: (64, "beam search keeps that many candidate captions of every item in memory")},
    "--max-new-tokens": {None: (8192, "longer than an LLM's context")},
    "--steps": {"train-codec": (10**8, "a run that long would not end"),
                None: (1000, "each ODE step runs the flow decoder once more over the whole item")},
    "--vae-steps": {None: (10**8, "a run that long would not end")},
    "--tokenizer-steps": {None: (10**8, "a run that long would not end")},
    "--vocoder-steps": {None: (10**8, "a run that long would not end")},
    "--decoder-steps": {None: (10**8, "a run that long would not end")},
    "--max-steps": {None: (10**8, "a run that long would not end")},
    "--epochs": {None: (10**5, "a run that long would not end")},
    "--batch": {None: (4096, "a batch is held in memory at once")},
    "--batch-size": {None: (4096, "a batch is held in memory at once")},
    "--grad-accum": {None: (4096, "more micro-batches per step than that is not useful")},
    "--threads": {None: (1024, "more threads than that only slow torch down")},
    "--chunk-seconds": {None: (3600, "a chunk is held in memory whole")},
    "--duration": {None: (3600, "every audio token of an item stays in the LLM's context")},
    "--lora-r": {None: (4096, "a LoRA rank above that is larger than any supported LLM's layers")},
    "--episodes": {None: (10**6, "an evaluation that long would not end")},
    "--repeats": {None: (1000, "every repeat asks each episode once more")},
}


def _check_number(value: Any, bound: tuple[float, str] | None) -> None:
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_number(v, bound)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise typer.BadParameter(f"{value!r} is not a finite number")
    if isinstance(value, int) and abs(value) > INT_MAX:
        raise typer.BadParameter(f"{value} is too large (at most {INT_MAX})")
    if bound is not None and value > bound[0]:
        shown = value if isinstance(value, int) else f"{value:g}"
        raise typer.BadParameter(f"{shown} is more than {bound[0]:g}: {bound[1]}")


def _checked(callback, bound: tuple[float, str] | None):
    def check(ctx, param, value):
        _check_number(value, bound)
        return callback(ctx, param, value) if callback is not None else value
    return check


def harden(cmd: Any, top: str | None = None) -> Any:
    """Check every numeric option of ``cmd`` (and its subcommands) once, here: a float
    must be finite (NaN and inf are usage errors, exit 2), an integer must fit a C long,
    and the options of :data:`UPPER_BOUNDS` have an upper bound.  Called on each
    subcommand as it is loaded, so no command can forget it.  (The check runs on the
    converted value, before the option's own callback.)"""
    top = top or cmd.name
    for p in cmd.params:
        if getattr(p, "_soundtok_checked", False):
            continue
        flag = max(getattr(p, "opts", None) or [""], key=len)
        bounds = UPPER_BOUNDS.get(flag, {})
        p.callback = _checked(p.callback, bounds.get(top, bounds.get(None)))
        p._soundtok_checked = True
    for sub in getattr(cmd, "commands", {}).values():
        harden(sub, top)
    return cmd


def _path_given(value):
    """A typer callback for output paths: not empty, no NUL."""
    if value is not None and (not str(value).strip() or "\0" in str(value)):
        raise typer.BadParameter("the path is empty" if not str(value).strip() else "the path contains NUL")
    return value


def _run_dir(value):
    _path_given(value)
    if value == "-":
        raise typer.BadParameter("a run directory is a folder, not - (stdout)")
    return value


DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d{1,4})$")


def _device(value):
    if value is not None and not DEVICE_RE.match(value):
        raise typer.BadParameter(f"{value!r}: use auto, cpu, cuda or cuda:N")
    return value


def json_option(value: str, flag: str) -> Any:
    """The JSON object an option gives inline or as a file (``--config``): a usage error,
    in one line, for a missing file, invalid, NaN-bearing or deeply nested JSON, or a
    value that is not an object."""
    from ..errors import UsageError
    from ..fileio import loads_json

    text = value
    if os.path.exists(value) and not os.path.isfile(value):
        raise UsageError(f"{flag}: {value} is not a regular file (give a config file or inline JSON)")
    if os.path.isfile(value):
        try:
            with open(value, "rb") as f:
                text = f.read((1 << 20) + 1)
        except OSError as e:
            raise UsageError(f"{flag}: cannot read {value}: {e.strerror or e}") from None
        if len(text) > 1 << 20:
            raise UsageError(f"{flag}: {value} is larger than 1 MiB; not a config")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UsageError(f"{flag}: {value} is not UTF-8 text") from None
    elif not value.lstrip().startswith(("{", "[", '"')) and os.sep in value:
        raise UsageError(f"{flag}: no such file: {value}")
    obj = loads_json(text, flag)
    if not isinstance(obj, dict):
        raise UsageError(f"{flag} must be a JSON object, not {type(obj).__name__}")
    return obj


def above(low: float, high: float | None = None):
    """A typer callback: the value must be ``> low`` (and ``<= high``); ``None`` passes."""

    def check(value):
        if value is not None and not (value > low and (high is None or value <= high)):
            bound = f"in ({low:g}, {high:g}]" if high is not None else f"> {low:g}"
            raise typer.BadParameter(f"{value:g} is not {bound}")
        return value

    return check


# runtime: every command
Device = Annotated[str, typer.Option("--device", metavar="DEV", callback=_device,
                                     help="auto, cpu, cuda or cuda:N.")]
Threads = Annotated[int | None, typer.Option(
    "--threads", min=1, metavar="N", show_default=False,
    help="CPU threads for torch (default: torch's choice).")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress, info or notices on stderr (errors only).")]
Verbose = Annotated[bool, typer.Option("-v", "--verbose",
                                       help="Info messages even when stderr is not a terminal.")]

# models
Codec = Annotated[str | None, typer.Option(
    "--codec", metavar="CODEC", show_default=False,
    help='A codec directory, "default" (the built-in sound codec) or "llm-codec" (the built-in '
         'LLM-Codec).')]
Llm = Annotated[str | None, typer.Option(
    "--llm", metavar="SPEC", show_default=False,
    help="The LLM: a built-in name (gemma3-270m), a Hugging Face model directory or a .gguf file "
         "(default: the one the codec, adapter or stream records; gemma3-270m to train).")]
Adapter = Annotated[str | None, typer.Option("--adapter", metavar="DIR", show_default=False,
                                             help="Adapter directory (default: the shipped one).")]

# decoding tokens to audio
Decoder = Annotated[Literal["flow", "mse"] | None, typer.Option(
    "--decoder", show_default=False,
    help="flow: conditional flow matching (probabilistic); mse: deterministic (default: the "
         "codec's own, its config's \"decoder\").")]
DecodeSteps = Annotated[int | None, typer.Option(
    "--steps", min=1, metavar="N", show_default=False,
    help="ODE steps of the flow decoder (default: the codec's, 6 for the built-in).")]
ChunkSeconds = Annotated[float, typer.Option(
    "--chunk-seconds", min=1.0, metavar="S",
    help="Process long audio in chunks of this length (memory stays flat).")]
Seed = Annotated[int, typer.Option("--seed", metavar="N",
                                   help="Random seed: the same seed gives the same output.")]

# sampling text or tokens from an LLM
Temperature = Annotated[float, typer.Option("--temperature", metavar="T", callback=above(0),
                                            help="Sampling temperature (> 0).")]
TopP = Annotated[float, typer.Option("--top-p", metavar="P", callback=above(0, 1),
                                     help="Nucleus sampling: keep the most likely tokens holding "
                                          "this much probability.")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, metavar="N",
                                        help="Items (clips, prompts, sequences) processed together; "
                                             "results do not depend on it.")]

# in-context use of a frozen LLM over llm-codec tokens
Scales = Annotated[str | None, typer.Option(
    "--scales", metavar="LIST", show_default=False,
    help="llm-codec scales shown to the LLM: 0 (the words; the default, measured best), e.g. 0,1, "
         "or all.")]
Instruction = Annotated[bool, typer.Option("--instruction/--no-instruction",
                                           help="Start the prompt with an instruction naming the labels "
                                                "(off by default: measured better without, docs/llm-codec.md).")]

# outputs
Output = Annotated[str, typer.Option("-o", "--output", metavar="FILE", callback=_path_given,
                                     help="Token stream to write (- = stdout).")]
RunDir = Annotated[str, typer.Option("-o", "--out", metavar="DIR", show_default=False, callback=_run_dir,
                                     help="Run directory (checkpoints, train.log, metrics.csv, final/).")]
Json = Annotated[bool, typer.Option("--json", help="JSON Lines on stdout instead of tables.")]

# training
Resume = Annotated[bool, typer.Option("--resume", help="Continue from the latest checkpoint in --out.")]
SaveEvery = Annotated[int, typer.Option("--save-every", min=1, metavar="N",
                                        help="Checkpoint every N steps (atomically; the last 2 are kept).")]
ValEvery = Annotated[int | None, typer.Option(
    "--val-every", min=1, metavar="N", show_default=False,
    help="Validate every N steps (default: once per epoch of training data).")]
Lr = Annotated[float, typer.Option("--lr", metavar="LR", callback=above(0), help="AdamW learning rate.")]
