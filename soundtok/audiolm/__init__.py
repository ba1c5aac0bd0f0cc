"""The audio LM: an LLM that reads and writes audio tokens (LoRA + audio-token rows).

Built on an LLM that :mod:`soundtok.llm` loads; used by ``caption``,
``generate`` and ``finetune-llm``.  Modules (importing this package is cheap):

* :mod:`.vocabulary` -- :class:`AudioVocab`: the audio tokens of one codec's
  streams and their ids above the LLM's own vocabulary;
* :mod:`.model` -- :class:`AudioLM`: base model + LoRA + audio rows, separate
  text and audio output softmaxes;
* :mod:`.adapter` -- create, save and load adapters (the shipped one is
  ``default_adapter/``);
* :mod:`.prompts` -- the caption and generation prompt formats;
* :mod:`.data` -- training records and batches;
* :mod:`.decoding` -- text and audio-token generation;
* :mod:`.tasks` -- captioning token streams and generating them from text.
"""
