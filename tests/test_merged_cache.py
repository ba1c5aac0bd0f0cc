"""The merged-model cache behind fast caption/generate loading (soundtok.audiolm.merged):
one entry per adapter and dtype, the same outputs as loading through peft, rebuilt when
damaged, a new entry when the adapter changes, and the tokenizer loading meanwhile."""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from test_caption_generate import codec_header_of, setup  # noqa: E402,F401  (the tiny adapter)

from soundtok.audiolm import merged  # noqa: E402
from soundtok.audiolm.adapter import load_adapter  # noqa: E402
from soundtok.audiolm.tasks import CaptionOptions, caption_stream  # noqa: E402


def entries():
    folder = merged.cache_folder()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def captions(adapter, stream, **kw):
    alm, tok, _ = load_adapter(adapter, device="cpu", **kw)
    with torch.inference_mode():
        return [(c.text, c.score) for _, c in caption_stream(alm, tok, str(stream), CaptionOptions(max_new_tokens=5))]


def test_entry_gives_the_same_captions_as_peft(setup):  # noqa: F811
    adapter, stream, _ = setup
    cached = captions(adapter, stream)  # from the entry the session fixture wrote
    assert merged.read_entry(entry_of(adapter, setup[2])) is not None
    through_peft = captions(adapter, stream, merge=False, dtype="float32")
    assert cached == through_peft
    alm, tok, _ = load_adapter(adapter, device="cpu")
    assert isinstance(tok, merged.PendingTokenizer) and alm.dtype == torch.float32
    assert tok.decode(tok("a b c", add_special_tokens=False).input_ids) == tok.tokenizer.decode(
        tok.tokenizer("a b c", add_special_tokens=False).input_ids)


def test_captioning_from_an_entry_needs_neither_transformers_nor_the_merge_rules(setup):  # noqa: F811
    """A Gemma 3 entry loads through soundtok.llm.gemma3, its tokenizer by tokenizers alone,
    and captioning reads only the decoder file (the prompt wording's ids are in the entry)."""
    import subprocess
    import sys

    adapter, stream, llm = setup
    entry = entry_of(adapter, llm)
    meta = merged.read_entry(entry)
    assert meta["fast_tokenizer"] and meta["decoder"] and (entry / merged.DECODER_FILE).is_file()
    code = (
        "import sys, torch\n"
        "from soundtok.audiolm.adapter import load_adapter\n"
        "from soundtok.audiolm.tasks import CaptionOptions, caption_stream\n"
        f"alm, tok, _ = load_adapter({str(adapter)!r}, device='cpu', decode_only=True)\n"
        f"caps = [c.text for _, c in caption_stream(alm, tok, {str(stream)!r}, CaptionOptions(max_new_tokens=5))]\n"
        "assert type(alm.lm).__module__ == 'soundtok.llm.gemma3', type(alm.lm)\n"
        "assert tok.tokenizer._full is None, 'the full tokenizer.json was read'\n"
        "print(len(caps), 'transformers' in sys.modules, 'peft' in sys.modules)\n")
    from conftest import ROOT

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["12", "False", "False"]


def entry_of(adapter, llm):
    from soundtok.audiolm.adapter import read_meta
    from soundtok.llm.loader import resolve_llm

    return merged.entry_dir(adapter, read_meta(adapter), resolve_llm(str(llm)), torch.float32)


def test_damaged_entry_is_rebuilt(setup, tmp_path):  # noqa: F811
    adapter, stream, llm = setup
    want = captions(adapter, stream)
    entry = entry_of(adapter, llm)
    assert merged.read_entry(entry) is not None
    (entry / "model.safetensors").write_bytes(b"not safetensors")
    notes = []
    alm, tok, _ = load_adapter(adapter, device="cpu", progress=notes.append)
    assert any("unreadable" in n and "rebuilding" in n for n in notes), notes
    assert merged.read_entry(entry) is not None and (entry / "model.safetensors").stat().st_size > 100
    assert captions(adapter, stream) == want
    (entry / merged.META_FILE).unlink()  # incomplete: rebuilt without complaint
    notes = []
    load_adapter(adapter, device="cpu", progress=notes.append)
    assert notes == [] and merged.read_entry(entry) is not None


def test_changed_adapter_gets_its_own_entry(setup, tmp_path):  # noqa: F811
    adapter, stream, _ = setup
    copy = tmp_path / "copy"
    shutil.copytree(adapter, copy)
    cfg = json.loads((copy / "adapter_config.json").read_text())
    cfg["lora_dropout"] = 0.25  # not used at inference: the same weights, yet another adapter file
    (copy / "adapter_config.json").write_text(json.dumps(cfg))
    before = set(entries())
    captions(copy, stream)
    assert len(set(entries()) - before) == 1
    captions(copy, stream)
    assert len(set(entries()) - before) == 1  # the second load reuses it


def test_unwritable_cache_costs_only_speed(setup, tmp_path, monkeypatch):  # noqa: F811
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    adapter, stream, _ = setup
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    monkeypatch.setattr(merged, "cache_folder", lambda: ro / "adapters")
    notes = []
    load_adapter(adapter, device="cpu", progress=notes.append)
    assert any("could not write" in n for n in notes)


def test_pending_tokenizer_answers_known_values_at_once():
    gate = threading.Event()

    class Real:
        eos_token_id = 7

        def __call__(self, text, add_special_tokens=True):
            return type("E", (), {"input_ids": [len(text)]})()

        def decode(self, ids, skip_special_tokens=False):
            return "x" * len(ids)

    def load():
        gate.wait(5)
        return Real()

    tok = merged.PendingTokenizer(load, {"bos_token_id": 2, "eos_token_id": 1, "texts": {"hi: ": [5, 6]}})
    assert tok.bos_token_id == 2 and tok.eos_token_id == 1  # recorded values, before loading ends
    assert tok("hi: ", add_special_tokens=False).input_ids == [5, 6]
    assert not tok._future.done()
    gate.set()
    assert tok("other", add_special_tokens=False).input_ids == [5]  # waits for the real one
    assert tok.decode([1, 2]) == "xx"

    def broken():
        raise OSError("disk gone")

    bad = merged.PendingTokenizer(broken, {})
    with pytest.raises(OSError, match="disk gone"):
        bad.decode([1])


def test_fast_tokenizer_check_refuses_a_disagreeing_tokenizer(setup, tmp_path):  # noqa: F811
    _, _, llm = setup
    from soundtok.llm.loader import load_tokenizer_dir

    real = load_tokenizer_dir(llm)
    assert merged.fast_tokenizer_agrees(real, llm, ["Describe this sound: "])

    class Shifted:
        def __init__(self, t):
            self.t = t
            self.bos_token_id, self.eos_token_id, self.pad_token_id = t.bos_token_id, t.eos_token_id, t.pad_token_id

        def __call__(self, text, add_special_tokens=True):
            ids = list(self.t(text, add_special_tokens=add_special_tokens).input_ids)
            return type("E", (), {"input_ids": ids + [0] if "sound" in text else ids})()

        def decode(self, ids, **kw):
            return self.t.decode(ids, **kw)

    assert not merged.fast_tokenizer_agrees(Shifted(real), llm, ["Describe this sound: "])


def test_the_header_is_read_while_a_cached_model_loads(setup, monkeypatch):  # noqa: F811
    """With the merged model cached, open_and_load starts loading before the stream's header
    has arrived (in a pipe it comes with tokenize's first item)."""
    from soundtok.audiolm import adapter as adapter_mod
    from soundtok.audiolm.tasks import open_and_load

    adapter, stream, _ = setup
    loading = threading.Event()
    real = adapter_mod.load_adapter

    def load(*a, **kw):
        loading.set()
        return real(*a, **kw)

    monkeypatch.setattr(adapter_mod, "load_adapter", load)
    r, w = os.pipe()

    def writer():  # the header only once the load has begun: a sequential reader would wait forever
        if loading.wait(60):
            os.write(w, stream.read_bytes())
        os.close(w)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    with os.fdopen(r, "rb") as f:
        reader, (alm, tok, _) = open_and_load(f, adapter, device="cpu")
        with torch.inference_mode():
            caps = [c.text for _, c in caption_stream(alm, tok, reader, CaptionOptions(max_new_tokens=3))]
    t.join(5)
    assert loading.is_set() and len(caps) == 12


def test_an_uncached_adapter_checks_the_stream_before_building(setup, tmp_path):  # noqa: F811
    """A stream of another codec fails before a merged model is built and written."""
    from conftest import cli
    from test_llm_finetune import tiny_header, write_stream

    adapter, _, _ = setup
    copy = tmp_path / "copy"
    shutil.copytree(adapter, copy)
    cfg = json.loads((copy / "adapter_config.json").read_text())
    cfg["lora_dropout"] = 0.3  # another adapter file: another entry, not built yet
    (copy / "adapter_config.json").write_text(json.dumps(cfg))
    other = write_stream(tmp_path / "other.tok.jsonl", tiny_header(sha="cd" * 32), n=2)
    before = set(entries())
    r = cli("caption", other, "--adapter", copy)
    assert r.returncode == 1 and "codec mismatch" in r.stderr.decode()
    assert set(entries()) == before
