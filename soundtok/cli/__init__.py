"""Command-line interface: a thin layer over the library.

Each subcommand lives in ``soundtok/cli/<name>.py``, parses its flags, calls one
library function and prints the result. Subcommand modules are imported only
when used, so ``soundtok --help`` is fast.

Exit codes: 0 success; 1 failure (bad input, I/O error, some items of a batch
failed); 2 usage error; 130 interrupted (Ctrl-C); 141 the reader of stdout went
away (e.g. ``| head``), as for other Unix tools -- quietly.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from .. import __version__
from ..errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, SoundtokError

EXIT_BROKEN_PIPE = 141

COMMANDS = {
    "tokenize": "Audio files -> token stream (JSON Lines).",
    "detokenize": "Token stream -> audio files.",
    "train-codec": "Train or fine-tune a codec on your audio.",
    "finetune-llm": "LoRA-finetune an LLM on audio/text token pairs.",
    "caption": "Token stream -> text captions.",
    "generate": "Text prompts -> token stream.",
    "evaluate": "Reconstruction, caption and few-shot metrics.",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _module_exists(name)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _module_exists(name):
            return None
        mod = importlib.import_module(f"soundtok.cli.{name.replace('-', '_')}")
        return mod.command


def _module_exists(name: str) -> bool:
    return importlib.util.find_spec(f"soundtok.cli.{name.replace('-', '_')}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="soundtok")
def app() -> None:
    """soundtok: sound <-> a few discrete tokens per second, for language models.

    \b
    Examples:
      soundtok tokenize clip.wav | soundtok detokenize - out.wav
      soundtok tokenize recordings/ -o data.tok.jsonl
      soundtok tokenize clip.wav | soundtok caption

    Every command reads "-" as stdin and writes "-" as stdout; only data goes to
    stdout. Exit codes: 0 ok, 1 failure, 2 usage error. Set SOUNDTOK_DEBUG=1 to
    see tracebacks.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every error becomes one ``error: ...`` line and an exit code."""
    debug = os.environ.get("SOUNDTOK_DEBUG", "") not in ("", "0")
    if any(k.endswith("_COMPLETE") and k.startswith("_SOUNDTOK") for k in os.environ):
        app.main(args=argv, prog_name="soundtok")  # shell completion (completions/): click's own exit
        return
    try:
        # make_context + invoke rather than Command.main: main turns a broken pipe into a silent
        # exit 1 and prints a blank line on Ctrl-C; here both reach the handlers below.
        args = sys.argv[1:] if argv is None else [str(a) for a in argv]
        with app.make_context("soundtok", args) as ctx:
            rv = app.invoke(ctx)
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.exceptions.Abort:
        _err("interrupted")
        code = EXIT_INTERRUPTED
    except click.ClickException as e:  # usage errors: bad flags, missing arguments
        hint = ""
        if isinstance(e, click.UsageError) and e.ctx is not None:
            hint = f" (see '{e.ctx.command_path} --help')"
        _err(e.format_message().replace("\n", " ") + hint)
        code = EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code
    except BrokenPipeError:
        code = _broken_pipe()
    except KeyboardInterrupt:
        _err("interrupted")
        code = EXIT_INTERRUPTED
    except SoundtokError as e:
        if debug:
            import traceback
            traceback.print_exc()
        _err(str(e).splitlines()[0] if str(e) else type(e).__name__)
        code = e.exit_code
    except Exception as e:  # a bug or an unexpected environment problem
        if debug:
            import traceback
            traceback.print_exc()
            _err(f"{type(e).__name__}: {e}")
        else:
            msg = str(e).splitlines()[0] if str(e) else ""
            _err(f"{type(e).__name__}: {msg} (set SOUNDTOK_DEBUG=1 for the traceback)")
        code = EXIT_FAILURE
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = _broken_pipe()
    sys.exit(code)


def _broken_pipe() -> int:
    """stdout's reader went away: stop quietly (no traceback at interpreter exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def _err(msg: str) -> None:
    try:
        sys.stderr.write(f"error: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
