"""End-to-end tests through the real CLI (subprocesses), on a tiny codec and
synthesised audio: pipes, outputs, exit codes and the bad-input matrix."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, cli, run_cli, synth


def _lines(b: bytes) -> list[dict]:
    return [json.loads(x) for x in b.decode().splitlines()]


def test_tokenize_detokenize_pipe(tiny_codec_dir, wav_file, tmp_path):
    out = tmp_path / "out.wav"
    tok = run_cli("tokenize", wav_file, "--codec", tiny_codec_dir)
    assert tok.returncode == 0, tok.stderr
    assert tok.stderr == b""  # quiet when stderr is not a terminal
    recs = _lines(tok.stdout)
    assert recs[0]["type"] == "header" and recs[0]["soundtok"] == 1
    assert recs[1]["id"] == "clip" and recs[1]["num_samples"] == int(1.3 * 16000)
    assert len(recs[1]["codes"][0]) == 33
    det = run_cli("detokenize", "-", out, "--codec", tiny_codec_dir, input=tok.stdout)
    assert det.returncode == 0, det.stderr
    y, sr = sf.read(out)
    assert sr == 16000 and len(y) == int(1.3 * 16000)
    # the shell pipe form, as in the README
    cmd = (f"{sys.executable} -m soundtok tokenize {wav_file} --codec {tiny_codec_dir} | "
           f"{sys.executable} -m soundtok detokenize - {tmp_path / 'p.wav'} --codec {tiny_codec_dir}")
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.wav").stat().st_size > 44


def test_detokenize_to_stdout_and_folder(tiny_codec_dir, tmp_path):
    for name, secs in (("a", 0.5), ("b", 1.0)):
        sf.write(tmp_path / f"{name}.wav", synth(secs), 16000)
    tok = cli("tokenize", tmp_path / "a.wav", tmp_path / "b.wav", "--codec", tiny_codec_dir)
    assert tok.returncode == 0
    outdir = tmp_path / "dec"
    r = cli("detokenize", "-", f"{outdir}/", "--codec", tiny_codec_dir, "--decoder", "mse",
                input=tok.stdout)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in outdir.iterdir()) == ["a.wav", "b.wav"]
    # two items into one file is a usage error, and nothing is written
    r = cli("detokenize", "-", tmp_path / "one.wav", "--codec", tiny_codec_dir, input=tok.stdout)
    assert r.returncode == 2 and b"more than one item" in r.stderr
    assert not (tmp_path / "one.wav").exists()
    single = b"\n".join(tok.stdout.splitlines()[:2]) + b"\n"
    r = cli("detokenize", "-", "-", "--codec", tiny_codec_dir, input=single)
    assert r.returncode == 0 and r.stdout[:4] == b"RIFF"
    y, sr = sf.read(io.BytesIO(r.stdout))
    assert len(y) == 8000


def test_seed_and_steps_change_flow_output(tiny_codec_dir, wav_file, tmp_path):
    tok = cli("tokenize", wav_file, "--codec", tiny_codec_dir).stdout
    outs = {}
    for args in (("--seed", "1"), ("--seed", "1"), ("--seed", "2")):
        r = cli("detokenize", "-", "-", "--codec", tiny_codec_dir, *args, input=tok)
        assert r.returncode == 0
        outs.setdefault(args, []).append(r.stdout)
    a, b = outs[("--seed", "1")]
    assert a == b and a != outs[("--seed", "2")][0]


def test_stdin_audio_and_manifest(tiny_codec_dir, wav_file, tmp_path):
    r = cli("tokenize", "-", "--codec", tiny_codec_dir, input=wav_file.read_bytes())
    assert r.returncode == 0 and _lines(r.stdout)[1]["id"] == "stdin"
    man = tmp_path / "m.jsonl"
    man.write_text(json.dumps({"path": str(wav_file), "id": "x1", "text": "a hum",
                               "label": "hum"}) + "\n")
    r = cli("tokenize", man, "--codec", tiny_codec_dir, "-o", tmp_path / "t.jsonl")
    assert r.returncode == 0 and r.stdout == b""
    item = _lines((tmp_path / "t.jsonl").read_bytes())[1]
    assert (item["id"], item["text"], item["label"]) == ("x1", "a hum", "hum")


def test_head_closes_pipe_quietly(tiny_codec_dir, tmp_path):
    sf.write(tmp_path / "long.wav", synth(20.0), 16000)
    files = [tmp_path / "long.wav"] * 1
    for i in range(30):
        sf.write(tmp_path / f"s{i}.wav", synth(0.3, seed=i), 16000)
    cmd = (f"{sys.executable} -m soundtok tokenize {tmp_path} --codec {tiny_codec_dir} | head -c 10")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.stdout == b'{"soundtok'
    assert r.stderr == b"", r.stderr
    del files


def test_help_shows_examples():
    for cmd in ("tokenize", "detokenize", "train-codec"):
        r = cli(cmd, "--help")
        assert r.returncode == 0 and b"Examples:" in r.stdout


def test_usage_errors_exit_2(tiny_codec_dir, wav_file):
    for args in (("tokenize",), ("tokenize", wav_file, "--bogus"), ("nosuchcommand",),
                 ("detokenize", "-", "-", "--steps", "0"), ("tokenize", wav_file, "--device", "tpu")):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr


def _bad_inputs(tmp_path):
    sr = 16000
    cases = {}
    cases["missing"] = (tmp_path / "missing.wav", "no such file")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    cases["corrupt"] = (tmp_path / "corrupt.wav", "cannot decode")
    (tmp_path / "notes.txt.wav").write_text("hello, not audio\n")
    cases["text"] = (tmp_path / "notes.txt.wav", "cannot decode")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), sr)
    cases["empty"] = (tmp_path / "empty.wav", "no audio samples")
    x = synth(0.5)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, sr, subtype="FLOAT")
    cases["nan"] = (tmp_path / "nan.wav", "NaN")
    sf.write(tmp_path / "lowrate.wav", synth(0.5, sr=2000), 2000)
    cases["lowrate"] = (tmp_path / "lowrate.wav", "sample rate")
    cases["directory"] = (tmp_path / "emptydir", "")
    (tmp_path / "emptydir").mkdir()
    return cases


@pytest.mark.parametrize("case", ["missing", "corrupt", "text", "empty", "nan", "lowrate"])
def test_bad_audio_one_line_exit_1(tiny_codec_dir, tmp_path, case):
    path, needle = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out.jsonl"
    r = cli("tokenize", path, "--codec", tiny_codec_dir, "-o", out)
    assert r.returncode == 1, r.stderr
    err = r.stderr.decode()
    assert b"Traceback" not in r.stderr
    assert all(line.startswith("error: ") for line in err.strip().splitlines())
    assert needle in err
    assert not out.exists()  # nothing half-written


def test_batch_with_bad_files_finishes_good_ones(tiny_codec_dir, tmp_path, wav_file):
    cases = _bad_inputs(tmp_path)
    bad = [cases[k][0] for k in ("missing", "corrupt", "nan")]
    out = tmp_path / "batch.jsonl"
    r = cli("tokenize", wav_file, *bad, "--codec", tiny_codec_dir, "-o", out)
    assert r.returncode == 1
    recs = _lines(out.read_bytes())
    assert [x["id"] for x in recs[1:]] == ["clip"]
    err = r.stderr.decode()
    for b in bad:
        assert str(b.name) in err
    assert "3 of 4 inputs failed" in err


@pytest.mark.parametrize("stream,needle", [
    (b"", "empty token stream"),
    (b'{"soundtok": 2, "type": "header"}\n', "version 2"),
    (b"\x89PNG\r\n\x1a\n\x00\x00 random bytes", ""),
    (b'{"soundtok": 1, "type": "hea', "truncated"),
])
def test_bad_token_streams(tiny_codec_dir, tmp_path, stream, needle):
    r = cli("detokenize", "-", tmp_path / "o.wav", "--codec", tiny_codec_dir, input=stream)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert not (tmp_path / "o.wav").exists()


def test_stream_from_another_codec_and_out_of_range(tiny_codec_dir, wav_file, tmp_path):
    from conftest import make_tiny_codec

    other = tmp_path / "other"
    make_tiny_codec(seed=9).save_pretrained(other)
    tok = cli("tokenize", wav_file, "--codec", other).stdout
    r = cli("detokenize", "-", tmp_path / "o.wav", "--codec", tiny_codec_dir, input=tok)
    assert r.returncode == 1 and b"codec" in r.stderr and len(r.stderr.splitlines()) == 1
    recs = _lines(cli("tokenize", wav_file, "--codec", tiny_codec_dir).stdout)
    recs[1]["codes"][0][3] = 99  # codebook has 32 entries
    bad = "".join(json.dumps(x) + "\n" for x in recs).encode()
    r = cli("detokenize", "-", tmp_path / "o.wav", "--codec", tiny_codec_dir, input=bad)
    assert r.returncode == 1 and b"out of range" in r.stderr
    header_only = (json.dumps(recs[0]) + "\n").encode()
    r = cli("detokenize", "-", tmp_path / "o.wav", "--codec", tiny_codec_dir, input=header_only)
    assert r.returncode == 1 and b"no items" in r.stderr


def test_missing_codec_and_debug_traceback(tmp_path, wav_file):
    r = run_cli("tokenize", wav_file, "--codec", tmp_path / "nocodec")
    assert r.returncode == 1 and r.stderr.decode().startswith("error: no such codec")
    r = run_cli("tokenize", wav_file, "--codec", tmp_path / "nocodec", env={"SOUNDTOK_DEBUG": "1"})
    assert r.returncode == 1 and b"Traceback" in r.stderr


def test_version_and_module_entry():
    r = cli("--version")
    assert r.returncode == 0 and b"soundtok" in r.stdout


def test_import_is_light():
    code = "import sys, soundtok; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.stdout.strip() == b"False"
