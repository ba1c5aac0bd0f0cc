"""The codec registry: adding a codec is one package and one registry entry.

``tests/toycodec`` is a codec soundtok has never heard of (8 kHz, two
codebooks at two rates, no torch model); registered at run time it works
through the real CLI -- ``tokenize | detokenize`` and ``evaluate recon
--codec`` -- with no change anywhere in soundtok.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf
import toycodec
from conftest import cli, synth

from soundtok.codecs import is_codec
from soundtok.errors import ModelError, UsageError
from soundtok.registry import CodecEntry, architectures, load_codec, register_codec, unregister_codec
from soundtok.tokens import TokenReader


@pytest.fixture
def toy(tmp_path):
    register_codec(CodecEntry(toycodec.ARCHITECTURE, toycodec.load))
    yield toycodec.save(tmp_path / "toy")
    unregister_codec(toycodec.ARCHITECTURE)


def test_registered_toy_codec_tokenizes_and_detokenizes_through_the_cli(toy, wav_file, tmp_path):
    assert toycodec.ARCHITECTURE in architectures()
    codec = load_codec(str(toy))
    assert is_codec(codec) and codec.hop_lengths == [2, 4]
    r = cli("tokenize", wav_file, "--codec", toy)
    assert r.returncode == 0, r.stderr
    with TokenReader(io.BytesIO(r.stdout)) as reader:
        header, (item,) = reader.header, list(reader)
    n = round(1.3 * 8000)  # wav_file: 1.3 s at 16 kHz, resampled to the codec's 8 kHz
    assert header.codec["arch"] == "toy-mulaw" and header.sample_rate == 8000
    assert item.num_samples == n and [len(c) for c in item.codes] == [n // 2, n // 4]
    r2 = cli("detokenize", "-", tmp_path / "out.wav", "--codec", toy, input=r.stdout)
    assert r2.returncode == 0, r2.stderr
    y, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert sr == 8000 and y.shape == (n,)
    x, _ = sf.read(wav_file, dtype="float32")
    ref = x[::2][:n]  # 16 -> 8 kHz, near enough for a correlation
    assert np.corrcoef(ref, y)[0, 1] > 0.9
    # the stream names its codec: without --codec the built-in one refuses it
    r3 = cli("detokenize", "-", tmp_path / "o2.wav", input=r.stdout)
    assert r3.returncode == 1 and b"codec mismatch" in r3.stderr


def test_registered_toy_codec_in_evaluate_recon(toy, wav_file):
    r = cli("evaluate", "recon", wav_file, "--codec", toy, "--json", "--no-dnsmos")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.decode().splitlines()]
    (system,) = [x for x in rows if x.get("type") == "system"]
    assert system["system"] == "soundtok-hold" and "sample-and-hold" in system["description"]
    assert system["bitrate_bps"] == pytest.approx(4000 * 8 + 2000 * 4, rel=1e-3)
    assert [t["size"] for t in system["token_stats"]] == [256, 16]
    assert system["metrics"]["mel_l1"] < 5


def test_unknown_architecture_and_misplaced_llm(tmp_path, tiny_codec_dir):
    d = toycodec.save(tmp_path / "toy")  # not registered here
    with pytest.raises(ModelError, match="'toy-mulaw' model, not a codec soundtok knows"):
        load_codec(str(d))
    with pytest.raises(ModelError, match="no such codec"):
        load_codec(str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="--llm"):
        load_codec(str(tiny_codec_dir), llm="gemma3-270m")
    codec = load_codec(str(tiny_codec_dir))
    assert load_codec(codec) is codec  # a loaded codec passes through
    with pytest.raises(ValueError, match="built in"):
        register_codec(CodecEntry("soundtok-fm", toycodec.load))


def test_streaming_encoder_of_a_codec_equals_encode_clips(toy):
    codec = load_codec(str(toy))
    x = synth(0.77, sr=8000, seed=2)
    enc = codec.stream_encoder()
    for i in range(0, x.shape[0], 333):
        enc.push(x[i:i + 333])
    codes, n = enc.finish()
    assert n == x.shape[0] and codes == codec.encode_clips([x])[0]
