"""Exception types and the exit codes they map to.

Every error a user can cause is a :class:`SoundtokError`; the CLI turns it into a
single ``error: ...`` line on stderr and exits with :attr:`SoundtokError.exit_code`.

Exit codes (documented in README.md):

* 0 -- success
* 1 -- failure (bad input, I/O error, a batch in which some items failed,
  training diverged, a file or run folder in use by another process)
* 2 -- usage error (bad flags or arguments)
* 129 -- hung up (SIGHUP), 130 -- interrupted (Ctrl-C), 143 -- terminated (SIGTERM)
* 141 -- stdout's reader went away (``| head``)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class SoundtokError(Exception):
    """A failure caused by input, environment or data; printed as one line."""

    exit_code = EXIT_FAILURE


class UsageError(SoundtokError):
    """The command line itself is wrong (bad flag value, missing argument)."""

    exit_code = EXIT_USAGE


class AudioError(SoundtokError):
    """An audio input could not be read or is not usable (empty, NaN, too low a rate)."""


class FormatError(SoundtokError):
    """A token stream is malformed, truncated, of an unknown version or from another codec."""


class ModelError(SoundtokError):
    """A model directory or weights file is missing, corrupt or incompatible."""


class PartialFailure(SoundtokError):
    """A batch finished its good items but some items failed (listed on stderr)."""


def one_line(msg: str) -> str:
    """``msg`` as one printable line: line breaks and other control characters (e.g. from a
    file name such as ``$'a\\fb'``) are written as escapes (``\\x0c``), so an error is always
    exactly one ``error: ...`` line."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
                   for c in msg)
