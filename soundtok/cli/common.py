"""Console helpers shared by every subcommand (the shared options are in ``options.py``).

* ``--device auto|cpu|cuda|cuda:N`` and ``--threads N``;
* ``--quiet`` silences progress and info; progress bars and info messages are
  shown only when stderr is a terminal (``--verbose`` forces info messages);
* error lines for items of a batch always go to stderr.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import typer

from ..errors import UsageError, one_line


@dataclass
class Console:
    """Where human-facing output goes: stderr, and only when it should."""

    quiet: bool = False
    verbose: bool = False

    @property
    def interactive(self) -> bool:
        return not self.quiet and sys.stderr.isatty()

    def info(self, msg: str) -> None:
        if self.verbose or self.interactive:
            typer.echo(f"soundtok: {msg}", err=True)

    def error(self, msg: str) -> None:
        typer.echo(f"error: {one_line(msg)}", err=True)

    def progress(self, total: int | None, description: str):
        """A rich progress bar on stderr, or a no-op when not interactive."""
        if not self.interactive:
            return _NullProgress()
        from rich.console import Console as RichConsole
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=RichConsole(stderr=True), transient=True)
        return _RichProgress(prog, total, description)


class _NullProgress(contextlib.AbstractContextManager):
    def __exit__(self, *exc):
        return False

    def advance(self, n: int = 1) -> None:
        pass


class _RichProgress(contextlib.AbstractContextManager):
    def __init__(self, prog, total, description):
        self.prog, self.total, self.description = prog, total, description

    def __enter__(self):
        self.prog.__enter__()
        self.task = self.prog.add_task(self.description, total=self.total)
        return self

    def __exit__(self, *exc):
        return self.prog.__exit__(*exc)

    def advance(self, n: int = 1) -> None:
        self.prog.advance(self.task, n)


def resolve_device(device: str) -> str:
    """``--device``: only what it documents (auto, cpu, cuda, cuda:N; the option's own
    check refuses the rest at parsing), resolved by :func:`soundtok.device.resolve_device`."""
    from ..device import resolve_device as resolve
    from .options import DEVICE_RE

    if not isinstance(device, str) or not DEVICE_RE.match(device):
        raise UsageError(f"invalid --device {device!r}: use auto, cpu, cuda or cuda:N")
    return resolve(device)


def runtime(threads: int | None, quiet: bool, verbose: bool) -> Console:
    """Apply ``--threads`` and return the console ``--quiet``/``--verbose`` ask for."""
    if threads:
        import torch
        torch.set_num_threads(threads)
    return Console(quiet=quiet, verbose=verbose and not quiet)
