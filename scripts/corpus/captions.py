"""Caption phrasings: several ways to say what a clip holds.

Each function returns a short list of distinct captions (the first is the
plainest); a seeded ``random.Random`` picks the wordings so that the corpus
is reproducible while phrasings vary across clips.
"""

from __future__ import annotations

import random

_PERSON = {"male": ("a man", "a male voice", "a male speaker"),
           "female": ("a woman", "a female voice", "a female speaker"),
           "neutral": ("a person", "a voice", "someone")}

_ACCENT_ADJ = {"American": "an American", "Scottish": "a Scottish", "British": "a British",
               "British (RP)": "a British (Received Pronunciation)", "Lancashire": "a Lancashire",
               "New York": "a New York", "West Midlands": "a West Midlands", "Caribbean": "a Caribbean",
               "Japanese": "a Japanese", "Greek": "a Greek", "German": "a German", "French": "a French",
               "Belgian French": "a Belgian French"}


def _accent(accent: str | None) -> str | None:
    if not accent:
        return None
    return _ACCENT_ADJ.get(accent, "an " + accent if accent[0] in "AEIOU" else "a " + accent) + " accent"


def speech(rng: random.Random, *, kind: str, text: str, shown: str, gender: str, accent: str | None,
           synthetic: bool, rate: float = 1.0, language: str = "English", n: int = 4) -> list[str]:
    """Captions for a spoken clip.

    ``kind``: sentence | digit | digits | letter | letters | spell | word.
    ``shown``: the content as a caption writes it (``4 0 7 2``, ``K X B``).
    """
    who = rng.choice(_PERSON.get(gender, _PERSON["neutral"]))
    acc = _accent(accent)
    who_acc = f"{who} with {acc}" if acc else who
    pace = " quickly" if rate >= 1.12 else " slowly" if rate <= 0.9 else ""
    synth = rng.choice(("a synthetic voice", "a computer voice", "a text-to-speech voice")) if synthetic else None
    if kind == "sentence":
        out = [f'{who} says "{text}"', f"speech: {text}", f'{who_acc} reads{pace}: "{text}"',
               f'{synth or who} speaking {language}: "{text}"']
    elif kind in ("digit", "digits"):
        noun = "the digit" if kind == "digit" else "the digits"
        out = [f"{who} says {noun} {shown}", f"spoken digits: {shown}", f"{who_acc} reads{pace} {noun} {shown}",
               f'{synth or who} counting out "{text}"']
    elif kind in ("letter", "letters"):
        noun = "the letter" if kind == "letter" else "the letters"
        out = [f"{who} says {noun} {shown}", f"spelled letters: {shown}", f"{who_acc} spells{pace} {shown}",
               f"{synth or who} reading out {noun} {shown}"]
    elif kind == "spell":
        word, letters = shown.split(": ", 1)
        out = [f'{who} spells the word "{word}": {letters}', f"spelling: {word}, {letters}",
               f'{who_acc} says "{word}" and spells it {letters}', f"{synth or who} spelling {word}"]
    else:  # a single word or syllable (recorded speech)
        out = [f'{who} says "{text}"', f"speech: {text}", f'{who_acc} says the {language} word "{text}"',
               f'a spoken {language} syllable: "{text}"']
    return out[:n]


def sound(rng: random.Random, *, label: str, phrases: tuple[str, ...]) -> list[str]:
    """Captions for a sound effect: ``phrases`` are full descriptions, ``label`` the category."""
    out = list(dict.fromkeys([phrases[0], f"the sound of {label}", f"sound effect: {label}", *phrases[1:]]))
    return out[:4]


def music(rng: random.Random, *, ensemble: str, instruments: list[str], style: str, composer: str | None,
          title: str | None, tempo_word: str, bpm: int) -> list[str]:
    by = f" by {composer}" if composer else ""
    inst = ", ".join(instruments[:-1]) + f" and {instruments[-1]}" if len(instruments) > 1 else instruments[0]
    out = [f"{style}{by} played on {inst}", f"music: {ensemble}, {style}, {tempo_word} tempo",
           f"{'a ' if not ensemble.startswith(('a ', 'an ')) else ''}{ensemble} playing {style}{by}"
           f" at {bpm} beats per minute"]
    if title:
        out.append(f'"{title}"{by}, {ensemble}')
    else:
        out.append(f"{tempo_word} {style} on {inst}")
    return out
