"""Captions and generation prompts of one corpus row: what the data supports, no more.

:func:`texts_for` returns ``(captions, prompts)`` for a manifest row (docs/corpus.md);
``finetune-llm`` draws one caption and one prompt per training record.

* **speech** (``kind`` ``speech`` or ``speech-tts``) says that someone speaks, who
  where the row knows it (``gender``: "a man" / "a woman", else "someone"; the
  ``accent``; the ``language``) and what is said: the ``text`` in double quotes for
  sentences, words and syllables, the digits or letters for digit and letter clips
  (``spoken digits: 1 3 9``), the word and its letters for spelled words;
* **music** names the style (``label``, e.g. "a baroque chorale"), the ensemble and
  instruments, and the tempo word where known -- never titles or exact tempi;
* **sound effects**: the ESC-10 class or sonic-pi category in a few phrasings --
  never the sample names (``ada``, ``zome``: nothing in the audio says them);
* augmented copies add what was done to them ("with rain in the background", "in a
  reverberant room").

The manifest's own ``captions`` are kept where they add nothing unsupported: speech
captions that hold what is said and do not call the voice synthetic, music captions
without titles or beats-per-minute, no sample names; every caption is classified by
:func:`adapter_recipe.evaluation.caption_kind` as its row's kind (tested).
"""

from __future__ import annotations

import re

from corpus.recorded import LANGUAGE_NAMES

#: ESC-10 classes (the label) -> caption phrasings; the first few double as prompts.
ESC_PHRASES = {
    "dog bark": ["a dog barking", "a dog barks", "the sound of a dog barking", "dog barking"],
    "rain": ["rain falling", "the sound of rain", "rain is falling", "a recording of rain"],
    "sea waves": ["sea waves", "the sound of sea waves", "waves of the sea", "sea waves breaking"],
    "baby cry": ["a baby crying", "a baby cries", "the sound of a baby crying", "a crying baby"],
    "clock tick": ["a clock ticking", "the ticking of a clock", "a clock ticks", "the sound of a clock ticking"],
    "person sneeze": ["a person sneezing", "a person sneezes", "the sound of a person sneezing", "someone sneezes"],
    "helicopter": ["a helicopter", "the sound of a helicopter", "a helicopter is flying", "helicopter noise"],
    "chainsaw": ["a chainsaw", "the sound of a chainsaw", "a chainsaw is running", "chainsaw noise"],
    "rooster": ["a rooster crowing", "a rooster crows", "the sound of a rooster crowing", "a rooster"],
    "fire crackling": ["fire crackling", "a fire is crackling", "the crackling of a fire",
                       "the sound of a crackling fire"],
}
ESC_LABELS = list(ESC_PHRASES)

#: sonic-pi categories (the label) -> the noun phrase a caption uses.
SONICPI_NOUNS = {"bass drum": "a bass drum hit", "snare drum": "a snare drum hit", "drum": "a drum hit",
                 "drum loop": "a drum loop", "tabla": "a tabla stroke", "percussion": "a percussion hit",
                 "guitar": "a guitar sample", "electronic sound": "an electronic sound",
                 "electronic effect": "an electronic effect", "glitch sound": "a glitchy electronic sound",
                 "ambient sound": "an ambient sound", "bass sound": "a synth bass sound",
                 "vinyl sound": "a vinyl record crackle", "sound effect": "a sound effect"}

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPEECH_CONTENT = ("sentence", "digit", "digits", "letter", "letters", "spell", "syllable", "word")
#: Manifest caption wording that says more than the audio supports (or that is not a caption).
#: (Augmentation phrases are left out too: :func:`background` words them for every kind.)
_UNSUPPORTED = ("text-to-speech", "synthetic voice", "computer voice", "beats per minute",
                "in the background", "reverberant", "telephone", "muffled")


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def who(row: dict) -> str:
    """Who speaks, as far as the row knows: "a man", "a woman" or "someone"."""
    return {"male": "a man", "female": "a woman"}.get(str(row.get("gender") or ""), "someone")


def accent_phrase(row: dict) -> str | None:
    """``an American accent``, ``a Scottish accent``; None when the row has no accent."""
    accent = str(row.get("accent") or "").strip()
    if not accent:
        return None
    return f"{_article(accent)} {accent} accent"


def language_name(row: dict) -> str | None:
    code = str(row.get("language") or "").strip()
    return LANGUAGE_NAMES.get(code, code) if code else None


def background(row: dict) -> str | None:
    """What augmentation added, in words ("with rain in the background, in a reverberant room")."""
    aug = row.get("augment") or {}
    parts = []
    noise = aug.get("noise_label")
    if noise:
        noun = ESC_PHRASES[noise][0] if noise in ESC_PHRASES else SONICPI_NOUNS.get(noise, str(noise))
        parts.append(f"with {noun} in the background")
    if aug.get("reverb"):
        parts.append("in a reverberant room")
    eq = {"telephone": "over a telephone line", "muffled": "muffled"}.get(str(aug.get("eq") or ""))
    if eq:
        parts.append(eq)
    return ", ".join(parts) or None


def _plain(text: str) -> str:
    """Text without surrounding quotes and final punctuation (for unquoted prompts)."""
    return text.strip().strip("\"'").rstrip(".!?;:, ").strip()


def spaced(label: str) -> str:
    """``"4072"`` -> ``"4 0 7 2"``, ``"KXB"`` -> ``"K X B"`` (letters upper-cased)."""
    return " ".join(c.upper() for c in str(label) if c.isalnum())


def content_of(row: dict) -> str | None:
    """The speech content type of a row (``sentence``, ``digit``, ...) or None for non-speech."""
    kind = str(row.get("kind") or "")
    if not kind.startswith("speech"):
        return None
    content = str(row.get("content") or "")
    if content in SPEECH_CONTENT:
        return content
    return "sentence" if row.get("text") else None


def _speech(row: dict) -> tuple[list[str], list[str]]:
    text = str(row.get("text") or "").strip()
    label = str(row.get("label") or "").strip()
    content = content_of(row) or "sentence"
    w, acc, lang = who(row), accent_phrase(row), language_name(row)
    w_acc = f"{w} with {acc}" if acc else None
    caps: list[str] = []
    prompts: list[str] = []
    recorded_letters = row.get("source") == "klettres" or (content == "letter" and lang and lang != "English")
    if content == "digit":
        said = _plain(text).lower()
        n = label if label.isdigit() else str(DIGIT_WORDS.index(said)) if said in DIGIT_WORDS else said
        word = DIGIT_WORDS[int(n)] if n.isdigit() and len(n) == 1 else said
        caps = [f"{w} says the digit {n}", f"spoken digits: {n}", f'{w} says "{word}"']
        if w_acc:
            caps.append(f"{w_acc} says the digit {n}")
        prompts = [f"spoken digit {word}", f"spoken digit {n}", f"someone says {word}", f"{w} says {word}",
                   f"say {word}", f"the number {word} spoken aloud", f"{w} says the digit {word}"]
    elif content == "digits":
        shown = spaced(label) if label.isdigit() else _plain(text)
        caps = [f"{w} says the digits {shown}", f"spoken digits: {shown}", f'{w} counting out "{text}"']
        if w_acc:
            caps.append(f"{w_acc} says the digits {shown}")
        prompts = [f"someone says the digits {_plain(text)}", f"spoken digits {shown}", f'{w} says "{text}"']
    elif content in ("letter", "letters") and recorded_letters:
        lname = lang or "a"
        caps = [f"someone says the {lname} letter {text}", f"a spoken {lname} letter: {text}",
                f"a native {lname} speaker names the letter {text}"]
        prompts = [f"someone says the {lname} letter {text}", f"a spoken {lname} letter {text}"]
    elif content in ("letter", "letters"):
        shown = spaced(label) if label else spaced(text)
        noun = "the letter" if content == "letter" else "the letters"
        caps = [f"{w} says {noun} {shown}", f"spelled letters: {shown}"]
        if w_acc:
            caps.append(f"{w_acc} says {noun} {shown}")
        prompts = [f"someone says {noun} {shown}", f"{w} says {noun} {shown}", f"spelled letters {shown}"]
    elif content == "spell":
        word = label or _plain(text.split(".")[0])
        letters = spaced(word)
        caps = [f'{w} spells the word "{word}": {letters}', f"spelling: {word}, {letters}"]
        if w_acc:
            caps.append(f'{w_acc} says "{word}" and spells it {letters}')
        prompts = [f'someone spells the word "{word}"', f"{w} spells {word}"]
    elif content in ("syllable", "word"):
        where = f" {lang}" if lang else ""
        caps = [f'{w} says "{text}"', f'a spoken{where} {content}: "{text}"']
        if lang:
            caps.append(f'speech in {lang}: "{text}"')
        prompts = [f'someone says "{text}"' + (f" in {lang}" if lang else ""), f'a spoken{where} {content} "{text}"']
    else:  # a sentence
        caps = [f'{w} says "{text}"']
        if lang:
            caps.append(f'speech in {lang}: "{text}"')
        if w_acc:
            caps.append(f'{w_acc} says "{text}"')
        if lang:
            caps.append(f'{w} speaking {lang}: "{text}"')
        plain = _plain(text)
        prompts = [f'someone says "{text}"', f'{w} says "{text}"', f'say "{text}"', f"someone says {plain.lower()}"]
    bg = background(row)
    if bg:
        caps.append(f"{caps[0]}, {bg}")
    # the manifest's captions, where they say what is said and nothing unsupported
    shown_forms = {x for x in (text, _plain(text), spaced(label) if label else "") if x}
    for c in _strings(row.get("captions")):
        low = c.lower()
        if any(u in low for u in _UNSUPPORTED):
            continue
        if any(s in c for s in shown_forms) and (w != "someone" or not re.search(r"\b(man|woman|male|female)\b",
                                                                                  low)):
            caps.append(c)
    return caps, prompts


def _music(row: dict) -> tuple[list[str], list[str]]:
    style = str(row.get("label") or "music").strip()
    instruments = [str(i) for i in (row.get("instruments") or []) if str(i).strip()]
    ensemble = str(row.get("ensemble") or "").strip()
    if not instruments and ensemble:
        instruments = [re.sub(r"^(a |an |solo )", "", ensemble)]
    inst = (", ".join(instruments[:-1]) + f" and {instruments[-1]}" if len(instruments) > 1
            else instruments[0] if instruments else None)
    ens = ensemble if ensemble.startswith(("a ", "an ")) or " and " in ensemble else \
        (f"{_article(ensemble)} {ensemble}" if ensemble else None)
    tempo = str(row.get("tempo") or "").strip()
    caps = [f"music: {style} played on {inst}" if inst else f"music: {style}"]
    if ens:
        caps.append(f"{ens} playing {style}")
    if inst:
        caps.append(f"{style} played on {inst}")
        if tempo:
            caps.append(f"{tempo} music played on {inst}")
    prompts = []
    if ens:
        prompts.append(f"{ens} playing {style}")
    if inst:
        prompts += [f"{style} played on {inst}", f"music played on {inst}"]
        if len(instruments) == 1:
            prompts += [f"{_article(instruments[0])} {instruments[0]} melody", f"{instruments[0]} music"]
        else:
            prompts.append(f"a melody played on {inst}")
    prompts = prompts or [f"music: {style}"]
    bg = background(row)
    if bg:
        caps.append(f"{caps[0]}, {bg}")
    for c in _strings(row.get("captions")):
        low = c.lower()
        if '"' in c or re.search(r"\d", c) or any(u in low for u in _UNSUPPORTED):
            continue  # titles and tempi in beats per minute: not in the audio
        if tempo and low.startswith(tempo.lower() + " "):
            continue  # "moderate a Classical-era ...": not English
        if "music" in low or "play" in low:
            caps.append(c)
    return caps, prompts


def _sound(row: dict) -> tuple[list[str], list[str]]:
    label = str(row.get("label") or row.get("category") or "").strip().lower()
    if label in ESC_PHRASES:
        phrases = ESC_PHRASES[label]
        caps = [*phrases, f"sound effect: {phrases[0]}"]
        prompts = list(phrases)
    elif label:
        noun = SONICPI_NOUNS.get(label) or f"{_article(label)} {label}"
        caps = [noun, f"the sound of {noun}", f"sound effect: {noun}"]
        prompts = [noun, f"the sound of {noun}"]
    else:  # a sound the row does not name: only the manifest's own words
        caps = _strings(row.get("captions")) or _strings(row.get("text"))
        prompts = list(caps)
    bg = background(row)
    if bg and caps:
        caps.append(f"{caps[0]}, {bg}")
    return caps, prompts


def _strings(v) -> list[str]:
    if isinstance(v, str):
        return [v.strip()] if v.strip() else []
    if isinstance(v, list):
        return [x.strip() for x in v if isinstance(x, str) and x.strip()]
    return []


def texts_for(row: dict) -> tuple[list[str], list[str]]:
    """``(captions, prompts)`` of a manifest row, distinct and in a fixed order (the first
    caption is the plainest); both empty when the row says nothing to train on."""
    kind = str(row.get("kind") or "")
    if kind.startswith("speech") and row.get("text"):
        caps, prompts = _speech(row)
    elif kind == "music":
        caps, prompts = _music(row)
    elif kind == "sound":
        caps, prompts = _sound(row)
    else:  # a user's manifest without kinds: its own captions / text / label
        caps = _strings(row.get("captions")) or _strings(row.get("text")) or _strings(row.get("label"))
        prompts = list(caps)
    return list(dict.fromkeys(caps)), list(dict.fromkeys(prompts or caps))
