"""Command-line interface: a thin layer over the library.

The CLI is built on typer. Each subcommand lives in ``soundtok/cli/<name>.py`` (a
``typer.Typer`` called ``app``), parses its flags, calls one library function and prints
the result; options several commands share are declared once, in ``options.py``.
Subcommand modules are imported only when used, so ``soundtok --help`` is fast.

Exit codes: 0 success; 1 failure (bad input, I/O error, some items of a batch
failed, training diverged); 2 usage error; 129 hung up (SIGHUP), 130 interrupted
(Ctrl-C, SIGINT), 143 terminated (SIGTERM) -- each after the same clean-up (temporary
files removed, workers stopped, the last checkpoint kept); 141 the reader of stdout
went away (e.g. ``| head``), as for other Unix tools -- quietly.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, SoundtokError, one_line
from .options import APP_SETTINGS, harden

EXIT_BROKEN_PIPE = 141


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C's KeyboardInterrupt, so that
    every clean-up that handles Ctrl-C (temporary files, workers, checkpoints) handles it too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: what the one error line says for each stop signal
_STOP_MESSAGES = {signal.SIGINT: "interrupted"}
for _name, _msg in (("SIGTERM", "terminated (SIGTERM)"), ("SIGHUP", "hung up (SIGHUP)")):
    if hasattr(signal, _name):
        _STOP_MESSAGES[getattr(signal, _name)] = _msg


def _on_stop_signal(signum, frame) -> None:
    for s in _STOP_MESSAGES:  # a second signal must not cut the clean-up short (kill -9 still can)
        if s != signal.SIGINT:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(s, signal.SIG_IGN)
    raise Stopped(signum)


@contextlib.contextmanager
def _stop_signals_handled():
    """SIGTERM and SIGHUP stop the command as Ctrl-C does (unless they are ignored, as
    under ``nohup``); the previous handlers come back afterwards."""
    old = {}
    for s in _STOP_MESSAGES:
        if s == signal.SIGINT:
            continue
        try:
            if signal.getsignal(s) == signal.SIG_DFL:
                old[s] = signal.signal(s, _on_stop_signal)
        except (ValueError, OSError):  # not the main thread
            pass
    try:
        yield
    finally:
        for s, h in old.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(s, h)

COMMANDS = {
    "tokenize": "Audio files -> token stream (JSON Lines).",
    "detokenize": "Token stream -> audio files.",
    "train-codec": "Train or fine-tune a codec on your audio.",
    "finetune-llm": "LoRA-finetune an LLM on audio/text token pairs.",
    "caption": "Token stream -> text captions.",
    "generate": "Text prompts -> token stream.",
    "evaluate": "Reconstruction, caption and few-shot metrics.",
    "cache": "List or clear the caches of derived files.",
}


class LazyGroup(TyperGroup):
    """The top-level group: a subcommand's module (``soundtok/cli/<name>.py``, which holds a
    ``typer.Typer`` called ``app``) is imported on first use."""

    def list_commands(self, ctx) -> list[str]:
        return [name for name in COMMANDS if _module_exists(name)]

    def get_command(self, ctx, name: str):
        if name not in COMMANDS or not _module_exists(name):
            return None
        mod = importlib.import_module(f"soundtok.cli.{name.replace('-', '_')}")
        return harden(typer.main.get_command(mod.app))

    def format_commands(self, ctx, formatter) -> None:
        # the one-line summaries, without importing every subcommand to read its docstring
        rows = [(name, COMMANDS[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _module_exists(name: str) -> bool:
    return importlib.util.find_spec(f"soundtok.cli.{name.replace('-', '_')}") is not None


app = typer.Typer(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
                  **{**APP_SETTINGS, "add_completion": True})


def _version(value: bool) -> None:
    if value:
        typer.echo(f"soundtok, version {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    """soundtok: sound <-> a few discrete tokens per second, for language models.

    \b
    Examples:
      soundtok tokenize clip.wav | soundtok detokenize - out.wav
      soundtok tokenize recordings/ -o data.tok.jsonl
      soundtok tokenize clip.wav | soundtok caption

    Every command reads "-" as stdin and writes "-" as stdout; only data goes to
    stdout. Exit codes: 0 ok, 1 failure, 2 usage error, 129/130/143 stopped
    by SIGHUP/Ctrl-C/SIGTERM (after cleaning up), 141 stdout's reader went
    away. Set SOUNDTOK_DEBUG=1 to see tracebacks.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every error becomes one ``error: ...`` line and an exit code."""
    debug = os.environ.get("SOUNDTOK_DEBUG", "") not in ("", "0")
    cmd = typer.main.get_command(app)
    if any(k.endswith("_COMPLETE") and k.startswith("_SOUNDTOK") for k in os.environ):
        cmd.main(args=argv, prog_name="soundtok")  # shell completion (completions/): typer's own exit
        return
    from ..fileio import input_scope

    try:
        # make_context + invoke rather than Command.main: main turns a broken pipe into a silent
        # exit 1 and prints a blank line on Ctrl-C; here both reach the handlers below.
        args = sys.argv[1:] if argv is None else [str(a) for a in argv]
        with _stop_signals_handled(), input_scope(), cmd.make_context("soundtok", args) as ctx:
            rv = cmd.invoke(ctx)
        code = rv if isinstance(rv, int) else 0
    except typer.Exit as e:
        code = e.exit_code
    except typer.Abort:
        _err("interrupted")
        code = EXIT_INTERRUPTED
    except typer.TyperException as e:  # usage errors (bad flags, missing arguments) are exit 2
        code = getattr(e, "exit_code", EXIT_FAILURE)
        hint = ""
        ctx = getattr(e, "ctx", None)
        if code == EXIT_USAGE and ctx is not None:
            hint = f" (see '{ctx.command_path} --help')"
        _err(e.format_message().replace("\n", " ") + hint)
    except BrokenPipeError:
        code = _broken_pipe()
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        _err(_STOP_MESSAGES.get(signum, "interrupted"))
        code = EXIT_INTERRUPTED if signum == signal.SIGINT else 128 + int(signum)
    except SoundtokError as e:
        if debug:
            import traceback
            traceback.print_exc()
        _err(str(e).split("\n")[0] if str(e) else type(e).__name__)
        code = e.exit_code
    except Exception as e:  # a bug or an unexpected environment problem
        if debug:
            import traceback
            traceback.print_exc()
            _err(f"{type(e).__name__}: {e}")
        else:
            msg = str(e).split("\n")[0] if str(e) else ""
            _err(f"{type(e).__name__}: {msg} (set SOUNDTOK_DEBUG=1 for the traceback)")
        code = EXIT_FAILURE
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        code = _broken_pipe()
    except (OSError, ValueError):
        pass
    if argv is None:  # the process ends here (not a caller's process that goes on)
        _leave_quickly(succeeded=code == 0)
    sys.exit(code)


def _leave_quickly(succeeded: bool) -> None:
    """The command's output is flushed and the process is about to exit: close stdout now, so
    that the next command of a pipe sees its end of input at once rather than after the
    interpreter's teardown.  After a success, also spare that teardown its garbage collection
    over every object still alive (``gc.freeze``; after importing torch the teardown took about
    a third of the import time, a quarter of that without the collection): everything the
    command opened is closed by then, the memory goes back to the system at exit all the same,
    and ``atexit`` handlers still run.  After a failure or an interruption the teardown is left
    whole (whatever a cut-short command left to the collector is still cleaned up)."""
    import gc

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no stdout, or not a file descriptor
        pass
    if succeeded:
        gc.freeze()


def _broken_pipe() -> int:
    """stdout's reader went away: stop quietly (no traceback at interpreter exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def _err(msg: str) -> None:
    msg = one_line(msg)
    try:
        sys.stderr.write(f"error: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # stderr closed (2>&-): nothing to tell
        pass
    except UnicodeEncodeError:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.write(f"error: {msg.encode('ascii', 'backslashreplace').decode()}\n")
