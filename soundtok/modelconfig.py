"""What every model config shares: the log-mel front end and the ``config.json`` file.

A codec's config is one dataclass derived from :class:`MelConfig`; it adds its own
hyper-parameters and sets :attr:`~MelConfig.ARCHITECTURE`, the string written as
``"architecture"`` in ``config.json`` (which :func:`soundtok.registry.load_codec`
dispatches on).  Audio at ``sample_rate`` Hz is analysed into ``n_mels`` log-mel bands
(``f_min``..``f_max`` Hz; ``f_max`` None = Nyquist) with an ``n_fft``-sample window every
``hop_length`` samples (100 frames/s at the defaults).

A ``config.json`` written before a field existed is read with that field at
:attr:`~MelConfig.LEGACY`'s value (what such files meant), not the dataclass
default; :meth:`~MelConfig.validate` then checks the settings together.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

C = TypeVar("C", bound="MelConfig")


@dataclass
class MelConfig:
    """The front-end fields and the JSON round trip of a model config."""

    #: ``config.json`` "architecture" of the subclass's model (and a stream's ``codec.arch``)
    ARCHITECTURE: ClassVar[str] = ""
    #: what error messages call the config ("codec", "llm-codec")
    KIND: ClassVar[str] = "codec"
    #: keys a config.json may hold that are not fields (written by save, ignored by load)
    EXTRA_KEYS: ClassVar[tuple[str, ...]] = ("architecture", "soundtok_version")
    #: values of fields a ``config.json`` lacks when it was written before they existed
    LEGACY: ClassVar[dict] = {}

    name: str = ""
    sample_rate: int = 16000
    n_fft: int = 640
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """ValueError (one line) for settings that do not fit together (none here)."""

    @classmethod
    def from_dict(cls: type[C], d: dict) -> C:
        """The config from a ``config.json`` object (absent keys: :attr:`LEGACY`, then the
        defaults), validated; ValueError for an unknown key or inconsistent settings."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known - set(cls.EXTRA_KEYS))
        if unknown:
            raise ValueError(f"unknown {cls.KIND} config keys: {', '.join(unknown)}")
        cfg = cls(**{**cls.LEGACY, **{k: v for k, v in d.items() if k in known}})
        cfg.validate()
        return cfg

    def save(self, path: str | Path, **extra) -> None:
        """Write ``config.json``: the architecture, every field, then ``extra`` keys."""
        data = {"architecture": self.ARCHITECTURE, **self.to_dict(), **extra}
        Path(path).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        return cls.from_dict(json.loads(Path(path).read_text()))
