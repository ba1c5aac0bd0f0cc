"""Prompt layouts for captioning (audio -> text) and generation (text -> audio).

Every sequence is built from token ids, never from a string holding audio
tokens, so text and audio cannot be confused::

    caption:   <bos> "Describe this sound: " <audio> codes </audio> "\\n"  |  caption <eos>
    generate:  <bos> "Make this sound: " prompt "\\n" <audio>              |  codes </audio>

(``|`` separates prompt from response; training puts loss on the response
only.)  The wording is stored with each adapter (:class:`PromptFormat`), so an
adapter is always prompted the way it was trained.

Prompt/response pair files (JSON Lines with ``prompt`` and ``response``) may
mix text and audio written as ``<audio><a0_5><a0_17>...</audio>``; they are
split into text pieces (tokenized) and audio pieces (audio ids).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import FormatError, UsageError
from ..tokens import AUDIO_BEGIN, AUDIO_END, text_to_codes
from .vocabulary import AudioVocab


@dataclass(frozen=True)
class PromptFormat:
    caption_prefix: str = "Describe this sound: "
    caption_suffix: str = "\n"
    generate_prefix: str = "Make this sound: "
    generate_suffix: str = "\n"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PromptFormat:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (d or {}).items() if k in known and isinstance(v, str)})


@dataclass
class Example:
    """One training/validation sequence: loss on ``response`` only."""

    prompt: list[int]
    response: list[int]
    task: str = "caption"

    def __len__(self) -> int:
        return len(self.prompt) + len(self.response)


_AUDIO_SPAN = re.compile(re.escape(AUDIO_BEGIN) + r"(.*?)" + re.escape(AUDIO_END), re.S)
_CODE = re.compile(r"<a(\d+)_(\d+)>")


class PromptBuilder:
    """Turns captions, prompts and audio into id sequences for one LLM tokenizer."""

    def __init__(self, tokenizer, vocab: AudioVocab, fmt: PromptFormat | None = None) -> None:
        self.tokenizer, self.vocab, self.fmt = tokenizer, vocab, fmt or PromptFormat()
        bos = getattr(tokenizer, "bos_token_id", None)
        self.bos = [bos] if bos is not None else []
        self.eos = tokenizer.eos_token_id
        if self.eos is None:
            raise UsageError("the LLM's tokenizer has no end-of-sequence token")
        self._cache: dict[str, list[int]] = {}

    def text(self, s: str) -> list[int]:
        ids = self._cache.get(s)
        if ids is None:
            ids = list(self.tokenizer(s, add_special_tokens=False).input_ids)
            if len(self._cache) < 100_000:
                self._cache[s] = ids
        return ids

    # -- captioning --------------------------------------------------------------------

    def caption_prompt(self, audio_ids: list[int]) -> list[int]:
        """``audio_ids`` = ``vocab.item_ids(item)`` (with ``<audio>``/``</audio>``)."""
        f = self.fmt
        return self.bos + self.text(f.caption_prefix) + audio_ids + self.text(f.caption_suffix)

    def caption_response(self, caption: str) -> list[int]:
        return self.text(caption.strip()) + [self.eos]

    # -- generation --------------------------------------------------------------------

    def generate_prompt(self, prompt: str) -> list[int]:
        f = self.fmt
        return self.bos + self.text(f.generate_prefix + prompt.strip() + f.generate_suffix) + [self.vocab.begin_id]

    def generate_response(self, audio_ids: list[int]) -> list[int]:
        """Codes + ``</audio>`` (the prompt already ends with ``<audio>``)."""
        return audio_ids[1:]

    # -- free-form pairs ---------------------------------------------------------------

    def mixed(self, s: str) -> list[int]:
        """Ids of text that may hold ``<audio>...</audio>`` spans."""
        ids: list[int] = []
        pos = 0
        for m in _AUDIO_SPAN.finditer(s):
            if m.start() > pos:
                ids += self.text(s[pos:m.start()])
            inner = m.group(1)
            text_to_codes(inner, self.vocab.header)  # validates: unknown or out-of-range tokens
            ids.append(self.vocab.begin_id)
            ids += [self.vocab.code_id(int(k), int(c)) for k, c in _CODE.findall(inner)]
            ids.append(self.vocab.end_id)
            pos = m.end()
        rest = s[pos:]
        if AUDIO_BEGIN in rest or AUDIO_END in rest:
            raise FormatError(f"unbalanced {AUDIO_BEGIN}/{AUDIO_END} in {s[:40]!r}")
        if rest:
            ids += self.text(rest)
        return ids

    def pair(self, prompt: str, response: str) -> Example:
        """A free-form pair; the response ends with ``<eos>`` unless it ends in audio."""
        resp = self.mixed(response)
        if not resp or resp[-1] != self.vocab.end_id:
            resp.append(self.eos)
        has_audio = self.vocab.end_id in resp
        return Example(self.bos + self.mixed(prompt), resp, "generate" if has_audio else "caption")
