"""Every prompt template of the LLM-Codec few-shot tasks, in one place.

A prompt is a list of *parts*: ``str`` parts are text (tokenized with the
LLM's tokenizer, no special tokens) and ``list[int]`` parts are LLM token ids
used as they are -- the audio, whose codes already *are* LLM tokens.  A
template holds ``{audio}`` where a clip's parts go; ``{answer}`` and
``{labels}`` are plain text substitutions (``str.replace``, so braces in
labels are safe).

A clip is rendered (:func:`soundtok.llmcodec.text.codes_to_parts`) as its
scale-0 words, then each finer scale, with :data:`SCALE_SEPARATOR` between
scales.  The few-shot prompt (:func:`soundtok.llmcodec.incontext.build_prompt`)
is::

    [INSTRUCTION]            (only with --instruction; off by default, USE_INSTRUCTION)
    DEMO  x N*K              (audio words ": " answer, one line each)
    QUERY                    (audio words ":" -- the LLM continues)

and a candidate label is scored as the continuation ``ANSWER_PREFIX + label``.
"""

from __future__ import annotations

#: Separates the scales of one clip (scale-0 words first, then finer scales).
SCALE_SEPARATOR = " |"

#: Optional first line(s); ``{labels}`` = the episode's labels joined by ", ".
INSTRUCTION = "Each line is a sound written in words, then its label ({labels}).\n\n"

#: Whether prompts start with INSTRUCTION unless told otherwise (``--instruction``).
#: Off: with the shipped codec and Gemma 3 270M, prompts without it scored higher at
#: every N on ESC-10 (2-way 1-shot 0.69 vs 0.62, 100 episodes; docs/llm-codec.md).
USE_INSTRUCTION = False

#: One demonstration: a clip and its answer, on one line.  This compact
#: "words: label" layout was chosen by measurement: with Gemma 3 270M and
#: clips whose words identify their label perfectly, 30 ESC-10 episodes gave
#: 2-way / 5-way accuracy 0.517 / 0.273 with "Sound: ... =>" lines,
#: 0.733 / 0.600 with 'Input: "..." / Output:' pairs and 0.917 / 0.873 with
#: this one (docs/llm-codec.md).
DEMO = "{audio}: {answer}\n"

#: The query: a clip; the LLM continues after the colon.
QUERY = "{audio}:"

#: What goes between the prompt and a candidate label when scoring it.
ANSWER_PREFIX = " "

#: Joins the labels inside INSTRUCTION.
LABEL_JOINER = ", "


def fill(template: str, audio: list | None = None, **fields: str) -> list:
    """``template`` as prompt parts: ``{audio}`` -> the ``audio`` parts,
    ``{name}`` -> ``fields[name]`` (text)."""
    pieces = template.split("{audio}")
    if len(pieces) > 2:
        raise ValueError("a template may hold {audio} at most once")
    texts = []
    for p in pieces:
        for name, value in fields.items():
            p = p.replace("{" + name + "}", value)
        texts.append(p)
    parts: list = [texts[0]]
    if len(texts) == 2:
        parts += list(audio or []) + [texts[1]]
    return [p for p in parts if not (isinstance(p, str) and p == "")]
