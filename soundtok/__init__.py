"""soundtok: sound as a handful of discrete tokens per second that an LLM can read and write.

The library functions behind the CLI are importable from here; heavy modules
(torch, the models) load on first use, so ``import soundtok`` stays fast::

    import soundtok
    soundtok.tokenize(["clip.wav"], "clip.tok.jsonl")
    soundtok.detokenize("clip.tok.jsonl", "out.wav")
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "tokenize": ("soundtok.api", "tokenize"),
    "detokenize": ("soundtok.api", "detokenize"),
    "load_codec": ("soundtok.codec", "load_codec"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'soundtok' has no attribute {name!r}")
