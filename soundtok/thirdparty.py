"""Keep third-party chatter off stderr where soundtok calls those libraries.

transformers, peft, accelerate, huggingface_hub and sentence-transformers emit
FutureWarnings, DeprecationWarnings and UserWarnings about *their* API
evolution (e.g. ``past_key_values is deprecated``) and log notes through
transformers' logger; none is actionable for a soundtok user.  The functions
that call those libraries run inside :func:`quiet_libraries` (a context
manager that is also a decorator); nothing is filtered globally, at import
time or outside those calls.  libmpg123's notes on MP3 files are C-level
output, silenced around the decoding calls in :mod:`soundtok.audio`.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator

__all__ = ["quiet_libraries", "LIBRARIES"]

#: Modules whose warnings are hidden while soundtok calls them (matched as prefixes).
LIBRARIES = ("transformers", "peft", "accelerate", "huggingface_hub", "sentence_transformers", "torch.utils.checkpoint")


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Inside: FutureWarnings and DeprecationWarnings (only library code runs inside: they
    are about the libraries' own API), UserWarnings from :data:`LIBRARIES`, and
    transformers' logger below errors are not shown; all come back as they were afterwards."""
    hf_logging, level = None, None
    if "transformers" in sys.modules:
        try:
            from transformers.utils import logging as hf_logging

            level = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
        except Exception:  # noqa: BLE001 - an odd transformers: leave its logging alone
            hf_logging = None
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
                warnings.simplefilter("ignore", category)
            for mod in LIBRARIES:
                warnings.filterwarnings("ignore", category=UserWarning, module=mod.replace(".", r"\.") + r"(\.|$)")
            yield
    finally:
        if hf_logging is not None and level is not None:
            hf_logging.set_verbosity(level)
