"""LLM-Codec: vocabularies, frozen-embedding RVQ, save/load, prompts, few-shot maths.

A tiny random Gemma-style LLM (``tiny_llm``) whose filler tokens are renamed
to whole words and sub-words stands in for a real LLM; codec dims are tiny.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import default_llm_codec_missing, synth

from soundtok.errors import FormatError, ModelError, UsageError
from soundtok.llm import llm_identity, load_llm, tiny_llm
from soundtok.tokens import Header, Item, TokenReader, open_token_writer

WORDS = ["water", "dog", "bird", "rain", "music", "speech", "car", "door", "bell", "wind",
         "engine", "voice", "piano", "clock", "train", "laugh", "knock", "siren", "crowd", "river"]
NOT_WORDS = ["\u2581an", "\u2581Paris", "\u2581co2", "ing", "\u2581don't", "er", "tion"]
# the first design's settings (label loss, full-size fixed lookup, no usage loss): the
# mechanics tested here; the Whisper teacher and code-use settings: test_llmcodec_semantic.py
TINY_CODEC = dict(dim=12, enc_layers=1, dec_layers=1, n_mels=20, voc_dim=12, voc_layers=1,
                  semantic_dim=12, vocab_sizes=[8, 24, 24], semantic="text", lookup_dim=0,
                  lookup_projection="pca", entropy_weight=0.0)


def _word_llm(path, vocab_size=160):
    """tiny_llm with ``<unusedN>`` fillers renamed: some words, some non-words."""
    d = tiny_llm(path, vocab_size=vocab_size)
    tj = json.loads((d / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    names = NOT_WORDS[:3] + ["\u2581" + w for w in WORDS] + NOT_WORDS[3:] + ["\u0120hello"]
    by_id = {i: t for t, i in vocab.items()}
    fillers = sorted(i for i, t in by_id.items() if t.startswith("<unused"))
    for i, name in zip(fillers, names):
        by_id[i] = name
    tj["model"]["vocab"] = {t: i for i, t in sorted(by_id.items())}
    tj["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "Replace", "pattern": {"String": "\u0120"}, "content": " "},
        {"type": "Fuse"}]}
    (d / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False))
    return d


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    d = _word_llm(tmp_path_factory.mktemp("llm") / "words")
    model, tok = load_llm(d, dtype="float32")
    return d, model, tok


@pytest.fixture(scope="module")
def codec(llm):
    from soundtok.llmcodec import LLMCodec, LLMCodecConfig

    _, model, tok = llm
    torch.manual_seed(0)
    return LLMCodec.from_llm(LLMCodecConfig(name="tiny-llmcodec", **TINY_CODEC), model, tok).eval()


# ------------------------------------------------------------- vocabularies
def test_vocabulary_selection_picks_whole_words(llm):
    from soundtok.llmcodec.wordlists import english_words, select_vocabularies, subword_vocabulary, word_vocabulary

    _, _, tok = llm
    ids = word_vocabulary(tok, 100)
    pieces = tok.convert_ids_to_tokens(ids)
    assert [p[1:] for p in pieces] == WORDS + ["hello"]
    assert word_vocabulary(tok, 5) == ids[:5]  # a cap keeps the earliest ids
    assert word_vocabulary(tok, 100, min_letters=6) == [i for i, p in zip(ids, pieces) if len(p) > 6]
    allowed = word_vocabulary(tok, 100, allowed={"dog", "rain", "xyz"})
    assert tok.convert_ids_to_tokens(allowed) == ["\u2581dog", "\u2581rain"]
    eng = english_words()
    assert {"dog", "rain", "siren"} <= eng and not {"comp", "an", "Paris"} & eng
    sub = subword_vocabulary(tok, 30)
    assert not set(sub) & set(tok.all_special_ids)
    texts = [tok.decode([i]) for i in sub]
    assert all(any(ch.isalnum() for ch in t) and t.isprintable() for t in texts)
    assert "<unused60>" not in tok.convert_ids_to_tokens(subword_vocabulary(tok, 200))
    assert sub == subword_vocabulary(tok, 30)  # deterministic
    vocabs = select_vocabularies(tok, [4, 10, 10])
    assert vocabs[0] == ids[:4] and vocabs[1] == sub[:10] == vocabs[2]


def test_character_tokenizer_has_no_words(tmp_path):
    from soundtok.llmcodec.wordlists import select_vocabularies

    _, tok = load_llm(tiny_llm(tmp_path / "chars", vocab_size=128), dtype="float32")
    with pytest.raises(ModelError, match="whole-word"):
        select_vocabularies(tok, [8, 8])


# ------------------------------------------------------------ codebooks / shapes
def test_codebooks_are_frozen_llm_rows(llm, codec):
    _, model, _ = llm
    emb = model.get_input_embeddings().weight.detach()
    for k, ids in enumerate(codec.vocabularies):
        cb = codec.rvq.codebook(k)
        assert torch.equal(cb, emb[torch.tensor(ids)].float())
        assert not cb.requires_grad
        assert all(p.data_ptr() != cb.data_ptr() for p in codec.parameters())
    assert codec.cfg.llm == llm_identity(model)


def test_encode_shapes_and_frame_rates(codec):
    assert codec.cfg.frame_rates == [3.125, 12.5, 25.0]
    assert codec.cfg.hop_lengths == [5120, 1280, 640]
    wav = torch.from_numpy(np.stack([synth(1.0, seed=0), synth(1.0, seed=1)]))
    codes = codec.encode(wav)
    assert [tuple(c.shape) for c in codes] == [(2, 4), (2, 13), (2, 25)]
    for c, n in zip(codes, codec.cfg.vocab_sizes):
        assert c.dtype == torch.long and 0 <= int(c.min()) and int(c.max()) < n
    out = codec.decode(codes, num_samples=16000)
    assert out.shape == (2, 16000) and torch.isfinite(out).all()
    header = codec.header()
    assert header.codec["arch"] == "llm-codec" and header.codec["llm"] == codec.cfg.llm
    assert header.extra["vocabularies"] == codec.vocabularies
    item = codec.item("a", wav[0], label="dog")
    header.check_item(item)


def test_training_step_leaves_codebooks_unchanged(codec):
    import copy

    from soundtok.train.llmcodec_trainer import llmcodec_losses

    c = copy.deepcopy(codec).train()
    before = [c.rvq.codebook(k).clone() for k in range(3)]
    params = [p for p in c.parameters() if p.requires_grad]
    w0 = c.inp.weight.detach().clone()
    opt = torch.optim.AdamW(params, lr=1e-2)
    wav = torch.from_numpy(np.stack([synth(0.64, seed=2), synth(0.64, seed=3)]))[:, :10240]
    targets = torch.tensor([[1.0] * 12, [float("nan")] * 12])
    out = llmcodec_losses(c, wav, targets)
    assert {"mel_l1", "commit", "semantic", "stft", "loss"} <= set(out)
    out["loss"].backward()
    assert c.inp.weight.grad is not None and c.semantic.weight.grad is not None
    opt.step()
    assert not torch.equal(c.inp.weight, w0)
    for k in range(3):
        assert torch.equal(c.rvq.codebook(k), before[k])
        assert c.rvq.codebook(k).grad is None


def test_separable_resamplers_are_small_and_keep_lengths(llm):
    from soundtok.llmcodec import LLMCodec, LLMCodecConfig
    from soundtok.llmcodec.quantizer import SeparableDown, SeparableUp

    x = torch.randn(2, 16, 64)
    for s in (4, 8, 32):
        y = SeparableDown(16, s)(x)
        assert y.shape == (2, 16, 64 // s)
        assert SeparableUp(16, s)(y).shape == x.shape
    _, model, tok = llm
    cfg = dict(TINY_CODEC, dim=64)
    sizes = {}
    for kind in ("separable", "conv"):
        c = LLMCodec.from_llm(LLMCodecConfig(resampler=kind, **cfg), model, tok)
        sizes[kind] = sum(p.numel() for n, p in c.named_parameters()
                          if n.startswith(("rvq.down", "rvq.up")))
    # full convs: dim^2 * (2s + 2s+1) per scale; separable: ~2 dim^2 + dim * (4s+1)
    assert sizes["conv"] == sum(64 * 64 * (4 * s + 1) + 2 * 64 for s in (32, 8, 4))
    assert sizes["separable"] < sizes["conv"] / 15


def test_centred_codebooks_and_usage_loss(codec):
    import torch.nn.functional as F

    from soundtok.llmcodec.quantizer import usage_loss

    assert codec.cfg.center_codebooks and codec.rvq.center
    raw = codec.rvq.codebook(1).float()
    cb = codec.rvq.normalized_codebook(1)
    assert torch.allclose(cb, F.normalize(raw - raw.mean(0), dim=-1), atol=1e-6)
    assert torch.allclose(cb.norm(dim=-1), torch.ones(cb.shape[0]), atol=1e-5)
    # codes are the nearest centred rows, and still index the LLM vocabulary
    wav = torch.from_numpy(synth(0.64, seed=5))[None][:, :10240]
    _, h = codec.features(wav)
    e = F.normalize(codec.rvq.proj_in[0](codec.rvq.down[0](h)).transpose(1, 2), dim=-1)
    assert torch.equal(codec.encode(wav)[0], (e @ codec.rvq.normalized_codebook(0).t()).argmax(-1))
    # usage loss: frames spread over many rows score lower than frames on one row
    eye = torch.eye(24)
    spread = usage_loss(eye[None, :24], eye, 0.05)
    collapsed = usage_loss(eye[None, [0] * 24], eye, 0.05)
    assert float(spread) < -0.9 and abs(float(collapsed)) < 0.05
    import copy

    c = copy.deepcopy(codec).train()
    assert codec.cfg.entropy_weight == 0 and "usage" not in c(wav)  # off at weight 0
    c.rvq.entropy_weight = 0.1
    out = c(wav)
    assert float(out["usage"].detach()) < 0 and "usage" not in c.eval()(wav)  # training only


def test_low_dimensional_lookup(llm, codec):
    """``lookup_dim``: nearest rows searched in the rows' top principal directions,
    derived from the frozen LLM rows alone (not stored), the same on every load."""
    import torch.nn.functional as F

    from soundtok.llmcodec import LLMCodec, LLMCodecConfig

    _, model, tok = llm
    torch.manual_seed(0)
    c = LLMCodec.from_llm(LLMCodecConfig(**{**TINY_CODEC, "lookup_dim": 4}), model, tok).eval()
    assert c.rvq.lookup_dim == 4 and c.semantic.in_features == 4
    for k in range(3):
        raw = c.rvq.codebook(k).double()
        x = raw - raw.mean(0)
        u, sv, vh = torch.linalg.svd(x, full_matrices=False)
        look = c.rvq.normalized_codebook(k)
        assert look.shape == (c.cfg.vocab_sizes[k], 4)
        # equal to the normalised projection on the top-4 directions, up to each one's sign
        ref = F.normalize(x @ vh[:4].t(), dim=-1).float()
        assert torch.allclose(look.abs(), ref.abs(), atol=1e-5)
        assert torch.equal(look, c.rvq.lookup_rows(c.rvq.codebook(k)))  # deterministic
    wav = torch.from_numpy(synth(0.64, seed=7))[None][:, :10240]
    codes = c.encode(wav)
    assert [x.shape[-1] for x in codes] == [2, 8, 16]
    c.eval()(wav)  # the forward pass runs in the low-d space


def test_vocoder_taken_by_reference_from_the_builtin_codec(tmp_path, llm, monkeypatch):
    """A frozen vocoder is the built-in codec's: not stored, read back at load time,
    and refused with one line when the built-in codec's file has changed."""
    from safetensors.torch import load_file

    from soundtok.codec import DEFAULT_CODEC_DIR
    from soundtok.llmcodec import LLMCodec, LLMCodecConfig
    from soundtok.registry import load_codec

    _, model, tok = llm
    cfg = LLMCodecConfig(dim=12, enc_layers=1, dec_layers=1, semantic_dim=12, vocab_sizes=[8, 24, 24],
                         semantic="text")
    c = LLMCodec.from_llm(cfg, model, tok)
    c.vocoder_by_reference("default")
    ref = load_codec("default").vocoder.state_dict()
    assert all(torch.equal(v, ref[k].float()) for k, v in c.vocoder.state_dict().items())
    c.save_pretrained(tmp_path / "c")
    state = load_file(str(tmp_path / "c" / "model.safetensors"))
    assert not [k for k in state if k.startswith("vocoder.")]
    saved = json.loads((tmp_path / "c" / "config.json").read_text())
    assert saved["vocoder_from"] == "default" and len(saved["vocoder_sha256"]) == 64
    loaded = LLMCodec.from_pretrained(tmp_path / "c", llm=model)
    assert all(torch.equal(v, ref[k].float()) for k, v in loaded.vocoder.state_dict().items())
    wav = torch.from_numpy(synth(0.7, seed=6))[None]
    assert torch.equal(loaded.decode(c.encode(wav), 11200), c.decode(c.encode(wav), 11200))
    saved["vocoder_sha256"] = "0" * 64
    (tmp_path / "c" / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ModelError, match="takes its vocoder from the built-in codec") as e:
        LLMCodec.from_pretrained(tmp_path / "c", llm=model)
    assert "\n" not in str(e.value)
    assert (DEFAULT_CODEC_DIR / "model.safetensors").is_file()


# ------------------------------------------------------------- save and load
def test_save_load_round_trip_without_embeddings(tmp_path, llm, codec):
    from safetensors.torch import load_file

    from soundtok.llmcodec import LLMCodec

    d, model, _ = llm
    codec.save_pretrained(tmp_path / "c")
    state = load_file(str(tmp_path / "c" / "model.safetensors"))
    hidden, rows = codec.rvq.hidden, model.get_input_embeddings().weight.shape[0]
    emb_shapes = {(n, hidden) for n in codec.cfg.vocab_sizes} | {(rows, hidden)}
    assert not any(tuple(v.shape) in emb_shapes for v in state.values())
    assert not any("codebook" in k for k in state)
    assert [state[f"vocab_{k}"].tolist() for k in range(3)] == codec.vocabularies
    wav = torch.from_numpy(synth(0.7, seed=4))[None]
    for spec in (model, str(d)):
        loaded = LLMCodec.from_pretrained(tmp_path / "c", llm=spec)
        assert loaded.sha256 == codec.sha256 != "untrained"
        assert all(torch.equal(a, b) for a, b in zip(loaded.encode(wav), codec.encode(wav)))
        for k in range(3):
            assert torch.equal(loaded.rvq.codebook(k), codec.rvq.codebook(k))


def test_llm_mismatch_is_refused(tmp_path, codec):
    from soundtok.llmcodec import LLMCodec

    codec.save_pretrained(tmp_path / "c")
    other = _word_llm(tmp_path / "other", vocab_size=170)
    with pytest.raises(ModelError) as e:
        LLMCodec.from_pretrained(tmp_path / "c", llm=str(other))
    msg = str(e.value)
    assert "\n" not in msg and "was built on LLM" in msg
    unloaded = LLMCodec(codec.cfg, codec.vocabularies)
    with pytest.raises(ModelError, match="no codebooks"):
        unloaded.encode(torch.zeros(1, 100))


# ------------------------------------------------------------ text and prompts
def _toy_header(tok, llm_ident):
    ids = {w: tok.convert_tokens_to_ids("\u2581" + w) for w in ("dog", "rain", "bird")}
    vocabs = [[ids["dog"], ids["rain"], ids["bird"]], tok.convert_tokens_to_ids(["a", "b"])]
    return Header(codec={"name": "toy", "sha256": "x" * 64, "arch": "llm-codec", "llm": llm_ident},
                  sample_rate=16000, hop_lengths=[5120, 1280], codebook_sizes=[3, 2],
                  extra={"vocabularies": vocabs})


def test_codes_to_words_and_golden_prompt(llm):
    from soundtok.llmcodec.incontext import build_prompt, prompt_ids, render_prompt
    from soundtok.llmcodec.text import codes_to_parts, codes_to_words

    _, model, tok = llm
    h = _toy_header(tok, llm_identity(model))
    dog = Item("d", 5120, [[0], [1, 0, 1, 0]], label="dog")
    rain = Item("r", 5120, [[1], [0, 1, 0, 1]], label="rain")
    q = Item("q", 10240, [[2, 0], [0] * 8])
    assert codes_to_words(dog, h, tok) == " dog |baba"
    assert codes_to_words(q, h, tok, scales=[0]) == " bird dog"
    demos = [(codes_to_parts(dog, h), "dog"), (codes_to_parts(rain, h), "rain")]
    parts = build_prompt(demos, codes_to_parts(q, h), ["dog", "rain"], instruction=True)
    assert render_prompt(parts, tok) == (
        "Each line is a sound written in words, then its label (dog, rain).\n\n"
        " dog |baba: dog\n"
        " rain |abab: rain\n"
        " bird dog |aaaaaaaa:")
    assert render_prompt(build_prompt(demos[:1], codes_to_parts(q, h, [0]), instruction=False),
                         tok) == " dog |baba: dog\n bird dog:"
    # the default layout is the measured best one: no instruction
    assert build_prompt(demos, codes_to_parts(q, h), ["dog", "rain"]) == build_prompt(
        demos, codes_to_parts(q, h), ["dog", "rain"], instruction=False)
    ids = prompt_ids(parts, tok)
    assert ids[0] == tok.bos_token_id and h.extra["vocabularies"][0][2] in ids
    with pytest.raises(FormatError, match="not an llm-codec"):
        codes_to_words(dog, Header(codec={"name": "x", "sha256": "y"}, sample_rate=16000,
                                   hop_lengths=[5120, 1280], codebook_sizes=[3, 2]), tok)


def test_rank_labels_matches_direct_log_likelihood(llm):
    from soundtok.llmcodec.incontext import label_ids, prompt_ids, rank_labels

    _, model, tok = llm
    prompt = prompt_ids(["Sound:", [110, 120, 130], "\nAnswer:"], tok)
    labels = ["dog", "rain", "bird", "a much longer label"]
    scores = rank_labels(model, tok, prompt, labels, batch_size=3)
    direct = []
    with torch.no_grad():
        for lab in labels:
            c = label_ids(lab, tok)
            logp = torch.log_softmax(model(torch.tensor([prompt + c])).logits[0].float(), -1)
            direct.append(sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(c)))
    assert scores == pytest.approx(direct, abs=1e-4)
    assert int(np.argmax(scores)) == int(np.argmax(direct))


def test_shared_prefix_ranking_equals_separate_ranking(llm):
    """The cached-prefix scorer gives rank_labels' scores; the prompts are longer
    than the tiny LLM's 64-token sliding window, so that path is exercised."""
    from soundtok.llmcodec.incontext import build_prompt, rank_labels, rank_labels_shared

    _, model, tok = llm
    demos = [([[110 + i, 120, 130 + i, 111, 121]], lab) for i, lab in enumerate(["dog", "rain", "bird"] * 4)]
    queries = [[[115, 125, 135]], [[116, 126]], [[117, 110, 120, 130]]]
    prompts = [build_prompt(demos, q, ["dog", "rain", "bird"]) for q in queries]
    labels = ["dog", "rain", "bird", "a much longer label"]
    shared = rank_labels_shared(model, tok, prompts, labels)
    separate = [rank_labels(model, tok, p, labels) for p in prompts]
    from soundtok.llmcodec.incontext import prompt_ids
    assert min(len(prompt_ids(p, tok)) for p in prompts) > 64
    for a, b in zip(shared, separate):
        assert a == pytest.approx(b, abs=2e-4)


def test_match_answer():
    from soundtok.llmcodec.incontext import match_answer

    labels = ["dog", "dog bark", "rain"]
    assert match_answer(" Dog.", labels) == "dog"
    assert match_answer("dog bark loudly", labels) == "dog bark"
    assert match_answer("cat", labels) is None


# ------------------------------------------------------------ episodes and CIs
def test_episode_sampler_is_seeded_n_way_k_shot():
    from soundtok.evaluate.fewshot import sample_episodes

    labels = [f"l{i % 5}" for i in range(20)] + [None, None]
    eps = sample_episodes(labels, ways=3, shots=2, episodes=30, seed=7)
    assert eps == sample_episodes(labels, ways=3, shots=2, episodes=30, seed=7)
    assert eps != sample_episodes(labels, ways=3, shots=2, episodes=30, seed=8)
    for ep in eps:
        assert len(set(ep.labels)) == 3 and len(ep.demos) == 6 and len(ep.queries) == 3
        assert not set(ep.queries) & set(ep.demos) and len(set(ep.demos)) == 6
        assert sorted(labels[i] for i in ep.queries) == sorted(ep.labels)
        for lab in ep.labels:
            assert sum(labels[i] == lab for i in ep.demos) == 2
    assert len({tuple(ep.labels) for ep in eps}) > 1
    with pytest.raises(UsageError, match="needs 3 labels"):
        sample_episodes(labels, ways=3, shots=4, episodes=1)


def test_episode_sampler_with_a_demonstration_pool():
    from soundtok.evaluate.fewshot import sample_episodes

    queries = [f"l{i % 4}" for i in range(8)]
    pool = [f"l{i % 5}" for i in range(15)]
    eps = sample_episodes(queries, ways=3, shots=2, episodes=20, seed=1, demo_labels=pool)
    for ep in eps:
        assert len(ep.demos) == 6 and len(set(ep.demos)) == 6 and len(ep.queries) == 3
        assert sorted(queries[i] for i in ep.queries) == sorted(ep.labels)
        assert sorted(pool[i] for i in ep.demos) == sorted(ep.labels * 2)
        assert "l4" not in ep.labels  # no query item has l4
    with pytest.raises(UsageError, match="needs 3 labels"):
        sample_episodes(queries, ways=3, shots=4, episodes=1, demo_labels=pool)


def test_confidence_intervals():
    from soundtok.evaluate.fewshot import bootstrap_interval, wilson_interval

    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    p, n = 0.5, 400
    lo, hi = wilson_interval(200, 400)
    assert hi - lo == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / n), rel=0.01)
    assert bootstrap_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)
    vals = [0.0, 1.0] * 50
    lo, hi = bootstrap_interval(vals, seed=1)
    assert lo < 0.5 < hi and (lo, hi) == bootstrap_interval(vals, seed=1)
    assert hi - lo == pytest.approx(2 * 1.96 * 0.05, abs=0.03)


def test_run_fewshot_end_to_end(tmp_path, llm, codec):
    from soundtok.evaluate.fewshot import run_fewshot
    from soundtok.llmcodec.incontext import read_labelled_stream

    _, model, tok = llm
    header = codec.header()
    path = tmp_path / "t.jsonl"
    with open_token_writer(path, header) as w:
        for i in range(6):
            wav = torch.from_numpy(synth(0.4, seed=i))
            w.write(codec.item(f"u{i}", wav, label=["dog", "rain", "bird"][i % 3]))
    h, items = read_labelled_stream(str(path))
    res = run_fewshot(model, tok, h, items, ways=2, shots=1, episodes=3, seed=0, repeats=2)
    assert res.judged == 3 * 2 * 2 and 0 <= res.accuracy <= 1 and res.chance == 0.5
    assert res.ci_low <= res.accuracy <= res.ci_high and len(res.per_episode) == 3
    again = run_fewshot(model, tok, h, items, ways=2, shots=1, episodes=3, seed=0, repeats=2)
    assert again.predictions == res.predictions
    gen = run_fewshot(model, tok, h, items, ways=2, shots=0, episodes=1, mode="generate",
                      instruction=False)
    assert gen.judged == 2
    other, _ = load_llm(_word_llm(tmp_path / "o", vocab_size=170), dtype="float32")
    with pytest.raises(ModelError, match="was built on LLM"):
        run_fewshot(other, tok, h, items, ways=2, shots=1, episodes=1)
    assert TokenReader(str(path)).header.codec["arch"] == "llm-codec"


def _write_stream(path, codec, n=6):
    with open_token_writer(path, codec.header()) as w:
        for i in range(n):
            wav = torch.from_numpy(synth(0.4, seed=i))
            w.write(codec.item(f"u{i}", wav, label=["dog", "rain", "bird"][i % 3]))
    return path


def test_cli_evaluate_fewshot(tmp_path, llm, codec):
    from conftest import cli

    d, _, _ = llm
    path = _write_stream(tmp_path / "t.jsonl", codec)
    r = cli("evaluate", "fewshot", path, "--llm", d, "--ways", 2, "--shots", 1, "--episodes", 2,
            "--repeats", 1, "--json", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.decode().strip())
    assert row["ways"] == 2 and row["judged"] == 4 and row["chance"] == 0.5
    assert row["instruction"] is False and 0 <= row["accuracy"] <= 1  # off by default
    # the query stream's code use per scale, as evaluate recon's token statistics give it
    from soundtok.evaluate.tokenstats import stream_stats
    _, stats, _ = stream_stats(str(path))
    assert row["code_use"] == [{"scale": t.codebook, "size": t.size, "used": t.used,
                                "perplexity": round(t.perplexity, 4)} for t in stats]
    pool = _write_stream(tmp_path / "pool.jsonl", codec, n=9)
    r = cli("evaluate", "fewshot", path, "--llm", d, "--ways", 3, "--shots", 2, "--episodes", 2,
            "--demos", pool, "--predictions", tmp_path / "pred.jsonl", "--instruction", "--json",
            "--device", "cpu")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.decode().strip())
    assert row["judged"] == 6 and row["demos"] == str(pool) and row["instruction"] is True
    preds = [json.loads(x) for x in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert len(preds) == 6 and sum(p["correct"] for p in preds) == row["correct"]
    r = cli("evaluate", "fewshot", path, "--llm", d, "--ways", 2, "--episodes", 1, "--device", "cpu")
    assert r.returncode == 0 and b"rows used per scale" in r.stdout, r.stderr
    other = _word_llm(tmp_path / "o", vocab_size=170)
    r = cli("evaluate", "fewshot", path, "--llm", other, "--ways", 2, "--device", "cpu")
    assert r.returncode == 1 and b"was built on LLM" in r.stderr
    assert len(r.stderr.decode().strip().splitlines()) == 1


def test_train_two_steps_and_resume(tmp_path, llm):
    import soundfile as sf

    from soundtok.llmcodec import LLMCodec
    from soundtok.train.llmcodec_trainer import TrainLLMCodecOptions, train_llm_codec

    d, model, tok = llm
    rows = []
    for i, lab in enumerate(["dog", "rain", "dog"]):
        sf.write(tmp_path / f"c{i}.wav", synth(0.5, seed=i), 16000)
        rows.append(json.dumps({"path": str(tmp_path / f"c{i}.wav"), "label": lab}))
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    cfg = {**TINY_CODEC, "name": "tiny-train"}

    def embed(labels):
        return torch.randn(len(labels), 12, generator=torch.Generator().manual_seed(0))

    opts = TrainLLMCodecOptions(train=[str(tmp_path / "train.jsonl")], out=str(tmp_path / "run"),
                                steps=2, batch=2, crop_seconds=0.32, save_every=1, log_every=1,
                                codec_config=cfg, vocoder_init=None)
    final = train_llm_codec(opts, embedder=embed, llm=(model, tok))
    codec = LLMCodec.from_pretrained(final, llm=model)
    emb = model.get_input_embeddings().weight.detach()
    assert torch.equal(codec.rvq.codebook(0), emb[torch.tensor(codec.vocabularies[0])])
    metrics = (tmp_path / "run" / "metrics.csv").read_text()
    assert "semantic" in metrics and "mel_l1" in metrics
    opts.steps, opts.resume = 3, True
    train_llm_codec(opts, embedder=embed, llm=(model, tok))
    assert "resuming from ckpt-llmcodec-0000002" in (tmp_path / "run" / "train.log").read_text()


def test_cli_train_codec_arch_llm_codec(tmp_path, llm):
    import soundfile as sf
    from conftest import cli

    from soundtok.llmcodec import LLMCodec

    d, model, _ = llm
    sf.write(tmp_path / "a.wav", synth(0.5, seed=9), 16000)
    cfg = json.dumps({**TINY_CODEC, "name": "tiny-cli"})
    r = cli("train-codec", tmp_path / "a.wav", "-o", tmp_path / "run", "--arch", "llm-codec",
            "--llm", d, "--steps", 1, "--batch", 1, "--config", cfg, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    final = r.stdout.decode().strip()
    assert LLMCodec.from_pretrained(final, llm=model).cfg.name == "tiny-cli"
    r = cli("train-codec", tmp_path / "a.wav", "-o", tmp_path / "x", "--llm", d)
    assert r.returncode == 2 and b"--arch llm-codec" in r.stderr


# ------------------------------------------------ tokenize / detokenize
def test_encode_long_matches_whole_clip(codec):
    wav = torch.from_numpy(synth(3.3, seed=4))
    whole = codec.encode(wav[None])
    long = codec.encode_long(wav, chunk_seconds=1.0, context_hops=2)
    assert [c.shape for c in long] == [c.shape for c in whole]
    agree = sum(int((a == b).sum()) for a, b in zip(long, whole)) / sum(c.numel() for c in whole)
    assert agree >= 0.95, agree
    pieces = list(codec.iter_decode_long(long, num_samples=wav.shape[0], chunk_seconds=1.0))
    assert sum(p.shape[0] for p in pieces) == wav.shape[0]
    assert all(torch.isfinite(p).all() for p in pieces)


@pytest.mark.parametrize("block", [777, 5120, 40000])
def test_streamed_long_input_equals_encode_long(codec, block):
    """tokenize streams long inputs through LLMStreamEncoder: whatever the blocks, the
    codes of the whole signal at once (encode_long)."""
    from soundtok.llmcodec.coding import LLMStreamEncoder

    wav = synth(3.3, seed=8)
    enc = LLMStreamEncoder(codec, chunk_seconds=1.0)
    for i in range(0, wav.shape[0], block):
        enc.push(wav[i:i + block])
        assert enc.buf.shape[0] <= 2 * (16384 + 2 * 5120) + block  # about one chunk held
    codes, n = enc.finish()
    ref = codec.encode_long(torch.from_numpy(wav), chunk_seconds=1.0)
    assert n == wav.shape[0] and codes == [c[0].tolist() for c in ref]


def test_cli_tokenize_long_input_streams_with_llm_codec(tmp_path, llm, codec, monkeypatch):
    import soundfile as sf

    from soundtok import api, pipeline
    from soundtok.llmcodec.coding import LLMStreamEncoder

    monkeypatch.setattr(pipeline, "WHOLE_MAX_SECONDS", 1.0)  # 3.3 s counts as long
    pushed = []
    real_push = LLMStreamEncoder.push
    monkeypatch.setattr(LLMStreamEncoder, "push",
                        lambda self, block: (pushed.append(len(block)), real_push(self, block)))
    wav = synth(3.3, seed=9)
    sf.write(tmp_path / "long.wav", wav, 16000)
    api.tokenize([str(tmp_path / "long.wav")], str(tmp_path / "t.jsonl"), codec=codec,
                 chunk_seconds=1.0)
    with TokenReader(str(tmp_path / "t.jsonl")) as r:
        (item,) = list(r)
    assert sum(pushed) == wav.shape[0] and len(pushed) >= 1  # it went through the stream encoder
    ref = codec.encode_long(torch.from_numpy(sf.read(tmp_path / "long.wav", dtype="float32")[0]),
                            chunk_seconds=1.0)
    assert item.codes == [c[0].tolist() for c in ref]


def test_cli_tokenize_as_text_and_round_trip(tmp_path, llm, codec):
    import soundfile as sf
    from conftest import cli

    from soundtok.llmcodec.text import codes_to_words

    d, _, tok = llm
    codec.save_pretrained(tmp_path / "lc")
    sf.write(tmp_path / "a.wav", synth(1.0, seed=1), 16000)
    r = cli("tokenize", tmp_path / "a.wav", "--codec", tmp_path / "lc", "--llm", d, "-o", tmp_path / "a.tok")
    assert r.returncode == 0, r.stderr
    with TokenReader(str(tmp_path / "a.tok")) as reader:
        header, items = reader.header, list(reader)
    assert header.codec["arch"] == "llm-codec" and header.hop_lengths == codec.cfg.hop_lengths
    assert [len(c) for c in items[0].codes] == [math.ceil(16000 / h) for h in codec.cfg.hop_lengths]
    r = cli("tokenize", tmp_path / "a.wav", "--codec", tmp_path / "lc", "--llm", d, "--as-text")
    assert r.returncode == 0, r.stderr
    ident, words = r.stdout.decode().rstrip("\n").split("\t")
    assert ident == "a" and words == " ".join(codes_to_words(items[0], header, tok).split())
    assert words.split(" |")[0].strip().split()[0] in WORDS  # scale 0 is whole words
    r = cli("detokenize", tmp_path / "a.tok", tmp_path / "a.out.wav", "--codec", tmp_path / "lc", "--llm", d)
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(tmp_path / "a.out.wav")
    assert sr == 16000 and y.shape == (16000,)
    r = cli("tokenize", tmp_path / "a.wav", "--as-text")
    assert r.returncode == 2 and b"--as-text needs an llm-codec" in r.stderr
    r = cli("detokenize", tmp_path / "a.tok", tmp_path / "b.wav")  # the built-in codec is another one
    assert r.returncode == 1 and (b"codec mismatch" in r.stderr or b"llm-codec" in r.stderr), r.stderr
    assert len(r.stderr.decode().strip().splitlines()) == 1
    assert not (tmp_path / "b.wav").exists()


def test_cli_evaluate_recon_with_llm_codec(tmp_path, llm, codec):
    """evaluate recon --codec takes an llm-codec as tokenize does (--llm, its one decoder),
    and its codes are the ones tokenize writes."""
    import soundfile as sf
    from conftest import cli

    d, _, _ = llm
    codec.save_pretrained(tmp_path / "lc")
    sf.write(tmp_path / "a.wav", synth(1.0, seed=1), 16000)
    r = cli("evaluate", "recon", tmp_path / "a.wav", "--codec", tmp_path / "lc", "--llm", d,
            "--decoders", "flow,mse", "--json", "--no-dnsmos")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.decode().splitlines()]
    (system,) = [x for x in rows if x["type"] == "system"]
    assert system["system"] == "soundtok-default" and "deterministic" in system["description"]
    bits = sum(math.ceil(16000 / h) * math.log2(v) for h, v in zip(codec.cfg.hop_lengths,
                                                                    codec.cfg.vocab_sizes))
    assert system["bitrate_bps"] == pytest.approx(bits, rel=1e-6)
    assert [t["size"] for t in system["token_stats"]] == codec.cfg.vocab_sizes
    r = cli("evaluate", "recon", tmp_path / "a.wav", "--codec", tmp_path / "lc", "--json")
    assert r.returncode == 2 and b"unknown LLM 'words'" in r.stderr  # its LLM is not a built-in


def test_cli_caption_few_shot(tmp_path, llm, codec):
    from conftest import cli

    from soundtok.llmcodec.incontext import answer_stream, read_labelled_stream

    d, model, tok = llm
    demos = _write_stream(tmp_path / "demos.jsonl", codec, n=3)
    queries = _write_stream(tmp_path / "q.jsonl", codec, n=4)
    r = cli("caption", queries, "--shots", demos, "--labels", "dog,rain,bird", "--llm", d, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [x["id"] for x in rows] == ["u0", "u1", "u2", "u3"]
    for x in rows:  # the answer is the best-scoring label
        assert x["caption"] == max(x["scores"], key=x["scores"].get) and set(x["scores"]) == {"dog", "rain", "bird"}
    # the library gives the same answers, one query at a time (no shared-prefix batching)
    h, qs = read_labelled_stream(str(queries))
    _, ds = read_labelled_stream(str(demos))
    labs = ["dog", "rain", "bird"]
    one = list(answer_stream(model, tok, h, qs, ds, labels=labs, batch_size=1))
    assert [a for _, a, _ in one] == [x["caption"] for x in rows]
    # the CLI's default prompt is the one without the instruction; --instruction adds it
    with_instr = list(answer_stream(model, tok, h, qs, ds, labels=labs, batch_size=1, instruction=True))
    for x, (_, _, sc), (_, _, sc_i) in zip(rows, one, with_instr):
        assert x["scores"] == pytest.approx(sc, abs=5e-3) and x["scores"] != pytest.approx(sc_i, abs=5e-3)
    r = cli("caption", queries, "--shots", demos, "--labels", "dog,rain,bird", "--llm", d, "--instruction",
            "--device", "cpu")
    assert r.returncode == 0, r.stderr
    for x, (_, _, sc_i) in zip((json.loads(x) for x in r.stdout.decode().splitlines()), with_instr):
        assert x["scores"] == pytest.approx(sc_i, abs=5e-3)
    r = cli("caption", queries, "--shots", demos, "--llm", d, "--format", "text", "--max-new-tokens", 3,
            "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.decode().splitlines()) == 4
    r = cli("caption", queries, "--shots", demos, "--beams", 2, "--llm", d)
    assert r.returncode == 2 and b"--shots" in r.stderr
    r = cli("caption", queries, "--labels", "dog")
    assert r.returncode == 2 and b"need --shots" in r.stderr


# ------------------------------------------------ the shipped LLM-Codec with the real Gemma
@pytest.mark.skipif(default_llm_codec_missing() is not None, reason=str(default_llm_codec_missing()))
def test_default_llm_codec_with_real_gemma(tmp_path):
    """Shipped LLM-Codec + Gemma 3 270M: a clip becomes Gemma's own English words, the
    stream round-trips to audio, and few-shot captioning answers with a given label."""
    import soundfile as sf
    from conftest import SHARED_DATA, cli
    from safetensors import safe_open

    from soundtok.llmcodec import DEFAULT_LLM_CODEC_DIR
    from soundtok.llmcodec.wordlists import english_words

    weights = DEFAULT_LLM_CODEC_DIR / "model.safetensors"
    assert weights.stat().st_size <= 20e6  # the package's size budget for it
    with safe_open(str(weights), "pt") as f:  # no LLM rows stored, nor the built-in vocoder
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    assert not [k for k, sh in shapes.items() if "codebook" in k or (len(sh) == 2 and sh[0] >= 4096)]
    assert not [k for k in shapes if k.startswith("vocoder.")]
    esc = SHARED_DATA / "esc10"
    clips = sorted(esc.glob("*/*.ogg"))[:1] + sorted(esc.glob("*Rain*/*.ogg"))[:1] if esc.is_dir() else []
    if len(clips) < 2:
        clips = []
        for i in range(2):
            clips.append(tmp_path / f"s{i}.wav")
            sf.write(clips[-1], synth(2.0, seed=i), 16000)
    r = cli("tokenize", *clips, "--codec", "llm-codec", "-o", tmp_path / "t.jsonl", "--threads", "2")
    assert r.returncode == 0, r.stderr
    r = cli("tokenize", clips[0], "--codec", "llm-codec", "--as-text", "--threads", "2")
    assert r.returncode == 0, r.stderr
    words = r.stdout.decode().split("\t", 1)[1].split(" |")[0].split()
    assert words and set(words) <= english_words()
    with TokenReader(str(tmp_path / "t.jsonl")) as reader:
        header, items = reader.header, list(reader)
    assert header.codec["llm"]["name"] == "gemma3-270m" and header.hop_lengths == [5120, 1280, 640]
    demos = tmp_path / "demos.jsonl"
    with open_token_writer(demos, header) as w:
        for it, lab in zip(items, ["dog bark", "rain"]):
            w.write(Item(it.id, it.num_samples, it.codes, label=lab))
    r = cli("caption", tmp_path / "t.jsonl", "--shots", demos, "--labels", "dog bark,rain", "--threads", "2")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert len(rows) == 2 and all(x["caption"] in ("dog bark", "rain") for x in rows)
    r = cli("detokenize", tmp_path / "t.jsonl", f"{tmp_path / 'out'}/", "--threads", "2")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "out").glob("*.wav"))) == 2
