"""LLM-Codec with a semantic teacher and codebook use that does not collapse, on tiny configs:
teacher features pooled to the word scale, the teacher head and its loss, the label loss
on stretches of packed crops, the usage loss and low-dimensional lookup, config checks,
old configs (the shipped one included) loading as before, and training runs with a fake
teacher (its cache reused from another run)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from conftest import cli, synth
from test_llmcodec import TINY_CODEC, _word_llm

from soundtok.errors import ModelError
from soundtok.llm import load_llm

# the new design on the tiny LLM (hidden size 16): lookup in 4 of its 16 dimensions
SEM_CODEC = {**TINY_CODEC, "semantic": "whisper", "teacher": "whisper-tiny.en", "teacher_dim": 384,
             "teacher_hidden": 8, "lookup_dim": 4, "lookup_projection": "pca", "entropy_weight": 0.1}


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    d = _word_llm(tmp_path_factory.mktemp("llm") / "words")
    model, tok = load_llm(d, dtype="float32")
    return d, model, tok


def _codec(llm, seed=0, **kw):
    from soundtok.llmcodec import LLMCodec, LLMCodecConfig

    _, model, tok = llm
    torch.manual_seed(seed)
    return LLMCodec.from_llm(LLMCodecConfig.from_dict({**SEM_CODEC, **kw}), model, tok)


# ----------------------------------------------------------- teacher features
def test_teacher_frames_pool_to_the_word_scale():
    """25 Hz features -> 3.125 Hz: each word frame is the mean of the 8 frames inside its
    5120 samples; a ramp at 50 Hz comes out as the ramp at the word frames' centres."""
    from soundtok.teacher.align import pool_frames, to_codec_frames

    x = torch.arange(2 * 3 * 20, dtype=torch.float32).reshape(2, 3, 20)
    p = pool_frames(x, 8)
    assert p.shape == (2, 3, 2)  # the last 4 frames do not fill a word frame
    assert torch.equal(p[..., 1], x[..., 8:16].mean(-1)) and torch.equal(pool_frames(x, 1), x)
    with pytest.raises(ValueError):
        pool_frames(x, 0)
    n = 4 * 5120
    ramp = torch.arange(0, n, 320, dtype=torch.float32)[None, None]  # teacher frame k = its sample 320 k
    word = pool_frames(to_codec_frames(ramp, 640, n // 640), 5120 // 640)
    centres = torch.tensor([(i + 0.5) * 5120 for i in range(4)])
    assert word.shape == (1, 1, 4)
    assert torch.allclose(word[0, 0, 1:3], centres[1:3], atol=1e-3)  # away from the padded edges


def test_frame_label_mode_and_segment_means():
    from soundtok.train.llmcodec_trainer import frame_label_mode, segment_means

    fine = torch.tensor([[2, 2, 2, -1, 5, 5, 5, 5], [-1, -1, 3, 3, 0, 0, 0, 1], [4, 4, 1, 1, 7, 7, 3, 3]])
    assert frame_label_mode(fine, 4).tolist() == [[2, 5], [-1, 0], [-1, -1]]  # no majority: none
    q0 = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    labels = torch.tensor([[1, 1, -1], [0, 1, 0]])
    means, which = segment_means(q0, labels)
    assert which.tolist() == [1, 0, 1]
    assert torch.equal(means[0], q0[0, :2].mean(0)) and torch.equal(means[1], q0[1, [0, 2]].mean(0))
    assert torch.equal(means[2], q0[1, 1])
    none, w = segment_means(q0, torch.full((2, 3), -1))
    assert none.shape == (0, 2) and w.numel() == 0


def test_teacher_head_loss_and_gradients(llm):
    from soundtok.train.llmcodec_trainer import llmcodec_losses

    c = _codec(llm).train()
    assert c.semantic is None and c.teacher_head is not None  # "whisper": no label head
    before = [c.rvq.codebook(k).clone() for k in range(3)]
    wav = torch.from_numpy(np.stack([synth(0.64, seed=1), synth(0.64, seed=2)]))[:, :10240]
    target = torch.randn(2, 384, 2)  # standardised teacher features at 3.125 Hz
    out = llmcodec_losses(c, wav, teacher=target, vocoder=False)
    assert {"sem_l1", "sem_cos", "usage", "mel_l1", "commit"} <= set(out) and "semantic" not in out
    pred = c.teacher_prediction(c(wav)["quantized"][0])
    assert pred.shape == (2, 384, 2)
    out["loss"].backward()
    assert c.teacher_head.net[0].weight.grad is not None
    assert c.inp.weight.grad is not None and float(c.inp.weight.grad.abs().sum()) > 0  # through the codes
    assert all(torch.equal(c.rvq.codebook(k), before[k]) for k in range(3))
    assert [x.sum().item() for x in out["counts"]] == [4, 16, 32]  # every frame counted once
    with pytest.raises(ValueError, match="do not fit"):
        llmcodec_losses(c, wav, teacher=torch.randn(2, 384, 3), vocoder=False)
    with pytest.raises(ModelError, match="no text head"):
        c.semantic_embedding(c(wav)["quantized"][0])


def test_both_losses_use_labelled_stretches(llm):
    from soundtok.train.llmcodec_trainer import llmcodec_losses

    c = _codec(llm, semantic="both").train()
    wav = torch.from_numpy(np.stack([synth(0.64, seed=3), synth(0.64, seed=4)]))[:, :10240]
    table = F.normalize(torch.randn(3, 12), dim=-1)
    out = llmcodec_losses(c, wav, teacher=torch.randn(2, 384, 2), frame_labels=torch.tensor([[0, 2], [-1, -1]]),
                          label_table=table, vocoder=False)
    assert {"semantic", "sem_l1", "sem_cos"} <= set(out)
    q0 = c(wav)["quantized"][0]
    want = torch.stack([1 - F.cosine_similarity(c.semantic(q0[0, i]), table[lab], dim=0)
                        for i, lab in ((0, 0), (1, 2))]).mean()
    assert float(out["semantic"].detach()) == pytest.approx(float(want.detach()), abs=1e-5)
    out["loss"].backward()
    assert c.semantic.weight.grad is not None


# ------------------------------------------------------------------ code use
def test_source_weights():
    from soundtok.train.llmcodec_trainer import source_weight

    w = {"esc10": 4.0}
    assert source_weight("esc10/1-100-A", w) == source_weight("aug/esc10/1-100-A", w) == 4.0
    assert source_weight("fsdd/0_george_1", w) == source_weight("esc10", w) == 1.0


def test_code_perplexity():
    from soundtok.llmcodec.quantizer import code_perplexity

    assert code_perplexity(torch.tensor([5, 0, 0, 0])) == (1.0, 1)
    ppl, used = code_perplexity(torch.tensor([3, 3, 3, 3, 0]))
    assert ppl == pytest.approx(4.0) and used == 4
    assert np.isnan(code_perplexity(torch.zeros(3))[0])


def test_usage_loss_spreads_collapsed_frames():
    """The usage loss's gradient alone moves frames that all pick one row onto many rows."""
    from soundtok.llmcodec.quantizer import code_perplexity, usage_loss

    g = torch.Generator().manual_seed(0)
    cb = F.normalize(torch.randn(64, 4, generator=g), dim=-1)
    raw = (cb[0] + 0.05 * torch.randn(128, 4, generator=g)).requires_grad_(True)
    opt = torch.optim.Adam([raw], lr=0.05)

    def used():
        return code_perplexity(torch.bincount((F.normalize(raw, dim=-1) @ cb.t()).argmax(-1), minlength=64))

    before = used()
    for _ in range(60):
        opt.zero_grad()
        usage_loss(F.normalize(raw, dim=-1)[None], cb, 0.05).backward()
        opt.step()
    after = used()
    assert before[1] <= 3 and after[0] > 5 * before[0] and after[1] >= 20, (before, after)


def _rvq_perplexity(lookup_dim: int, usage: float, seed: int, steps: int = 100) -> float:
    """Train one scale of the frozen-row quantizer (256 rows sharing a common direction,
    like an LLM's) to reconstruct weak, rank-2 encoder features -- little pressure to use
    many rows, as at the word scale -- and return its perplexity on new features."""
    from soundtok.llmcodec.quantizer import FrozenEmbeddingRVQ, code_perplexity

    g = torch.Generator().manual_seed(seed)
    rows = torch.randn(256, 16, generator=g) + 2.0 * torch.randn(1, 16, generator=g)
    torch.manual_seed(seed)
    q = FrozenEmbeddingRVQ(8, 16, [1], [256], center=True, entropy_weight=usage, lookup_dim=lookup_dim)
    q.set_codebooks([rows])
    basis = 0.1 * torch.randn(8, 2, generator=g)
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    q.train()
    for _ in range(steps):
        h = torch.einsum("dk,bkt->bdt", basis, torch.randn(16, 2, 32, generator=g))
        total, _, _, losses = q(h)
        loss = F.mse_loss(total, h) + losses["commit"] + usage * losses.get("usage", 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, _, _, losses = q.eval()(torch.einsum("dk,bkt->bdt", basis, torch.randn(16, 2, 32, generator=g)))
    return code_perplexity(losses["counts"][0])[0]


def test_low_dimensional_lookup_and_usage_loss_keep_codes_spread():
    """Each of the two mechanisms is needed: with the lookup in 4 of 16 dimensions and the
    usage loss the codes spread over several times more rows than without either one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        both = _rvq_perplexity(4, 0.1, seed=0)
        no_usage = _rvq_perplexity(4, 0.0, seed=0)
        full_size = _rvq_perplexity(0, 0.1, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert both > 20 and both > 1.5 * no_usage and both > 2 * full_size, (both, no_usage, full_size)


def test_default_losses_include_the_usage_loss(llm):
    """The training loss is the sum of its logged parts, the usage loss among them."""
    from soundtok.train.llmcodec_trainer import llmcodec_losses

    c = _codec(llm).train()
    wav = torch.from_numpy(np.stack([synth(0.64, seed=7), synth(0.64, seed=8)]))[:, :10240]
    out = llmcodec_losses(c, wav, teacher=torch.randn(2, 384, 2), vocoder=False)
    cfg = c.cfg
    parts = (out["mel_l1"] + out["commit"] + cfg.entropy_weight * out["usage"]
             + cfg.teacher_weight * (out["sem_l1"] + 1 - out["sem_cos"]))
    assert float(out["usage"].detach()) < 0 and torch.allclose(out["loss"], parts, atol=1e-6)


def test_learned_lookup_projection(tmp_path, llm):
    """``lookup_projection="learned"``: starts at the principal directions, trained by the
    codebook loss (the rows stay frozen), stored in the weights and loaded back."""
    from soundtok.llmcodec import LLMCodec
    from soundtok.train.llmcodec_trainer import llmcodec_losses

    _, model, _ = llm
    pca = _codec(llm)
    c = _codec(llm, lookup_projection="learned").train()
    for k in range(3):
        assert torch.allclose(c.rvq.normalized_codebook(k), pca.rvq.normalized_codebook(k), atol=1e-5)
    p0 = [p.detach().clone() for p in c.rvq.row_proj]
    wav = torch.from_numpy(np.stack([synth(0.64, seed=5), synth(0.64, seed=6)]))[:, :10240]
    out = llmcodec_losses(c, wav, teacher=torch.randn(2, 384, 2), vocoder=False)
    assert float(out["codebook"].detach()) > 0
    opt = torch.optim.SGD(c.rvq.row_proj.parameters(), lr=0.5)
    out["loss"].backward()
    opt.step()
    assert not torch.equal(c.rvq.row_proj[0], p0[0])
    rows = [c.rvq.codebook(k).clone() for k in range(3)]
    c.eval().save_pretrained(tmp_path / "c")
    back = LLMCodec.from_pretrained(tmp_path / "c", llm=model)
    for k in range(3):
        assert torch.equal(back.rvq.row_proj[k], c.rvq.row_proj[k]) and torch.equal(back.rvq.codebook(k), rows[k])
    assert all(torch.equal(a, b) for a, b in zip(back.encode(wav), c.encode(wav)))


# ------------------------------------------------------------------- configs
@pytest.mark.parametrize("bad, match", [
    ({"semantic": "words"}, "semantic 'words': choose text, whisper, both"),
    ({"lookup_projection": "random"}, "lookup_projection 'random'"),
    ({"lookup_projection": "learned", "lookup_dim": 0}, "needs lookup_dim > 0"),
    ({"teacher": "whisper-huge"}, "unknown teacher 'whisper-huge'"),
    ({"teacher": None}, "needs a teacher"),
    ({"teacher_dim": 500}, "not teacher_dim 500"),
    ({"entropy_temperature": 0.0}, "entropy_temperature"),
    ({"strides": [32, 8, 1], "vocab_sizes": [8, 24, 24]}, "multiple of 320"),
])
def test_config_validation_is_one_line(bad, match):
    from soundtok.llmcodec import LLMCodecConfig

    with pytest.raises(ValueError, match=match) as e:
        LLMCodecConfig.from_dict({**SEM_CODEC, **bad})
    assert "\n" not in str(e.value)
    LLMCodecConfig.from_dict({**SEM_CODEC, "semantic": "text", "teacher": None})  # text needs no teacher


def test_cli_refuses_a_bad_llm_codec_config_in_one_line(tmp_path, llm):
    d, _, _ = llm
    sf.write(tmp_path / "a.wav", synth(0.5), 16000)
    r = cli("train-codec", tmp_path / "a.wav", "-o", tmp_path / "run", "--arch", "llm-codec", "--llm", d,
            "--config", json.dumps({"semantic": "words"}), "--device", "cpu")
    err = r.stderr.decode()
    assert r.returncode == 2 and err.count("\n") == 1 and "llm-codec config: semantic 'words'" in err, err
    assert not (tmp_path / "run" / "final").exists()


def test_old_configs_load_and_behave_as_before(tmp_path, llm):
    """A config.json written before these keys existed means the first design: label loss,
    full-size fixed lookup, no usage loss -- also the shipped llm-codec's."""
    from safetensors import safe_open

    from soundtok.llmcodec import DEFAULT_LLM_CODEC_DIR, LLMCodec, LLMCodecConfig
    from soundtok.llmcodec.config import LEGACY

    _, model, tok = llm
    old = LLMCodec.from_llm(LLMCodecConfig(**{**TINY_CODEC, **LEGACY}), model, tok).eval()
    old.save_pretrained(tmp_path / "old")
    raw = json.loads((tmp_path / "old" / "config.json").read_text())
    for k in ("semantic", "teacher", "teacher_dim", "teacher_weight", "teacher_hidden", "lookup_projection"):
        raw.pop(k)
    (tmp_path / "old" / "config.json").write_text(json.dumps(raw))
    back = LLMCodec.from_pretrained(tmp_path / "old", llm=model)
    assert (back.cfg.semantic, back.cfg.teacher, back.cfg.lookup_projection) == ("text", None, "pca")
    assert back.teacher_head is None and back.semantic is not None and back.rvq.row_proj is None
    wav = torch.from_numpy(synth(0.7, seed=4))[None]
    assert all(torch.equal(a, b) for a, b in zip(back.encode(wav), old.encode(wav)))
    # the shipped llm-codec: its config reads as the first design, and the model that
    # config describes has exactly the tensors its weights file holds
    shipped = json.loads((DEFAULT_LLM_CODEC_DIR / "config.json").read_text())
    cfg = LLMCodecConfig.from_dict(shipped)
    assert not {"semantic", "teacher", "lookup_projection"} & set(shipped)
    assert (cfg.semantic, cfg.lookup_dim, cfg.lookup_projection) == ("text", 0, "pca")
    with safe_open(str(DEFAULT_LLM_CODEC_DIR / "model.safetensors"), "pt") as f:
        stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    want = {k: tuple(v.shape) for k, v in
            LLMCodec(cfg, [list(range(v)) for v in cfg.vocab_sizes]).state_dict().items()
            if not k.startswith("vocoder.")}
    assert stored == want


def test_new_defaults():
    from dataclasses import asdict

    from soundtok.llmcodec import LLMCodecConfig

    cfg = LLMCodecConfig.from_dict(asdict(LLMCodecConfig()))  # what a new run starts from
    assert cfg.semantic == "whisper" and cfg.teacher == "whisper-base" and cfg.teacher_dim == 512
    assert cfg.lookup_dim > 0 and cfg.entropy_weight > 0 and cfg.teacher_hop == 640


# ------------------------------------------------------------------ training
class FakeTeacher:
    """Stands in for Whisper tiny.en: 384 channels at 50 Hz that follow the audio."""

    id, dim = "whisper-tiny.en@fake", 384
    calls = 0

    def features(self, wav):
        FakeTeacher.calls += 1
        n = -(-len(wav) // 320)
        frames = np.pad(wav, (0, n * 320 - len(wav))).reshape(n, 320)
        return np.tile(np.abs(frames).mean(1), (self.dim, 1)) * np.linspace(1, 2, self.dim)[:, None]


def test_training_with_the_teacher_and_a_shared_cache(tmp_path, llm, monkeypatch):
    import csv

    import soundtok.teacher as teacher_mod
    from soundtok.llmcodec import LLMCodec
    from soundtok.train.llmcodec_trainer import TrainLLMCodecOptions, train_llm_codec

    monkeypatch.setattr(teacher_mod, "load_teacher", lambda name, threads=1: FakeTeacher())
    _, model, tok = llm
    rows = []
    for i, lab in enumerate(["dog", "rain", None, "dog"]):
        sf.write(tmp_path / f"c{i}.wav", synth(0.5 + 0.2 * i, seed=i), 16000)
        rows.append(json.dumps({"path": str(tmp_path / f"c{i}.wav"), "id": f"src{i % 2}/c{i}",
                                **({"label": lab} if lab else {})}))
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")

    def embed(labels):
        return F.normalize(torch.randn(len(labels), 12, generator=torch.Generator().manual_seed(0)), dim=-1)

    FakeTeacher.calls = 0
    opts = TrainLLMCodecOptions(train=[str(tmp_path / "train.jsonl")], out=str(tmp_path / "a"), steps=2,
                                batch=2, crop_seconds=0.32, save_every=1, log_every=1,
                                codec_config={**SEM_CODEC, "semantic": "both"}, vocoder_init=None,
                                train_vocoder=False, val=[str(tmp_path / "c1.wav")], val_every=2,
                                source_weights={"src1": 3.0})
    final = train_llm_codec(opts, embedder=embed, llm=(model, tok))
    assert FakeTeacher.calls == 1  # four clips packed into one teacher window
    metrics = list(csv.DictReader(open(tmp_path / "a" / "metrics.csv")))
    train = {r["metric"] for r in metrics if r["split"] == "train"}
    assert {"sem_l1", "sem_cos", "semantic", "usage", "perplexity_0", "rows_used_2"} <= train
    assert {"mel_l1", "perplexity_0", "rows_used_0"} <= {r["metric"] for r in metrics if r["split"] == "val"}
    meta = json.loads((tmp_path / "a" / "teacher" / "meta.json").read_text())
    assert meta["hop"] == 640 and meta["teacher"] == FakeTeacher.id and meta["clips"] == 1
    c = LLMCodec.from_pretrained(final, llm=model)
    assert c.cfg.semantic == "both" and c.teacher_head is not None
    # another run over the same clips reuses that cache (nothing recomputed); resume works
    opts2 = dataclasses.replace(opts, out=str(tmp_path / "b"), teacher_cache=str(tmp_path / "a" / "teacher"),
                                codec_config=SEM_CODEC, val=[], save_every=2)
    train_llm_codec(opts2, embedder=embed, llm=(model, tok))
    assert FakeTeacher.calls == 1 and not (tmp_path / "b" / "teacher").exists()
    opts2.steps, opts2.resume = 3, True
    train_llm_codec(opts2, embedder=embed, llm=(model, tok))
    assert "resuming from ckpt-llmcodec-0000002" in (tmp_path / "b" / "train.log").read_text()
    # other audio: the cache is refused in one line, never silently reused
    sf.write(tmp_path / "c0.wav", synth(0.5, seed=99), 16000)
    with pytest.raises(ModelError, match="another audio set"):
        train_llm_codec(dataclasses.replace(opts2, out=str(tmp_path / "c"), resume=False), embedder=embed,
                        llm=(model, tok))
