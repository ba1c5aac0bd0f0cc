"""Loading the causal LLM that soundtok's LLM features build on.

Importing this package is cheap: torch and transformers are imported only when a
function that needs them runs.  The public API lives in :mod:`soundtok.llm.loader`
and is re-exported here lazily:

* :func:`resolve_llm` -- turn ``--llm`` (a built-in name, an HF directory or a
  ``.gguf`` file) into an :class:`LLMSpec`; cheap, validates only.
* :func:`load_llm` -- load ``(model, tokenizer)``; a GGUF is converted once to a
  safetensors directory in the cache.
* :func:`llm_identity` -- a stable fingerprint used to refuse artefacts built
  for another LLM.
* :func:`default_dtype` -- bfloat16 where it is fast, float32 otherwise.
* :func:`tiny_llm` -- a tiny random Gemma3-style model directory for tests.
"""

from __future__ import annotations

__all__ = [
    "BUILTIN_LLMS",
    "DEFAULT_LLM",
    "LLMSpec",
    "cache_dir",
    "converted_dir",
    "default_dtype",
    "ensure_converted",
    "llm_identity",
    "load_llm",
    "resolve_llm",
    "tiny_llm",
]


def __getattr__(name: str):
    if name in __all__:
        from soundtok.llm import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
