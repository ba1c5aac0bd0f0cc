"""Evaluation: reconstruction metrics, classical-codec baselines, token statistics,
caption metrics, few-shot accuracy and reports (``soundtok evaluate``).

Submodules load their heavy dependencies (scipy, pystoi, pesq, matplotlib,
pycocoevalcap, sentence-transformers) only when used; the names below are
imported lazily, so ``import soundtok.evaluate`` is cheap::

    from soundtok.evaluate import evaluate_recon, evaluate_captions

The metrics are defined precisely in ``docs/evaluate.md``.
"""

from __future__ import annotations

_LAZY = {
    "evaluate_recon": ("soundtok.evaluate.recon", "evaluate_recon"),
    "ReconResult": ("soundtok.evaluate.recon_result", "ReconResult"),
    "evaluate_captions": ("soundtok.evaluate.captions", "evaluate_captions"),
    "CaptionResult": ("soundtok.evaluate.captions", "CaptionResult"),
    "match_label": ("soundtok.evaluate.captions", "match_label"),
    "write_report": ("soundtok.evaluate.report", "write_report"),
    "run_fewshot": ("soundtok.evaluate.fewshot", "run_fewshot"),
    "token_stats": ("soundtok.evaluate.tokenstats", "token_stats"),
    "stream_bitrate": ("soundtok.evaluate.tokenstats", "stream_bitrate"),
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'soundtok.evaluate' has no attribute {name!r}")
