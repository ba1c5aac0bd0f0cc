"""finetune-llm: loss masking, 2-step training, resume, adapter round trip, DDP (gloo).

Everything runs on a tiny random Gemma3-style LLM (``tiny_llm``) and token
streams of a tiny random codec; seconds per test on CPU.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from conftest import ROOT, cli  # noqa: E402

from soundtok.audiolm.adapter import load_adapter, new_audio_lm, save_adapter  # noqa: E402
from soundtok.audiolm.data import collate  # noqa: E402
from soundtok.audiolm.prompts import Example, PromptBuilder  # noqa: E402
from soundtok.audiolm.vocabulary import AudioVocab  # noqa: E402
from soundtok.llm import load_llm, tiny_llm  # noqa: E402
from soundtok.tokens import Header, Item, open_token_writer  # noqa: E402

WORDS = ["zero", "one", "two", "three"]
TINY_LORA = ["--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0"]


def tiny_header(sha: str = "ab" * 32, size: int = 32) -> Header:
    return Header(codec={"name": "tiny-test", "sha256": sha}, sample_rate=16000, hop_lengths=[640],
                  codebook_sizes=[size])


def write_stream(path: Path, header: Header, n: int = 24, seed: int = 0, text: bool = True) -> Path:
    """Items whose codes depend on a 'digit' (so there is something to learn)."""
    rng = random.Random(seed)
    size = header.codebook_sizes[0]
    with open_token_writer(path, header) as w:
        for i in range(n):
            d = i % len(WORDS)
            frames = rng.randint(3, 8)
            codes = [(d * (size // 4) + rng.randint(0, 3)) % size for _ in range(frames)]
            w.write(Item(id=f"u{i}", num_samples=640 * frames, codes=[codes],
                         text=f"someone says {WORDS[d]}" if text else None,
                         label=WORDS[d] if text else None,
                         meta={"captions": [f"someone says {WORDS[d]}", f"the word {WORDS[d]}"]} if text else {}))
    return path


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory) -> Path:
    return tiny_llm(tmp_path_factory.mktemp("llm") / "tiny", vocab_size=128)


@pytest.fixture(scope="session")
def train_stream(tmp_path_factory) -> Path:
    return write_stream(tmp_path_factory.mktemp("data") / "train.tok.jsonl", tiny_header())


def finetune(train: Path, out: Path, llm: Path, *extra) -> subprocess.CompletedProcess:
    return cli("finetune-llm", train, "-o", out, "--llm", llm, "--batch-size", "4", "--warmup", "0",
               "--lr", "1e-2", "--log-every", "1", "--threads", "1", *TINY_LORA, *extra)


# --------------------------------------------------------------------------- loss mask


def test_collate_targets_cover_exactly_the_response():
    examples = [Example([2, 10, 11, 12], [20, 21, 1]), Example([2, 13], [22, 1])]
    ids, mask, targets = collate(examples, pad_id=0)
    assert ids.shape == (2, 6)
    assert ids[0].tolist() == [2, 10, 11, 12, 20, 21]
    assert mask[1].tolist() == [1, 1, 1, 0, 0, 0]
    # position t predicts token t+1; only predictions of response tokens count
    assert targets[0].tolist() == [-100, -100, -100, 20, 21, 1]
    assert targets[1].tolist() == [-100, 22, 1, -100, -100, -100]
    for b, e in enumerate(examples):
        assert targets[b][targets[b] >= 0].tolist() == e.response


def test_loss_is_response_only_and_matches_full_logits(tiny_llm_dir):
    """The gathered two-head loss equals cross-entropy over full logits at response positions."""
    model, tok = load_llm(tiny_llm_dir, dtype="float32")
    vocab = AudioVocab(tiny_header(), 128)
    alm = new_audio_lm(model, tok, vocab, llm_spec=str(tiny_llm_dir), lora={"r": 4, "alpha": 8, "dropout": 0})
    with torch.no_grad():
        alm.audio_embed.normal_(0, 1)
    builder = PromptBuilder(tok, vocab)
    item = Item(id="x", num_samples=640 * 5, codes=[[1, 2, 3, 4, 5]])
    audio = vocab.item_ids(item)
    examples = [Example(builder.caption_prompt(audio), builder.caption_response("hi there"), "caption"),
                Example(builder.generate_prompt("say hi"), builder.generate_response(audio), "generate")]
    ids, mask, targets = collate(examples, tok.pad_token_id)
    alm.eval()
    with torch.no_grad():
        loss = alm(ids, mask, targets)
        h, _ = alm.hidden(ids, mask)
        expected, count = 0.0, 0
        for b in range(len(examples)):
            for t in range(ids.shape[1]):
                y = int(targets[b, t])
                if y < 0:
                    continue
                count += 1
                if y >= vocab.base_size:
                    logp = torch.log_softmax(alm.audio_logits(h[b, t]), -1)[y - vocab.base_size]
                else:
                    logp = torch.log_softmax(alm.text_logits(h[b, t]), -1)[y]
                expected -= float(logp)
        # changing a prompt token's target to "ignore" changes nothing; the response count is exact
        assert count == sum(len(e.response) for e in examples)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_examples_per_task_and_meta_tasks(tiny_llm_dir, tmp_path):
    from soundtok.audiolm.data import load_records, make_examples

    _, tok = load_llm(tiny_llm_dir, dtype="float32")
    vocab = AudioVocab(tiny_header(), 128)
    builder = PromptBuilder(tok, vocab)
    path = tmp_path / "s.tok.jsonl"
    with open_token_writer(path, tiny_header()) as w:
        w.write(Item(id="a", num_samples=640, codes=[[1]], text="one"))
        w.write(Item(id="b", num_samples=640, codes=[[2]], text="two", meta={"tasks": ["caption"]}))
        w.write(Item(id="c", num_samples=640, codes=[[3]], label="three"))
    records, skipped = load_records(path, builder, "stream")
    assert skipped == 0 and [r.captions for r in records] == [["one"], ["two"], ["three"]]
    rng = random.Random(0)
    count = {t: [e.task for e in make_examples(records, t, builder, rng)] for t in ("caption", "generate", "mixed")}
    assert count["caption"] == ["caption"] * 3
    assert count["generate"] == ["generate"] * 2
    assert sorted(count["mixed"]) == ["caption"] * 3 + ["generate"] * 2
    gen = make_examples(records[:1], "generate", builder, rng)[0]
    assert gen.prompt[-1] == vocab.begin_id and gen.response == [vocab.code_id(0, 1), vocab.end_id]


# --------------------------------------------------------------------------- training


def test_finetune_two_steps_writes_a_peft_adapter(train_stream, tiny_llm_dir, tmp_path):
    out = tmp_path / "run"
    r = finetune(train_stream, out, tiny_llm_dir, "--max-steps", "2", "--task", "mixed",
                 "--val", train_stream)
    assert r.returncode == 0, r.stderr
    final = Path(r.stdout.decode().strip())
    assert final == out / "final"
    names = {p.name for p in final.iterdir()}
    assert names == {"adapter_config.json", "adapter_model.safetensors", "audio_embeddings.safetensors",
                     "soundtok-adapter.json"}
    config = json.loads((final / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["lora_alpha"] == 8
    meta = json.loads((final / "soundtok-adapter.json").read_text())
    assert meta["codec"]["header"]["codec"]["name"] == "tiny-test"
    assert meta["codec"]["tokens"][:3] == ["<audio>", "</audio>", "<a0_0>"]
    assert len(meta["codec"]["tokens"]) == 2 + 32
    assert meta["llm"]["name"] == "tiny" and len(meta["llm"]["sha256"]) == 64
    assert meta["training"]["steps"] == 2 and meta["training"]["task"] == "mixed"
    rows = _metrics(out)
    losses = [float(r["value"]) for r in rows if (r["split"], r["metric"]) == ("train", "loss")]
    assert len(losses) == 2 and all(x == x and x > 0 for x in losses)
    assert {"loss_generate", "loss_caption"} <= {r["metric"] for r in rows if r["split"] == "val"}
    assert {r["stage"] for r in rows} == {"llm"}
    assert not list(out.glob("*.tmp*")) and not list(out.glob(".*"))


def test_training_reduces_loss(train_stream, tiny_llm_dir, tmp_path):
    out = tmp_path / "run"
    r = finetune(train_stream, out, tiny_llm_dir, "--max-steps", "12", "--task", "caption")
    assert r.returncode == 0, r.stderr
    losses = [float(r["value"]) for r in _metrics(out) if (r["split"], r["metric"]) == ("train", "loss")]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def _metrics(out: Path) -> list[dict]:
    import csv

    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _tensors(directory: Path) -> dict:
    from safetensors.torch import load_file

    return {**load_file(str(directory / "adapter_model.safetensors")),
            **{f"audio.{k}": v for k, v in load_file(str(directory / "audio_embeddings.safetensors")).items()}}


def test_resume_continues_exactly(train_stream, tiny_llm_dir, tmp_path):
    straight = tmp_path / "straight"
    assert finetune(train_stream, straight, tiny_llm_dir, "--max-steps", "4", "--task", "mixed").returncode == 0
    split = tmp_path / "split"
    r = finetune(train_stream, split, tiny_llm_dir, "--max-steps", "4", "--task", "mixed", "--save-every", "2")
    assert r.returncode == 0, r.stderr
    # Simulate a kill after the step-2 checkpoint: later state is gone.
    shutil.rmtree(split / "ckpt-0000004")
    shutil.rmtree(split / "final")
    (split / "latest.json").write_text(json.dumps({"checkpoint": "ckpt-0000002"}))
    # Without --resume an existing run is refused ...
    r = finetune(train_stream, split, tiny_llm_dir, "--max-steps", "4", "--task", "mixed")
    assert r.returncode == 2 and b"--resume" in r.stderr
    # ... changing the task on resume is refused ...
    r = finetune(train_stream, split, tiny_llm_dir, "--max-steps", "4", "--task", "caption", "--resume")
    assert r.returncode == 2 and b"--task" in r.stderr
    # ... and a resumed run ends where an uninterrupted one does.
    r = finetune(train_stream, split, tiny_llm_dir, "--max-steps", "4", "--task", "mixed", "--resume",
                 "--save-every", "2", "-v")
    assert r.returncode == 0, r.stderr
    assert b"resuming from ckpt-0000002" in r.stderr
    a, b = _tensors(straight / "final"), _tensors(split / "final")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert json.loads((split / "ckpt-0000004" / "state.json").read_text())["step"] == 4


def test_adapter_round_trip_gives_identical_logits(train_stream, tiny_llm_dir, tmp_path):
    model, tok = load_llm(tiny_llm_dir, dtype="float32")
    vocab = AudioVocab(tiny_header(), 128)
    alm = new_audio_lm(model, tok, vocab, llm_spec=str(tiny_llm_dir), lora={"r": 4, "alpha": 8, "dropout": 0})
    torch.manual_seed(0)
    with torch.no_grad():  # as if trained: non-zero LoRA B matrices and audio rows
        for _name, p in alm.named_parameters():
            if p.requires_grad:
                p.normal_(0, 0.2)
    alm.eval()
    save_adapter(alm, tmp_path / "adapter")
    loaded, _, meta = load_adapter(tmp_path / "adapter", dtype="float32", merge=False)
    ids = torch.tensor([[2, 40, 41, 128, 140, 133, 129, 10], [2, 50, 128, 131, 150, 160, 129, 11]])
    with torch.no_grad():
        h1, _ = alm.hidden(ids)
        h2, _ = loaded.hidden(ids)
        assert torch.equal(h1, h2)
        assert torch.equal(alm.text_logits(h1), loaded.text_logits(h2))
        assert torch.equal(alm.audio_logits(h1), loaded.audio_logits(h2))
    merged, _, _ = load_adapter(tmp_path / "adapter", dtype="float32", merge=True)
    with torch.no_grad():
        h3, _ = merged.hidden(ids)
    torch.testing.assert_close(h3, h1, rtol=1e-4, atol=1e-4)
    # bfloat16 storage (half the size) stays close
    save_adapter(alm, tmp_path / "bf16", dtype=torch.bfloat16)
    assert {v.dtype for v in _tensors(tmp_path / "bf16").values()} == {torch.bfloat16}
    half, _, _ = load_adapter(tmp_path / "bf16", dtype="float32", merge=False)
    with torch.no_grad():
        err = (half.hidden(ids)[0] - h1).abs().mean() / h1.abs().mean()
    assert err < 0.02


def test_init_adapter_continues_from_an_adapter(train_stream, tiny_llm_dir, tmp_path):
    first = tmp_path / "first"
    assert finetune(train_stream, first, tiny_llm_dir, "--max-steps", "2").returncode == 0
    second = tmp_path / "second"
    r = finetune(train_stream, second, tiny_llm_dir, "--max-steps", "1", "--lr", "1e-12", "--embedding-lr",
                 "1e-12", "--init-adapter", first / "final")
    assert r.returncode == 0, r.stderr
    a, b = _tensors(first / "final"), _tensors(second / "final")
    for k in a:  # a negligible learning rate: the weights are those of the first adapter
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    r = finetune(train_stream, tmp_path / "third", tiny_llm_dir, "--max-steps", "1", "--init-adapter",
                 first / "final", "--lora-r", "8")
    assert r.returncode == 2 and b"--lora-r" in r.stderr


def test_prompt_response_pairs(tiny_llm_dir, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    lines = [tiny_header().to_json()]
    for i in range(8):
        lines.append(json.dumps({"prompt": f"Q{i}: <audio><a0_{i}><a0_{i + 1}></audio> what?",
                                 "response": "a sound"}))
        lines.append(json.dumps({"prompt": f"make {i}", "response": f"<audio><a0_{i}></audio>"}))
    pairs.write_text("\n".join(lines) + "\n")
    r = finetune(pairs, tmp_path / "run", tiny_llm_dir, "--max-steps", "1")
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "run" / "final" / "soundtok-adapter.json").read_text())
    assert meta["training"]["task"] == "pairs"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(tiny_header().to_json() + "\n" + json.dumps({"prompt": "x", "response": "<audio><a0_99></audio>"})
                   + "\n")
    r = finetune(bad, tmp_path / "bad", tiny_llm_dir, "--max-steps", "1")
    assert r.returncode == 1 and r.stderr.decode().count("\n") == 1 and b"a0_99" in r.stderr
    no_codec = tmp_path / "nocodec.jsonl"
    no_codec.write_text(json.dumps({"prompt": "x", "response": "y"}) + "\n")
    r = finetune(no_codec, tmp_path / "nc", tiny_llm_dir, "--max-steps", "1")
    assert r.returncode == 2 and b"--codec" in r.stderr


def test_bad_training_data(tiny_llm_dir, tmp_path):
    empty = tmp_path / "empty.tok.jsonl"
    empty.write_text(tiny_header().to_json() + "\n")
    r = finetune(empty, tmp_path / "a", tiny_llm_dir, "--max-steps", "1")
    assert r.returncode == 1 and b"no items" in r.stderr and r.stderr.decode().count("\n") == 1
    unlabeled = write_stream(tmp_path / "unlabeled.tok.jsonl", tiny_header(), n=4, text=False)
    r = finetune(unlabeled, tmp_path / "b", tiny_llm_dir, "--max-steps", "1")
    assert r.returncode == 1 and b"text or label" in r.stderr
    r = finetune(tmp_path / "missing.jsonl", tmp_path / "c", tiny_llm_dir)
    assert r.returncode == 2 and b"no such file" in r.stderr


def test_ddp_two_processes_gloo(train_stream, tiny_llm_dir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "soundtok", "finetune-llm", str(train_stream), "-o", str(out), "--llm", str(tiny_llm_dir),
           "--max-steps", "2", "--batch-size", "2", "--task", "mixed", "--val", str(train_stream),
           "--device", "cpu", "--threads", "1", *TINY_LORA]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, env=env, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert r.stdout.decode().strip().splitlines() == [str(out / "final")]
    meta = json.loads((out / "final" / "soundtok-adapter.json").read_text())
    assert meta["training"]["processes"] == 2 and meta["training"]["steps"] == 2
    log = (out / "train.log").read_text()
    assert "x 2 process(es)" in log and "validation" in log
