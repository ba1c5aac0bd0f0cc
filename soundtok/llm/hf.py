"""What every module of :mod:`soundtok.llm` shares: transformers imported offline and
loaded quietly, model-directory JSON read with a :class:`ModelError` on failure, an
exception's first line for messages, and the default ``progress`` printer.

transformers is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from soundtok.errors import ModelError

#: Receives one human-readable line (without a ``soundtok:`` prefix) before a slow step.
Progress = Callable[[str], None]


def transformers_auto():
    """transformers' ``(AutoModelForCausalLM, AutoTokenizer)`` with hub access switched off
    (``HF_HUB_OFFLINE=1``); :class:`ModelError` when transformers is missing."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelError(f"LLM features need transformers (pip install transformers): {exc}") from exc
    return AutoModelForCausalLM, AutoTokenizer


@contextlib.contextmanager
def quiet_transformers():
    """Hide transformers' per-load tqdm bars; restore the previous setting."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; :class:`ModelError` when it is unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object")
    return data


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name when empty), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def stderr_notice(msg: str) -> None:
    """Print ``soundtok: <msg>`` on stderr (the default ``progress`` of
    :func:`~soundtok.llm.loader.load_llm` and :func:`~soundtok.llm.convert.ensure_converted`)."""
    import sys

    try:
        sys.stderr.write(f"soundtok: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass

