"""The new codec parts on tiny configs: the flow decoder's frame-aligned prior
and classifier-free guidance, the semantic head, level losses, discriminators,
and training runs through ``soundtok train-codec`` (GAN vocoder, decoder stage,
semantic distillation with the real teacher where its weights are installed)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY, cli, make_tiny_codec, synth, tiny_config

TINY_JSON = json.dumps(TINY)


# ------------------------------------------------------------- flow + prior
def test_flow_prior_and_residual_wiring():
    from soundtok.codec.model import SoundCodec

    codec = make_tiny_codec(fm_prior="mse", fm_residual=True)
    codes = torch.randint(0, 32, (2, 1, 5))
    q = codec.vq.embed(codes[:, 0])
    with pytest.raises(ValueError, match="prior"):
        codec.flow.sample(q, 2)
    # with zero velocity and zero noise a residual flow returns its prior, the MSE latent
    for p in codec.flow.out.parameters():
        torch.nn.init.zeros_(p)
    zero = torch.zeros(2, codec.cfg.latent_dim, 10)
    prior = codec.mse(q)
    assert torch.allclose(codec.flow.sample(q, 3, noise=zero, prior=prior), prior)
    # the decoded latent uses that prior by default
    assert torch.allclose(codec.decode_latent(codes, seed=0) - prior,
                          codec.decode_latent(codes, seed=0, decoder="flow") - prior)
    plain = SoundCodec(tiny_config(fm_prior="none", fm_residual=False))
    assert plain.flow.prior_in is None and codec.flow.prior_in is not None
    with pytest.raises(ValueError, match="fm_residual needs"):
        tiny_config(fm_prior="none", fm_residual=True).validate()


def test_cfg_guidance_extrapolates_linearly():
    codec = make_tiny_codec(fm_prior="mse", fm_residual=False)
    flow = codec.flow
    flow.null_cond.data.normal_()
    d = codec.cfg.latent_dim
    # a velocity that ignores x and t: the ODE result is noise + v, so guidance is visible exactly
    flow.velocity = lambda x, t, h: h[:, :d].float()
    codes = torch.randint(0, 32, (1, 1, 4))
    q = codec.vq.embed(codes[:, 0])
    prior = codec.mse(q)
    noise = torch.zeros(1, d, 8)
    out = {w: flow.sample(q, 4, w, noise=noise, prior=prior) for w in (0.0, 1.0, 2.0, 3.0)}
    h = flow.condition(q, prior)[:, :d]
    assert torch.allclose(out[1.0], h, atol=1e-5)  # w = 1: the conditional velocity
    assert torch.allclose(out[0.0], flow.null_cond[:d, 0][None, :, None].expand_as(h), atol=1e-5)
    assert torch.allclose(out[3.0] - out[2.0], out[1.0] - out[0.0], atol=1e-5)
    assert not torch.allclose(out[2.0], out[1.0])


def test_condition_dropout_removes_tokens_and_prior():
    codec = make_tiny_codec(fm_prior="mse", fm_residual=False)
    z = torch.randn(3, codec.cfg.latent_dim, 8)
    qa, qb = torch.randn(3, codec.cfg.tok_dim, 4), torch.randn(3, codec.cfg.tok_dim, 4)
    pa, pb = torch.randn_like(z), torch.randn_like(z)

    def loss(q, p, drop):
        torch.manual_seed(0)
        return codec.flow.loss(z, q, prior=p, drop=torch.full((3,), drop))

    assert torch.equal(loss(qa, pa, True), loss(qb, pb, True))  # nothing of the condition left
    assert not torch.equal(loss(qa, pa, False), loss(qb, pb, False))
    codec.train()
    torch.manual_seed(1)
    codec.flow.cond_dropout = 1.0
    a = codec.flow.loss(z, qa, prior=pa)
    torch.manual_seed(1)
    codec.flow.cond_dropout = 0.0
    assert not torch.equal(a, codec.flow.loss(z, qa, prior=pa))


def test_decoder_default_comes_from_config():
    codec = make_tiny_codec(decoder="mse")
    codes = torch.randint(0, 32, (1, 1, 6))
    assert torch.equal(codec.decode(codes), codec.decode(codes, decoder="mse"))
    assert not torch.equal(codec.decode(codes), codec.decode(codes, decoder="flow"))


def test_detokenize_uses_the_codecs_default_decoder_and_guidance(tmp_path, wav_file):
    """Without --decoder/--guidance, detokenize decodes as the codec's config says."""
    d = tmp_path / "codec"
    codec = make_tiny_codec(decoder="mse", fm_guidance=2.0)
    codec.save_pretrained(d)
    assert codec.decoders == ("mse", "flow") and make_tiny_codec().decoders == ("flow", "mse")
    tok = tmp_path / "a.tok.jsonl"
    assert cli("tokenize", wav_file, "-o", tok, "--codec", d).returncode == 0

    def decode(name, *flags):
        r = cli("detokenize", tok, tmp_path / name, "--codec", d, *flags)
        assert r.returncode == 0, r.stderr
        return sf.read(tmp_path / name)[0]

    plain, mse, flow = decode("p.wav"), decode("m.wav", "--decoder", "mse"), decode("f.wav", "--decoder", "flow")
    assert np.array_equal(plain, mse) and not np.array_equal(plain, flow)
    assert np.array_equal(flow, decode("g.wav", "--decoder", "flow", "--guidance", "2"))
    assert not np.array_equal(flow, decode("g1.wav", "--decoder", "flow", "--guidance", "1"))


def test_tokenizer_stage_losses_and_gradients():
    from soundtok.train.codec_stages import TokenizerStage

    codec = make_tiny_codec(semantic_weight=1.0, teacher="whisper-tiny.en", teacher_dim=384)
    wav = torch.from_numpy(synth(0.64))[None].repeat(2, 1)
    feats = torch.randn(2, 384, 16)
    stage = TokenizerStage(codec, torch.zeros(384), torch.ones(384))
    codec.train()
    out = stage(wav, feats)
    for k in ("fm", "mse", "level", "sem_l1", "sem_cos", "vq_commit"):
        assert torch.isfinite(out[k]), k
    out["fm"].backward(retain_graph=True)
    # the prior is detached: the flow loss never trains the MSE decoder
    assert all(p.grad is None for p in codec.mse.parameters())
    assert any(p.grad is not None for p in codec.flow.prior_in.parameters())
    (out["sem_l1"] + out["sem_cos"]).backward()
    assert codec.tokenizer.inp.weight.grad.abs().sum() > 0  # through the straight-through VQ
    assert stage(wav)["loss"].isfinite()  # validation: no teacher features


# ------------------------------------------------------------------- level
def test_level_loss_measures_gain():
    from soundtok.train.codec_stages import frame_log_energy, level_loss

    mel = torch.randn(2, 10, 7)
    assert level_loss(mel, mel) == 0
    quiet = mel + math.log(0.5)  # magnitudes halved: -6.02 dB
    assert level_loss(quiet, mel).item() == pytest.approx(math.log(2), rel=1e-5)
    e = frame_log_energy(torch.zeros(1, 4, 3))
    assert torch.allclose(e, torch.full((1, 3), 0.5 * math.log(4)))


# ----------------------------------------------------------- discriminators
def test_discriminators_forward_and_loss_step():
    from soundtok.train.discriminators import Discriminators, discriminator_loss, generator_losses

    torch.manual_seed(0)
    d = Discriminators(dim=4)
    real = torch.randn(2, 4000) * 0.1
    fake = (torch.randn(2, 4000) * 0.1).requires_grad_(True)
    outs = d(real)
    assert len(outs) == 8  # 5 periods + 3 resolutions
    for logits, fmaps in outs:
        assert logits.shape[0] == 2 and len(fmaps) >= 4
    ld = discriminator_loss(d(real), d(fake.detach()))
    ld.backward()
    assert all(p.grad is not None for p in d.parameters())
    opt = torch.optim.Adam(d.parameters(), 1e-3)
    before = ld.item()
    for _ in range(5):
        opt.zero_grad()
        ld = discriminator_loss(d(real), d(fake.detach()))
        ld.backward()
        opt.step()
    assert discriminator_loss(d(real), d(fake.detach())).item() < before
    with torch.no_grad():
        r = d(real)
    adv, fm = generator_losses(r, d(fake))
    (adv + fm).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0 and fm > 0


# ----------------------------------------------------- training through the CLI
@pytest.fixture(scope="module")
def train_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sem_audio")
    for i in range(4):
        sf.write(d / f"clip{i}.wav", synth(0.7 + 0.3 * i, seed=i), 16000)
    return d


def _metrics(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _train(train_dir, out, *extra, config=TINY_JSON):
    return cli("train-codec", train_dir, "-o", out, "--config", config, "--batch", "2",
               "--device", "cpu", *extra)


def test_two_step_gan_vocoder_run_and_resume(train_dir, tmp_path):
    out = tmp_path / "voc"
    r = _train(train_dir, out, "--stage", "vocoder", "--steps", "2", "--save-every", "1")
    assert r.returncode == 0, r.stderr
    names = {row["metric"] for row in _metrics(out)}
    assert {"g_adv", "feat_match", "d_loss", "level", "mel_l1"} <= names
    ckpt = json.loads((out / "latest.json").read_text())["checkpoint"]
    assert (out / ckpt / "discriminator.safetensors").is_file()
    assert (out / ckpt / "discriminator_optimizer.safetensors").is_file()
    # resume mid-stage: the discriminators come back from the checkpoint
    r = _train(train_dir, out, "--stage", "vocoder", "--vocoder-steps", "3", "--resume")
    assert r.returncode == 0, r.stderr
    assert "discriminators restored" in (out / "train.log").read_text()


def test_gan_waits_for_voc_gan_start(train_dir, tmp_path):
    out = tmp_path / "voc"
    r = _train(train_dir, out, "--stage", "vocoder", "--steps", "2",
               config=json.dumps({**TINY, "voc_gan_start": 5}))
    assert r.returncode == 0, r.stderr
    assert "d_loss" not in {row["metric"] for row in _metrics(out)}


def test_decoder_stage_keeps_the_codes(train_dir, tmp_path):
    from soundtok.codec.model import SoundCodec

    out = tmp_path / "run"
    r = _train(train_dir, out, "--stage", "vae,tokenizer", "--steps", "2")
    assert r.returncode == 0, r.stderr
    before = SoundCodec.from_pretrained(out / "final")
    r = _train(train_dir, out, "--stage", "decoder", "--steps", "2", "--resume")
    assert r.returncode == 0, r.stderr
    after = SoundCodec.from_pretrained(out / "final")
    wav = torch.from_numpy(synth(1.0))[None]
    assert torch.equal(before.encode(wav), after.encode(wav))
    assert not torch.equal(before.flow.stack.blocks[0].pw1.weight, after.flow.stack.blocks[0].pw1.weight)
    assert {row["stage"] for row in _metrics(out)} >= {"vae", "tokenizer", "decoder"}


def test_bad_teacher_config_is_one_line(train_dir, tmp_path):
    for cfg, needle in (({"semantic_weight": 1.0, "teacher": "whisper-huge"}, "unknown teacher"),
                        ({"semantic_weight": 1.0, "teacher": None}, "no teacher"),
                        ({"semantic_weight": 1.0, "teacher": "whisper-tiny.en", "teacher_dim": 7},
                         "teacher_dim"),
                        ({"fm_prior": "gauss"}, "fm_prior")):
        r = _train(train_dir, tmp_path / "x", "--steps", "1", config=json.dumps({**TINY, **cfg}))
        err = r.stderr.decode()
        assert r.returncode == 2 and err.count("\n") == 1 and needle in err, err


def test_codec_dir_missing_its_teacher_reference(tmp_path):
    from soundtok.errors import ModelError
    from soundtok.registry import load_codec

    d = tmp_path / "codec"
    make_tiny_codec().save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(semantic_weight=1.0, teacher=None)
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="no teacher is named") as e:
        load_codec(str(d), device="cpu")
    assert "\n" not in str(e.value)


def test_old_stream_is_refused_naming_its_codec(tmp_path, tiny_codec_dir):
    from soundtok.tokens import Header, Item, open_token_writer

    old = {"name": "soundtok-fm-16k",
           "sha256": "dd323b4160353da1527095ecefc4427df389330084bae2cf97d1e3b80f895e7b"}
    path = tmp_path / "old.tok.jsonl"
    h = Header(codec=old, sample_rate=16000, codebook_sizes=[512], hop_lengths=[640])
    with open_token_writer(path, h) as w:
        w.write(Item(id="a", codes=[[1, 2, 3]], num_samples=1920))
    r = cli("detokenize", path, tmp_path / "o.wav", "--codec", tiny_codec_dir)
    err = r.stderr.decode()
    assert r.returncode == 1 and err.count("\n") == 1, err
    assert "needs codec 'soundtok-fm-16k' with weights sha256 dd323b416035" in err


def test_semantic_distillation_run_with_whisper(train_dir, tmp_path):
    from test_teacher import _whisper

    _whisper("tiny.en")
    cfg = json.dumps({**TINY, "semantic_weight": 1.0, "teacher": "whisper-tiny.en",
                      "teacher_dim": 384})
    out = tmp_path / "sem"
    r = _train(train_dir, out, "--stage", "vae,tokenizer", "--steps", "2", "--threads", "2",
               config=cfg)
    assert r.returncode == 0, r.stderr
    assert {"sem_l1", "sem_cos"} <= {row["metric"] for row in _metrics(out)}
    meta = json.loads((out / "teacher" / "meta.json").read_text())
    assert meta["teacher"].startswith("whisper-tiny.en@") and meta["hop"] == 640
    assert meta["clips"] == 1 and meta["dim"] == 384  # 4 short clips packed into one window
    # resuming on other audio: the cached teacher features no longer match -> refused
    other = tmp_path / "other"
    other.mkdir()
    sf.write(other / "x.wav", synth(1.1, seed=9), 16000)
    state = json.loads((out / json.loads((out / "latest.json").read_text())["checkpoint"]
                        / "state.json").read_text())
    assert state["stage"] == "tokenizer"
    r = cli("train-codec", other, "-o", out, "--batch", "2", "--device", "cpu",
            "--stage", "vae,tokenizer", "--tokenizer-steps", "4", "--resume")
    err = r.stderr.decode()
    assert r.returncode == 1 and err.count("\n") == 1 and "another audio set" in err, err
