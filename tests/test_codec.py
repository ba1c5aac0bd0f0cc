"""The codec model: shapes, bitrate arithmetic, chunking equivalence, decoders,
save/load, and the vocoder's overlap-add."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import make_tiny_codec, synth, tiny_config

from soundtok.codec.config import CodecConfig
from soundtok.codec.flow import NOISE_BLOCK, block_noise
from soundtok.codec.model import SoundCodec
from soundtok.errors import ModelError


def test_default_config_bitrate_arithmetic():
    cfg = CodecConfig()
    assert cfg.token_hop == 640 and cfg.latent_hop == 320
    assert cfg.frame_rate == 25.0
    assert cfg.bitrate == pytest.approx(25 * 10)  # 1024 codes = 10 bits
    assert cfg.bitrate <= 250
    legacy = CodecConfig.from_dict({})  # a config.json from before the semantic codec
    assert legacy.bitrate == pytest.approx(25 * 9) and legacy.fm_prior == "none"
    assert legacy.name == "soundtok-fm-16k" and legacy.semantic_weight == 0


@pytest.mark.parametrize("n", [1, 639, 640, 641, 16000, 23456])
def test_encode_decode_shapes(n):
    codec = make_tiny_codec()
    wav = torch.from_numpy(synth(n / 16000 + 1e-9))[:n]
    codes = codec.encode(wav[None])
    assert codes.shape == (1, 1, math.ceil(n / 640))
    assert codes.dtype == torch.long and 0 <= codes.min() and codes.max() < 32
    out = codec.decode(codes, num_samples=n, steps=2, seed=0)
    assert out.shape == (1, n)
    assert torch.isfinite(out).all()


def test_internal_shapes():
    codec = make_tiny_codec()
    wav = torch.randn(2, 6400) * 0.1
    padded = torch.nn.functional.pad(wav, (codec.edge, codec.edge))
    mel = codec.mel(padded)
    assert mel.shape == (2, 80, 40)           # 100 fps
    zn = codec.normalized_latent(padded)
    assert zn.shape == (2, 8, 20)             # 50 Hz latent
    feats = codec.tokenizer(zn)
    assert feats.shape == (2, 16, 10)         # 25 Hz tokens
    assert codec.latent_to_wav(zn).shape == (2, 6400)


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_chunked_encoding_equals_whole(precision):
    codec = make_tiny_codec()
    codec.precision = precision
    wav = torch.from_numpy(synth(9.1, seed=3))
    whole = codec.encode_long(wav, chunk_tokens=10_000)
    assert torch.equal(whole, codec.encode(wav[None])[0])
    for chunk in (7, 25, 64):
        assert torch.equal(codec.encode_long(wav, chunk_tokens=chunk), whole)


def test_chunked_decoding_equals_whole():
    codec = make_tiny_codec()
    codec.precision = "fp32"
    codes = codec.encode_long(torch.from_numpy(synth(8.0, seed=1)))
    whole = codec.decode_long(codes, chunk_tokens=10_000, steps=3, seed=5)
    part = codec.decode_long(codes, chunk_tokens=30, steps=3, seed=5)
    assert whole.shape == part.shape == (8 * 16000,)
    assert torch.allclose(whole, part, atol=1e-4), (whole - part).abs().max()


def test_flow_decoding_depends_on_seed_only():
    codec = make_tiny_codec()
    codes = codec.encode(torch.from_numpy(synth(1.0))[None])
    a = codec.decode(codes, steps=2, seed=1)
    b = codec.decode(codes, steps=2, seed=1)
    c = codec.decode(codes, steps=2, seed=2)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    m1 = codec.decode(codes, decoder="mse", seed=1)
    m2 = codec.decode(codes, decoder="mse", seed=2)
    assert torch.equal(m1, m2)  # the baseline is deterministic


def test_guidance_and_midpoint_run():
    codec = make_tiny_codec()
    codes = codec.encode(torch.from_numpy(synth(0.5))[None])
    g = codec.decode(codes, steps=2, guidance=2.0)
    m = codec.decode(codes, steps=2, solver="midpoint")
    assert torch.isfinite(g).all() and torch.isfinite(m).all()
    with pytest.raises(ValueError):
        codec.decode(codes, decoder="nope")


def test_block_noise_is_window_consistent():
    full = block_noise((1, 3, 3 * NOISE_BLOCK), 0, seed=7)
    win = block_noise((1, 3, 100), NOISE_BLOCK - 30, seed=7)
    assert torch.equal(full[..., NOISE_BLOCK - 30:NOISE_BLOCK + 70], win)
    assert not torch.equal(block_noise((1, 3, 10), 0, 8), full[..., :10])


def test_encoding_is_deterministic():
    codec = make_tiny_codec()
    wav = torch.from_numpy(synth(2.0))[None]
    assert torch.equal(codec.encode(wav), codec.encode(wav))


def test_vocoder_overlap_add_inverts_analysis():
    """Feeding the vocoder's OLA the exact STFT of a signal (same framing as the
    mel front end) must give the signal back: the synthesis is aligned."""
    codec = make_tiny_codec()
    voc, cfg = codec.vocoder, codec.cfg
    x = torch.from_numpy(synth(0.8))[None]
    padded = torch.nn.functional.pad(x, (codec.edge, codec.edge))
    spec = torch.stft(padded, cfg.n_fft, cfg.hop_length, window=torch.hann_window(cfg.n_fft),
                      center=False, return_complex=True)
    y = voc.overlap_add(spec)
    assert y.shape == x.shape
    inner = slice(cfg.n_fft, -cfg.n_fft)  # the edges lack full overlap
    assert torch.allclose(y[:, inner], x[:, inner], atol=1e-4)


def test_save_load_round_trip(tmp_path):
    codec = make_tiny_codec()
    codec.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["architecture"] == "soundtok-fm" and cfg["codebook_size"] == 32
    loaded = SoundCodec.from_pretrained(tmp_path)
    assert loaded.sha256 == codec.sha256 and len(loaded.sha256) == 64
    wav = torch.from_numpy(synth(1.0))[None]
    assert torch.equal(loaded.encode(wav), codec.encode(wav))
    half = tmp_path / "half"
    codec.save_pretrained(half, dtype=torch.float16)
    assert (half / "model.safetensors").stat().st_size < (tmp_path / "model.safetensors").stat().st_size


def test_load_errors(tmp_path):
    with pytest.raises(ModelError, match="not a codec directory"):
        SoundCodec.from_pretrained(tmp_path)
    make_tiny_codec().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ModelError, match="cannot load codec"):
        SoundCodec.from_pretrained(tmp_path)
    other = tmp_path / "other"
    make_tiny_codec().save_pretrained(other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["latent_dim"] = 4
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError):
        SoundCodec.from_pretrained(other)
    cfg["bogus_key"] = 1
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="bogus_key"):
        SoundCodec.from_pretrained(other)


def test_tiny_config_is_small():
    codec = SoundCodec(tiny_config())
    assert sum(p.numel() for p in codec.parameters()) < 200_000


def test_vae_standardises_log_mel():
    """The VAE works on (log_mel - offset) / scale and maps its output back; a config
    written before these keys existed means no standardisation (offset 0, scale 1)."""
    cfg = CodecConfig.from_dict({**tiny_config().to_dict(),
                                 "vae_mel_offset": -5.0, "vae_mel_scale": 2.5})
    vae = SoundCodec(cfg).vae
    with torch.no_grad():
        vae.dec_out[1].weight.zero_()
        vae.dec_out[1].bias.zero_()
        out = vae.decode(torch.randn(1, cfg.latent_dim, 8))
    assert torch.allclose(out, torch.full_like(out, -5.0))
    old = {k: v for k, v in tiny_config().to_dict().items() if not k.startswith("vae_mel_")}
    legacy = CodecConfig.from_dict(old)
    assert (legacy.vae_mel_offset, legacy.vae_mel_scale) == (0.0, 1.0)
    assert (CodecConfig().vae_mel_offset, CodecConfig().vae_mel_scale) == (-5.0, 2.5)
