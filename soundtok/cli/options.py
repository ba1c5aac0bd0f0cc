"""Every option that several commands share, declared once (typer ``Annotated`` aliases).

A command takes ``device: Device = "auto"``, ``seed: Seed = 0`` and so on; the flag names,
metavar and help text live here only. Defaults stay in the command's signature, where they
differ (``--batch-size`` is 16 for tokenize and 8 for caption). Options used by one command
only are declared in that command's module.
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer

#: settings of every ``typer.Typer`` in the CLI: plain (click-style) help, soundtok's own
#: error handling (``soundtok.cli.main``), completion options on the top-level app only
APP_SETTINGS = dict(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


def above(low: float, high: float | None = None):
    """A typer callback: the value must be ``> low`` (and ``<= high``); ``None`` passes."""

    def check(value):
        if value is not None and not (value > low and (high is None or value <= high)):
            bound = f"in ({low:g}, {high:g}]" if high is not None else f"> {low:g}"
            raise typer.BadParameter(f"{value:g} is not {bound}")
        return value

    return check


# runtime: every command
Device = Annotated[str, typer.Option("--device", metavar="DEV", help="auto, cpu, cuda or cuda:N.")]
Threads = Annotated[int | None, typer.Option("--threads", min=1, metavar="N", show_default=False,
                                             help="CPU threads for torch (default: torch's choice).")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress or info on stderr.")]
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
Decoder = Annotated[Literal["flow", "mse"], typer.Option(
    "--decoder", help="flow: conditional flow matching (probabilistic); mse: deterministic baseline.")]
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
                                           help="Start the prompt with an instruction naming the labels.")]

# outputs
Output = Annotated[str, typer.Option("-o", "--output", metavar="FILE",
                                     help="Token stream to write (- = stdout).")]
RunDir = Annotated[str, typer.Option("-o", "--out", metavar="DIR", show_default=False,
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
