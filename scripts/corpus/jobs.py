"""The unit of work: a :class:`Job` makes one or more clips.

Jobs are plain data (JSON-able ``spec``) so that worker processes can run them
and the plan can be compared between runs.  ``outputs`` lists the clips a job
writes (their relative ``path`` and the manifest ``row`` known in advance);
the worker fills in ``duration`` and whatever it learns while making the clip
(e.g. a music piece's title).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Job:
    stage: str                 # the source it belongs to (piper, fsdd, music, ...)
    kind: str                  # tts | file | music | augment
    spec: dict                 # what to make (engine/voice/text, source file, piece, ...)
    outputs: list[dict] = field(default_factory=list)  # [{"path": "clips/...", "row": {...}}]

    @property
    def id(self) -> str:
        return self.outputs[0]["row"]["id"]
