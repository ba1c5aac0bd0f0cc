"""Texts for the TTS voices: sentences, digits and spelled letters.

* Sentences come from Debian's fortune databases (``fortunes``,
  ``fortunes-min``; BSD licence per ``/usr/share/doc/fortunes/copyright``),
  restricted to the files in :data:`FORTUNE_FILES` (the ``-off`` offensive
  databases are never read, and a few topical files are left out), split into
  single sentences of 3-22 words and filtered to plain prose.
* Words for spelling come from Debian's ``wamerican`` list (SCOWL, permissive
  licence), common lower-case words of 3-7 letters.
* Digits and letters are generated: single digits, digit strings, single
  letters and letter strings, each with the words the voice reads.

Every text item is a :class:`Utterance` with the ``text`` that is spoken and
caption material (``kind``, ``label``).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FORTUNE_DIR = Path("/usr/share/games/fortunes")
WORDLIST = Path("/usr/share/dict/american-english")

# neutral fortune databases (no "-off" files; ethnic, men-women, drugs, politics,
# quotations from living authors' novels and IRC logs are left out)
FORTUNE_FILES = ("fortunes", "wisdom", "science", "literature", "people", "platitudes", "education",
                 "kids", "computers", "pets", "food", "work", "riddles", "tao", "goedel", "paradoxum",
                 "sports", "songs-poems", "love", "medicine", "law", "magic", "art", "humorists",
                 "miscellaneous", "cookie")

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_AVOID = re.compile(r"\b(sex\w*|fuck\w*|shit\w*|bitch\w*|bastard\w*|damn\w*|hell|kill\w*|rape\w*|"
                    r"drug\w*|nazi\w*|whore\w*|suicide|god\w*|jesus|christ\w*|bible|church|penis|breast\w*|"
                    r"ass|asses|naked|nude|stupid|idiot\w*|moron\w*|dick|gun\w*|die|dead|death)\b", re.I)
_PLAIN = re.compile(r"^[A-Za-z0-9 ,.;:!?'\-]+$")


@dataclass(frozen=True)
class Utterance:
    """One thing to say.

    ``kind``: ``sentence``, ``digit``, ``digits``, ``letter``, ``letters`` or ``spell``.
    ``text``: what the voice reads (digits and letters written as the voice
    should say them).  ``label``: a compact form (``"4072"``, ``"KXB"``, the
    word spelled) or ``None`` for sentences.
    """

    kind: str
    text: str
    label: str | None = None

    @property
    def shown(self) -> str:
        """The text as a caption shows it (``4 0 7 2``, ``K X B``)."""
        if self.kind in ("digit", "digits", "letter", "letters"):
            return " ".join(self.label)
        if self.kind == "spell":
            return f"{self.label}: {' '.join(self.label.upper())}"
        return self.text


def _fortunes(path: Path) -> list[str]:
    text = path.read_text(encoding="latin-1")
    return [f for f in text.split("\n%\n") if f.strip()]


def _clean_fortune(f: str) -> str:
    lines = []
    for ln in f.splitlines():
        s = ln.strip()
        if not s or s.startswith("--") or s.startswith("-- ") or re.match(r"^[A-Z][a-z]+:$", s):
            continue
        if ln.startswith("\t\t") or ln.startswith("        "):  # attribution block
            continue
        lines.append(s)
    return " ".join(lines)


def sentences(files: tuple[str, ...] = FORTUNE_FILES, min_words: int = 3, max_words: int = 22,
              root: Path = FORTUNE_DIR) -> list[str]:
    """Unique plain-prose sentences from the fortune databases, in file order."""
    return list(_sentences(tuple(files), min_words, max_words, Path(root)))


@lru_cache(maxsize=4)
def _sentences(files: tuple[str, ...], min_words: int, max_words: int, root: Path) -> tuple[str, ...]:
    out, seen = [], set()
    for name in files:
        p = root / name
        if not p.is_file():
            continue
        for f in _fortunes(p):
            body = _clean_fortune(f)
            if not body or any(c in body for c in "\"<>[]{}|/\\@#$%^&*_=~`"):
                continue
            for s in re.split(r"(?<=[.!?])\s+", body):
                s = re.sub(r"^(Q|A):\s*", "", " ".join(s.split()))
                if re.search(r"\d:\d|\.\.|--", s):  # times, ellipses, dashes read badly
                    continue
                n = len(s.split())
                if not (min_words <= n <= max_words) or not _PLAIN.match(s) or _AVOID.search(s):
                    continue
                if s.upper() == s or not s[0].isupper() or s[-1] not in ".!?":
                    continue
                if re.search(r"\b[A-Z]{2,}\b", s) or re.search(r"\d{4,}", s):  # acronyms, long numbers
                    continue
                key = s.lower()
                if key not in seen:
                    seen.add(key)
                    out.append(s)
    return tuple(out)


def words(common_in: list[str] = (), path: Path = WORDLIST, min_len: int = 3, max_len: int = 7,
          min_count: int = 3) -> list[str]:
    """Lower-case alphabetic words of ``min_len``-``max_len`` letters from the
    word list; with ``common_in`` (sentences), only words used at least
    ``min_count`` times there (common words, sorted)."""
    if not path.is_file():
        return []
    out = [w for w in path.read_text(encoding="utf-8", errors="ignore").split()
           if min_len <= len(w) <= max_len and w.isascii() and w.isalpha() and w.islower()
           and not _AVOID.search(w)]
    if common_in:
        counts: dict[str, int] = {}
        for s in common_in:
            for w in re.findall(r"[a-z]+", s.lower()):
                counts[w] = counts.get(w, 0) + 1
        out = [w for w in out if counts.get(w, 0) >= min_count]
    return out


def digit(rng: random.Random) -> Utterance:
    d = rng.randrange(10)
    return Utterance("digit", DIGIT_WORDS[d], str(d))


def digit_string(rng: random.Random, lo: int = 2, hi: int = 7) -> Utterance:
    ds = [rng.randrange(10) for _ in range(rng.randint(lo, hi))]
    return Utterance("digits", ", ".join(DIGIT_WORDS[d] for d in ds), "".join(map(str, ds)))


def letter(rng: random.Random) -> Utterance:
    c = rng.choice(LETTERS)
    return Utterance("letter", f"{c}.", c)


def letter_string(rng: random.Random, lo: int = 2, hi: int = 5) -> Utterance:
    cs = [rng.choice(LETTERS) for _ in range(rng.randint(lo, hi))]
    return Utterance("letters", ", ".join(cs) + ".", "".join(cs))


def spelled(rng: random.Random, vocab: list[str]) -> Utterance:
    w = rng.choice(vocab)
    return Utterance("spell", f"{w}. {', '.join(w.upper())}.", w)
