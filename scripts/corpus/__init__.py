"""Offline training corpus for soundtok: many TTS voices with known text, recorded speech, sounds, music.

Modules, along the build's seams:

* :mod:`corpus.plan`     config presets and the seeded plan (which clips, which split)
* :mod:`corpus.text`     sentences (fortune databases), words, digits and spelled letters
* :mod:`corpus.voices`   the TTS voice inventory and the held-out voices
* :mod:`corpus.tts`      TTS engines (Piper, Kokoro, flite, Festival, espeak-ng)
* :mod:`corpus.recorded` FSDD, klettres, ESC-10 and sonic-pi files
* :mod:`corpus.music`    music21 scores rendered through fluidsynth
* :mod:`corpus.augment`  noise, reverb, EQ and level changes for some train clips
* :mod:`corpus.captions` caption phrasings
* :mod:`corpus.manifest` atomic clip writes, the done log, manifests and the summary
* :mod:`corpus.build`    worker processes, resume, per-stage wall time

Entry point: ``scripts/build_corpus.py`` (``make corpus``); see docs/corpus.md.
"""
