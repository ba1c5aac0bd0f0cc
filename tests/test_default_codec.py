"""The codec shipped inside the package: present, small, 225 bit/s, round-trips
through the CLI without --codec, and keeps spoken digits intelligible."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, SHARED_DATA, needs_shared_data, synth

from soundtok.codec import default_codec_path

pytestmark = pytest.mark.skipif(not (default_codec_path() / "model.safetensors").is_file(),
                                reason="default codec not built (make -j2 default-codec)")


def test_default_codec_files():
    d = default_codec_path()
    assert (d / "model.safetensors").stat().st_size <= 20 * 1024 * 1024
    assert (d / "MODEL_CARD.md").is_file()
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["sample_rate"] == 16000
    from soundtok.codec.config import CodecConfig
    assert CodecConfig.from_dict(cfg).bitrate <= 250


def test_readme_pipe_with_default_codec(tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, synth(2.0), 16000)
    cmd = (f"{sys.executable} -m soundtok tokenize {clip} | "
           f"{sys.executable} -m soundtok detokenize - {tmp_path / 'out.wav'}")
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(tmp_path / "out.wav")
    assert sr == 16000 and len(y) == 32000 and np.isfinite(y).all() and np.abs(y).max() > 0.01


@needs_shared_data()
def test_digit_strings_stay_intelligible():
    """STOI of decoded FSDD test-split digit strings (a regression guard; the
    model card has the full measurement)."""
    import torch
    from pystoi import stoi

    from soundtok.audio import load_audio
    from soundtok.registry import load_codec

    with open(SHARED_DATA / "fsdd" / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["official_split"] == "test"
                and r["speaker"] == "george"][:10]
    wav = torch.cat([torch.cat([load_audio(SHARED_DATA / "fsdd" / r["path"], 16000),
                                torch.zeros(1600)]) for r in rows])
    codec = load_codec()
    codes = codec.encode_long(wav)
    ref = wav.numpy()
    mse = codec.decode_long(codes, num_samples=len(ref), decoder="mse").numpy()
    flow = codec.decode_long(codes, num_samples=len(ref), seed=0).numpy()
    s_mse, s_flow = stoi(ref, mse, 16000), stoi(ref, flow, 16000)
    assert s_mse > 0.65, s_mse
    assert s_flow > 0.6, s_flow
