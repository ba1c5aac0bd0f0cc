"""soundtok: sound as a handful of discrete tokens per second that an LLM can read and write.

The library functions behind the CLI are importable from here; heavy modules
(torch, the models) load on first use, so ``import soundtok`` stays fast::

    import soundtok
    wav, sr = soundtok.load_audio("clip.wav")      # (1, N) float32 at 16 kHz
    codec = soundtok.load_codec()                  # the built-in codec, device="auto"
    codes = codec.encode(wav)                      # (1, 1, T): 25 codes per second
    out = codec.decode(codes)                      # (1, T * 640) float32 at 16 kHz
    print(soundtok.caption(codes))                 # one caption per clip

Every function that loads a model takes ``device="auto"`` (CUDA when
available, else CPU), as the command line does.  See docs/api.md.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load_audio": ("soundtok.api", "load_audio"),
    "write_audio": ("soundtok.audio_out", "write_audio"),
    "load_codec": ("soundtok.registry", "load_codec"),
    "tokenize": ("soundtok.api", "tokenize"),
    "detokenize": ("soundtok.api", "detokenize"),
    "load_adapter": ("soundtok.audiolm.adapter", "load_adapter"),
    "caption": ("soundtok.audiolm.tasks", "caption"),
    "generate": ("soundtok.audiolm.tasks", "generate"),
    "resolve_device": ("soundtok.device", "resolve_device"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'soundtok' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
