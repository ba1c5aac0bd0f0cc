"""Loading the causal LLM that soundtok's LLM features build on.

Importing this package is cheap: torch and transformers are imported only when a
function that needs them runs.  The public API is re-exported here lazily from
:mod:`~soundtok.llm.loader` (resolve, dtype, load), :mod:`~soundtok.llm.convert`
(GGUF -> safetensors cache), :mod:`~soundtok.llm.identity` (fingerprint) and
:mod:`~soundtok.llm.tiny` (test model); :mod:`~soundtok.llm.hf` holds the helpers
they share.  :mod:`~soundtok.llm.gemma3` (Gemma 3's inference forward without transformers)
and :mod:`~soundtok.llm.tokenizer` (a tokenizer read by ``tokenizers`` alone) serve the
merged-model cache of captioning and generation.  The names:

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

#: Public name -> the submodule that defines it.
_HOMES = {
    "BUILTIN_LLMS": "loader",
    "DEFAULT_LLM": "loader",
    "LLMSpec": "loader",
    "default_dtype": "loader",
    "load_llm": "loader",
    "resolve_llm": "loader",
    "cache_dir": "convert",
    "converted_dir": "convert",
    "ensure_converted": "convert",
    "llm_identity": "identity",
    "tiny_llm": "tiny",
}

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
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
