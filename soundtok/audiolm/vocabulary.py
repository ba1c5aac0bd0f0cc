"""Audio tokens as extra LLM vocabulary.

A codec with codebook sizes ``[N0, N1, ...]`` adds ``2 + sum(N)`` tokens to an
LLM whose own vocabulary has ``base_size`` entries: ``<audio>`` and
``</audio>`` (ids ``base_size`` and ``base_size + 1``), then ``<a0_0>`` ...
``<a0_{N0-1}>``, ``<a1_0>`` ... (ids from ``base_size + 2``).  The tokenizer
is never changed: these ids exist only in soundtok's own embedding and output
rows (:mod:`soundtok.audiolm.model`), and text is tokenized separately from
audio, so ``"<a0_5>"`` typed in a prompt is just text.

The order of codes in a sequence is that of :func:`soundtok.tokens.codes_to_text`:
by the sample where a frame starts, then by codebook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import FormatError, ModelError
from ..tokens import AUDIO_BEGIN, AUDIO_END, Header, Item, all_code_tokens


@dataclass(frozen=True)
class AudioVocab:
    """The audio-token id space of one codec on top of one LLM vocabulary."""

    header: Header
    base_size: int

    @property
    def tokens(self) -> list[str]:
        """Every audio token, in id order (``<audio>``, ``</audio>``, codes)."""
        return [AUDIO_BEGIN, AUDIO_END, *all_code_tokens(self.header)]

    @property
    def size(self) -> int:
        return 2 + sum(self.header.codebook_sizes)

    @property
    def begin_id(self) -> int:
        return self.base_size

    @property
    def end_id(self) -> int:
        return self.base_size + 1

    def _offsets(self) -> list[int]:
        offs, acc = [], 2
        for n in self.header.codebook_sizes:
            offs.append(acc)
            acc += n
        return offs

    def code_id(self, k: int, c: int) -> int:
        """LLM id of code ``c`` of codebook ``k``."""
        return self.base_size + self._offsets()[k] + c

    def codebook_range(self, k: int) -> tuple[int, int]:
        """``(first, last + 1)`` local index (0 = ``<audio>``) of codebook ``k``'s codes."""
        start = self._offsets()[k]
        return start, start + self.header.codebook_sizes[k]

    # -- order of codes in a sequence ------------------------------------------------

    def schedule(self) -> list[int]:
        """Codebook of each position within one period (lcm of the hops) of audio."""
        period = math.lcm(*self.header.hop_lengths)
        events = sorted((j * hop, k) for k, hop in enumerate(self.header.hop_lengths)
                        for j in range(period // hop))
        return [k for _, k in events]

    @property
    def period_samples(self) -> int:
        return math.lcm(*self.header.hop_lengths)

    def item_ids(self, item: Item) -> list[int]:
        """``<audio>`` + the item's codes in stream order + ``</audio>``, as LLM ids."""
        self.header.check_item(item)
        offs = self._offsets()
        events = sorted((j * hop, k, c) for k, (row, hop) in
                        enumerate(zip(item.codes, self.header.hop_lengths)) for j, c in enumerate(row))
        return [self.begin_id, *(self.base_size + offs[k] + c for _, k, c in events), self.end_id]

    def ids_to_codes(self, ids: list[int]) -> list[list[int]]:
        """Codes per codebook from LLM ids (``<audio>``/``</audio>`` ignored)."""
        offs = self._offsets()
        codes: list[list[int]] = [[] for _ in offs]
        for i in ids:
            local = i - self.base_size
            if local in (0, 1):
                continue
            for k, (start, n) in enumerate(zip(offs, self.header.codebook_sizes)):
                if start <= local < start + n:
                    codes[k].append(local - start)
                    break
            else:
                raise FormatError(f"id {i} is not an audio code token")
        return codes

    # -- metadata ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        h = self.header
        return {"base_size": self.base_size, "tokens": self.tokens,
                "header": {"codec": h.codec, "sample_rate": h.sample_rate,
                           "hop_lengths": h.hop_lengths, "codebook_sizes": h.codebook_sizes}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AudioVocab:
        try:
            h = d["header"]
            header = Header(codec=h["codec"], sample_rate=h["sample_rate"],
                            hop_lengths=h["hop_lengths"], codebook_sizes=h["codebook_sizes"])
            vocab = cls(header=header, base_size=int(d["base_size"]))
        except (KeyError, TypeError, ValueError, FormatError) as e:
            raise ModelError(f"adapter metadata has no valid audio vocabulary ({e})") from None
        if d.get("tokens") is not None and d["tokens"] != vocab.tokens:
            raise ModelError("adapter metadata: audio token list does not match its codec header")
        return vocab

    @property
    def codec_name(self) -> str:
        return self.header.codec["name"]

    @property
    def codec_sha256(self) -> str:
        return self.header.codec["sha256"]
