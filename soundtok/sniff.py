"""What kind of file is this? Magic bytes, so that an input of the wrong kind is named as such.

* :func:`audio_format` -- ``"WAV"``, ``"FLAC"``, ... for the first bytes of an audio file;
  the token stream reader answers "this is audio (WAV), not a token stream" (and the
  readers of prompts, captions and training pairs the like).
* :func:`is_token_stream` -- the first bytes of a soundtok token stream (its header line);
  the audio reader answers "this is a token stream, not audio".
* :func:`wav_truncation` -- a WAV whose header announces more audio than the file holds
  (cut off while written or copied), which decoders would otherwise read short, silently.

Nothing here decodes anything; every function looks at a few bytes.
"""

from __future__ import annotations

import os
import re
from typing import IO, Any

#: Bytes a sniffer wants to see (WAV headers with LIST/bext chunks before "data" fit too).
HEAD_BYTES = 1 << 16

_TOKEN_STREAM_RE = re.compile(rb'^(?:\xef\xbb\xbf)?\s*\{[^\n]{0,200}?"soundtok"\s*:')

# "unknown length" placeholders that streaming writers put in the data size (ffmpeg 0xFFFFFFFF,
# sox 0x7FFFF000 and above, some writers 0): such a header announces nothing
_WAV_UNKNOWN = 0x7FFFF000


def audio_format(head: bytes) -> str | None:
    """The audio container the bytes ``head`` start, or ``None``."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] in (b"RF64", b"BW64"):
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
                              and head[1] & 0x06):  # MPEG audio frame sync, layer I-III
        return "MP3"
    if head[:4] == b"caff":
        return "CAF"
    return None


def audio_file_kind(path: str | os.PathLike) -> str | None:
    """The audio container (see :func:`audio_format`) of the file at ``path``, or ``None``."""
    return audio_format(read_head(path, 16)[0])


def is_token_stream(head: bytes) -> bool:
    """True when ``head`` starts like a soundtok token stream (a JSON header with ``"soundtok"``)."""
    return bool(_TOKEN_STREAM_RE.match(head))


def read_head(src: str | os.PathLike | bytes | IO[bytes] | Any, n: int = HEAD_BYTES
              ) -> tuple[bytes, int | None]:
    """``(the first n bytes, total size in bytes or None)`` of a path, ``bytes`` or seekable
    binary file (its position is kept); ``(b"", None)`` when they cannot be read."""
    try:
        if isinstance(src, (bytes, bytearray, memoryview)):
            return bytes(src[:n]), len(src)
        if isinstance(src, (str, os.PathLike)):
            if not os.path.isfile(src):
                return b"", None
            with open(src, "rb") as f:
                return f.read(n), os.fstat(f.fileno()).st_size
        if hasattr(src, "seek") and src.seekable():
            pos = src.tell()
            try:
                head = src.read(n)
                size = src.seek(0, os.SEEK_END)
            finally:
                src.seek(pos)
            return head, size - pos
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return b"", None


def wav_truncation(head: bytes, size: int | None) -> str | None:
    """Why a WAV file of ``size`` bytes starting with ``head`` is cut short (its ``data`` chunk
    announces more bytes than follow it), as ``"holds 0.50 s of the 1.00 s its header
    announces"``; ``None`` when it is whole, not a WAV, or its length is not announced."""
    if size is None or len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, bytes_per_s = 12, None
    while pos + 8 <= len(head):
        cid, length = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        if cid == b"fmt " and pos + 16 <= len(head):
            bytes_per_s = int.from_bytes(head[pos + 16:pos + 20], "little") or None
        if cid == b"data":
            if length == 0 or length >= _WAV_UNKNOWN:
                return None
            have = size - (pos + 8)
            if have >= length:
                return None
            if bytes_per_s:
                return (f"holds {max(have, 0) / bytes_per_s:.2f} s of the {length / bytes_per_s:.2f} s "
                        f"its header announces")
            return f"holds {max(have, 0)} of the {length} audio bytes its header announces"
        pos += 8 + length + (length & 1)
    return None
