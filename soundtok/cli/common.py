"""Console helpers shared by every subcommand (the shared options are in ``options.py``).

* ``--quiet`` silences progress, info and notices; progress displays and info
  messages are shown only when stderr is a terminal (``--verbose`` forces info
  messages); notices (e.g. a ~1 GB cache being written) are shown unless
  ``--quiet``, terminal or not; error lines for items of a batch always go to
  stderr.
* A progress display lives on stderr only: a spinner while models load, then a
  bar with the count, the rate and the time left where the total is known (the
  count, rate and time so far where it is not). When stdout is the same terminal,
  every line written to stdout while the display is up is written with the display
  cleared first and redrawn below it, so that results and the display never share
  a line. The display is transient: it is gone when the command ends.

The ``--device`` rule is the library's (:func:`soundtok.device.resolve_device`).
"""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass, field
from typing import Any

import typer

from ..device import resolve_device  # --device: one rule for the library and the CLI
from ..errors import one_line

__all__ = ["Console", "resolve_device", "runtime"]

@dataclass
class Console:
    """Where human-facing output goes: stderr, and only when it should."""

    quiet: bool = False
    verbose: bool = False
    _live: Any = field(default=None, repr=False)

    @property
    def interactive(self) -> bool:
        return not self.quiet and _isatty(sys.stderr)

    def info(self, msg: str) -> None:
        """``soundtok: msg`` on stderr when it is a terminal (or with ``--verbose``)."""
        if self.verbose or self.interactive:
            self._say(f"soundtok: {msg}")

    def notice(self, msg: str) -> None:
        """``soundtok: msg`` on stderr unless ``--quiet``, terminal or not: for what a user must
        not miss in a pipe either (the one-time ~1 GB LLM cache, for instance)."""
        if not self.quiet:
            self._say(f"soundtok: {msg}")

    def error(self, msg: str) -> None:
        self._say(f"error: {one_line(msg)}")

    def _say(self, line: str) -> None:
        if self._live is not None:
            self._live.print_err(line)
            return
        try:
            typer.echo(line, err=True)
        except (OSError, ValueError):
            pass

    def progress(self, description: str, total: int | None = None, *, unit: str = "item",
                 preparing: str | None = None):
        """A progress display on stderr (a no-op object when stderr is not a terminal or with
        ``--quiet``), used as a context manager.

        ``total``: the number of units, when known (a bar, the rate and the time left), else
        ``None`` (the count, the rate and the time so far). ``preparing``: a spinner with this
        text until the first :meth:`~_Live.update` or :meth:`~_Live.start` (model loading,
        input scanning); the clock for rate and time left starts then.
        """
        if not self.interactive:
            return _NullProgress()
        return _Live(self, description, total, unit, preparing)

    def status(self, text: str):
        """A spinner with ``text`` on stderr while the block runs (see :meth:`progress`)."""
        return self.progress(text, preparing=text)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _NullProgress(contextlib.AbstractContextManager):
    """The progress display when there is none: every call does nothing."""

    def __exit__(self, *exc):
        return False

    def advance(self, n: int = 1) -> None:
        pass

    def update(self, done: int, total: int | None = None) -> None:
        pass

    def start(self, total: int | None = None, done: int = 0, description: str | None = None) -> None:
        pass

    def describe(self, description: str) -> None:
        pass


def _columns():
    from rich.progress import BarColumn, ProgressColumn, SpinnerColumn, TextColumn
    from rich.text import Text

    def plural(unit: str, n: float) -> str:
        return unit if n == 1 else unit + "s"

    def clock(seconds: float | None) -> str:
        if seconds is None:
            return "-:--:--"
        s = int(max(0, seconds))
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"

    class _Bar(BarColumn):
        def render(self, task):
            return Text("") if task.fields.get("preparing") else super().render(task)

    class _Count(ProgressColumn):
        def render(self, task):
            if task.fields.get("preparing"):
                return Text("")
            unit, done = task.fields.get("unit", "item"), int(task.completed)
            if task.total is None:
                return Text(f"{done} {plural(unit, done)}", style="progress.download")
            return Text(f"{done}/{int(task.total)} {plural(unit, task.total)}", style="progress.download")

    def speed(task) -> float | None:
        """Units per second since counting started (an average: batches finish in bursts)."""
        done = task.completed - task.fields.get("start_done", 0)
        elapsed = task.finished_time if task.finished_time is not None else task.elapsed
        if task.fields.get("preparing") or not elapsed or done <= 0:
            return None
        return done / elapsed

    class _Rate(ProgressColumn):
        def render(self, task):
            rate = speed(task)
            if rate is None:
                return Text("")
            unit = task.fields.get("unit", "item")
            if rate >= 1:
                return Text(f"{rate:.1f} {unit}s/s", style="progress.data.speed")
            return Text(f"{1 / rate:.1f} s/{unit}", style="progress.data.speed")

    class _Time(ProgressColumn):
        max_refresh = 0.5

        def render(self, task):
            if task.fields.get("preparing"):
                return Text(clock(task.elapsed), style="progress.elapsed")
            if task.total is None:
                return Text(clock(task.elapsed), style="progress.elapsed")
            rate = speed(task)
            left = max(0.0, task.total - task.completed) / rate if rate else None
            return Text(f"eta {clock(left)}", style="progress.remaining")

    return (SpinnerColumn(), TextColumn("{task.description}"), _Bar(bar_width=30), _Count(),
            _Rate(), _Time())


class _Live(contextlib.AbstractContextManager):
    """A rich progress display on stderr (see :meth:`Console.progress`)."""

    def __init__(self, console: Console, description: str, total: int | None, unit: str,
                 preparing: str | None):
        from rich.console import Console as RichConsole
        from rich.progress import Progress

        self.console, self.description, self.total, self.unit = console, description, total, unit
        self.preparing = preparing
        self.prog = Progress(*_columns(), console=RichConsole(stderr=True), transient=True,
                             redirect_stdout=False, redirect_stderr=True)
        self._stdout = None

    def __enter__(self):
        self.prog.start()
        self.task = self.prog.add_task(self.preparing or self.description,
                                       total=None if self.preparing else self.total,
                                       unit=self.unit, preparing=bool(self.preparing))
        if _isatty(sys.stdout):  # the same screen, very likely: keep result lines apart
            self._stdout = sys.stdout
            sys.stdout = _PausingStdout(self._stdout, self)
        self.console._live = self
        return self

    def __exit__(self, *exc):
        self.console._live = None
        if self._stdout is not None:
            proxy, sys.stdout, self._stdout = sys.stdout, self._stdout, None
            self.prog.stop()
            if isinstance(proxy, _PausingStdout):
                proxy.drain()
            return False
        self.prog.stop()
        return False

    # -- progress
    def start(self, total: int | None = None, done: int = 0, description: str | None = None) -> None:
        """Leave the spinner (if any) and count ``done`` of ``total`` units from now on."""
        self.total, self.preparing = total, None
        self.prog.reset(self.task, total=total, completed=done, description=description or self.description,
                        unit=self.unit, preparing=False, start_done=done)
        if total is None:  # reset() keeps a known total when given None
            for t in self.prog.tasks:
                if t.id == self.task:
                    t.total = None

    def update(self, done: int, total: int | None = None) -> None:
        """``done`` units of ``total`` (``None``: unchanged) are finished: the ``on_progress``
        callback of the library functions."""
        if self.preparing or (total is not None and total != self.total):
            self.start(total if total is not None else self.total, done)
        else:
            self.prog.update(self.task, completed=done)

    def advance(self, n: int = 1) -> None:
        if self.preparing:
            self.start(self.total)
        self.prog.advance(self.task, n)

    def describe(self, description: str) -> None:
        self.description = description
        if not self.preparing:
            self.prog.update(self.task, description=description)

    # -- output while the display is up
    def print_err(self, line: str) -> None:
        """A message line on stderr, above the display."""
        self.prog.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def paused(self, write) -> None:
        """Run ``write`` (which writes whole lines to stdout) with the display cleared; it is
        drawn again below what was written."""
        self.prog.stop()
        try:
            write()
        finally:
            self.prog.start()


class _PausingStdout(io.TextIOBase):
    """``sys.stdout`` while a progress display is up on the same terminal: whole lines (text
    or bytes, through ``.buffer``) are written with the display cleared; a partial line waits
    for its end (or for the display to end)."""

    def __init__(self, real, live: _Live):
        self._real, self._live, self._pending = real, live, ""
        self.buffer = _PausingBuffer(getattr(real, "buffer", None), live, self)

    @property
    def encoding(self):
        return getattr(self._real, "encoding", "utf-8")

    @property
    def errors(self):
        return getattr(self._real, "errors", "strict")

    def isatty(self) -> bool:
        return _isatty(self._real)

    def fileno(self) -> int:
        return self._real.fileno()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._pending += s
        if "\n" in s:
            head, _, tail = self._pending.rpartition("\n")
            self._pending = tail

            def out():
                self._real.write(head + "\n")
                self._real.flush()

            self._live.paused(out)
        return len(s)

    def flush(self) -> None:
        pass  # a partial line is written with the next newline (or at drain)

    def drain(self) -> None:
        """Write what is left (the display is gone)."""
        self.buffer.drain()
        if self._pending:
            self._real.write(self._pending)
            self._pending = ""
        self._real.flush()


class _PausingBuffer(io.RawIOBase):
    def __init__(self, real, live: _Live, text: _PausingStdout):
        self._real, self._live, self._text, self._pending = real, live, text, b""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return _isatty(self._real)

    def fileno(self) -> int:
        return self._real.fileno()

    def write(self, b) -> int:
        b = bytes(b)
        self._pending += b
        if b"\n" in b:
            head, _, tail = self._pending.rpartition(b"\n")
            self._pending = tail

            def out():
                self._real.write(head + b"\n")
                self._real.flush()

            self._live.paused(out)
        return len(b)

    def flush(self) -> None:
        pass

    def drain(self) -> None:
        if self._pending and self._real is not None:
            self._real.write(self._pending)
            self._real.flush()
        self._pending = b""


def runtime(threads: int | None, quiet: bool, verbose: bool) -> Console:
    """Apply ``--threads`` and return the console ``--quiet``/``--verbose`` ask for."""
    if threads:
        import torch
        torch.set_num_threads(threads)
    return Console(quiet=quiet, verbose=verbose and not quiet)
