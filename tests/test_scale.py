"""Scale: sharded, multi-worker, batched, resumable tokenization; merging
shards; streaming of long audio (codes equal whole-file encoding); and a
2-process DDP run of finetune-llm (the train-codec one is in
test_train_codec.py).  Tiny codec, synthesised audio, one torch thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import ROOT, cli, make_tiny_codec, synth

torch.set_num_threads(1)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def codec():
    return make_tiny_codec()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """24 clips of 8 different lengths (so some share a length), and a manifest."""
    d = tmp_path_factory.mktemp("scale_data")
    rows = []
    for i in range(24):
        sr = 16000 if i % 3 else 22050  # some need resampling
        sf.write(d / f"c{i:02d}.wav", synth(0.2 + 0.13 * (i % 8), sr=sr, seed=i), sr)
        rows.append({"path": f"c{i:02d}.wav", "id": f"c{i:02d}", "label": f"l{i % 3}"})
    man = d / "m.jsonl"
    man.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d, man


def reference_codes(codec, path: Path) -> list[list[int]]:
    """What one-by-one, whole-file encoding gives (the pre-pipeline behaviour)."""
    from soundtok.audio import load_audio

    return codec.encode_long(load_audio(str(path), 16000), chunk_tokens=750).tolist()


# --------------------------------------------------------------------------- batching


def test_equal_length_batches_equal_one_by_one_but_padding_does_not(codec):
    wavs = [torch.from_numpy(synth(1.0, seed=i)) for i in range(5)]
    batch = codec.encode(torch.stack(wavs))
    for i, w in enumerate(wavs):
        assert torch.equal(batch[i], codec.encode(w[None])[0])
    # A shorter clip padded to a longer one sees silence instead of its edge:
    # its last codes may change, which is why the pipeline batches equal lengths only.
    short = wavs[1][:9000]
    alone = codec.encode(short[None])[0]
    padded = codec.encode(torch.stack([wavs[0], torch.nn.functional.pad(short, (0, 16000 - 9000))]))[1]
    assert torch.equal(alone[:, :5], padded[:, :5])  # far from the end: the same


@pytest.mark.parametrize("workers,batch", [(0, 1), (0, 16), (2, 4)])
def test_pipeline_codes_equal_one_by_one(codec, dataset, tmp_path, workers, batch):
    from soundtok.api import tokenize

    d, man = dataset
    out = tmp_path / "o.jsonl"
    rep = tokenize([], str(out), codec=codec, manifests=[str(man)], workers=workers,
                   batch_size=batch)
    assert rep.ok == 24 and not rep.failed
    recs = lines(out)
    assert [r["id"] for r in recs[1:]] == [f"c{i:02d}" for i in range(24)]  # input order
    for r in recs[1:]:
        assert r["codes"] == reference_codes(codec, d / f"{r['id']}.wav"), r["id"]
        assert r["label"] == f"l{int(r['id'][1:]) % 3}"


# --------------------------------------------------------------------------- long audio


@pytest.mark.parametrize("sr,channels", [(16000, 1), (44100, 2)])
@pytest.mark.parametrize("chunk,block", [(7, 4000), (25, 1 << 17), (64, 333)])
def test_stream_encoder_equals_whole_file(codec, tmp_path, sr, channels, chunk, block):
    from soundtok.audio import AudioStream, load_audio
    from soundtok.codec.coding import StreamEncoder

    x = np.stack([synth(6.3, sr=sr, seed=c) for c in range(channels)], 1)
    path = tmp_path / "long.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    whole = load_audio(str(path), 16000)
    with AudioStream(str(path), 16000) as st:
        enc = StreamEncoder(codec, chunk)
        parts = []
        for b in st.blocks(block):
            parts.append(b)
            enc.push(b)
        codes, n = enc.finish()
    assert np.array_equal(np.concatenate(parts), whole.numpy())  # streamed resampling is exact
    assert n == whole.shape[0]
    assert codes == codec.encode(whole[None])[0].tolist()  # = whole-file encoding
    assert codes == codec.encode_long(whole, chunk_tokens=chunk).tolist()


def test_long_input_is_streamed_through_tokenize(codec, tmp_path, monkeypatch):
    """Inputs over WHOLE_MAX_SECONDS take the streaming path, in and out of workers."""
    import soundtok.pipeline as pipeline
    from soundtok.api import tokenize
    from soundtok.codec.coding import StreamEncoder

    monkeypatch.setattr(pipeline, "WHOLE_MAX_SECONDS", 2.0)
    sf.write(tmp_path / "a_long.flac", synth(5.0, sr=48000, seed=1), 48000)
    sf.write(tmp_path / "b_short.wav", synth(1.0, seed=2), 16000)
    streamed = []
    real = StreamEncoder.finish

    def spy(self):
        out = real(self)
        streamed.append(out[1])
        return out

    monkeypatch.setattr(StreamEncoder, "finish", spy)
    out = tmp_path / "o.jsonl"
    tokenize([str(tmp_path)], str(out), codec=codec, chunk_seconds=1.0)
    assert streamed == [round(5.0 * 16000)]
    recs = lines(out)
    assert [r["id"] for r in recs[1:]] == ["a_long", "b_short"]
    from soundtok.audio import load_audio

    whole = load_audio(str(tmp_path / "a_long.flac"), 16000)
    assert recs[1]["codes"] == codec.encode_long(whole, chunk_tokens=25).tolist()
    assert recs[1]["num_samples"] == whole.shape[0]


def test_long_file_cli_streams(tiny_codec_dir, tmp_path):
    """A 125 s 22.05 kHz file (over the 120 s whole-decode limit) through the CLI."""
    from soundtok.audio import load_audio
    from soundtok.codec.model import SoundCodec

    sf.write(tmp_path / "long.wav", np.tile(synth(5.0, sr=22050), 25), 22050)
    out = tmp_path / "long.tok.jsonl"
    r = cli("tokenize", tmp_path / "long.wav", "--codec", tiny_codec_dir, "-o", out, "--threads", "1")
    assert r.returncode == 0, r.stderr
    rec = lines(out)[1]
    codec = SoundCodec.from_pretrained(tiny_codec_dir)
    whole = load_audio(str(tmp_path / "long.wav"), 16000)
    assert rec["num_samples"] == whole.shape[0] == 125 * 16000
    assert rec["codes"] == codec.encode_long(whole, chunk_tokens=750).tolist()


# --------------------------------------------------------------------------- shards and merging


def test_shard_split_is_round_robin_and_covers_everything(codec, dataset, tmp_path):
    from soundtok.inputs import parse_shard, plan_sources

    _d, man = dataset
    ids = []
    for i in range(5):
        plan = plan_sources([], [str(man)], parse_shard(f"{i}/5"))
        got = [(k, s.id) for k, s in plan]
        assert all(k % 5 == i for k, _ in got) and plan.selected == len(got)
        ids += [s for _, s in got]
    assert sorted(ids) == [f"c{i:02d}" for i in range(24)]
    for bad in ("5/5", "-1/3", "1", "a/b", "1/0"):
        with pytest.raises(Exception, match="--shard"):
            parse_shard(bad)


def test_shards_merge_to_the_unsharded_stream(tiny_codec_dir, dataset, tmp_path):
    d, man = dataset
    whole = tmp_path / "whole.jsonl"
    assert cli("tokenize", "--manifest", man, "--codec", tiny_codec_dir, "-o", whole,
               "--threads", "1").returncode == 0
    shards = []
    for i in range(3):
        s = tmp_path / f"s{i}.jsonl"
        r = cli("tokenize", "--manifest", man, "--shard", f"{i}/3", "--codec", tiny_codec_dir, "-o", s,
                "--resume", "--threads", "1")
        assert r.returncode == 0, r.stderr
        assert lines(s)[0]["extra"]["shard"] == {"index": i, "count": 3, "total_items": 24}
        shards.append(s)
    merged = tmp_path / "merged.jsonl"
    r = cli("tokenize", "--merge", shards[2], shards[0], shards[1], "-o", merged)
    assert r.returncode == 0, r.stderr
    m, w = lines(merged), lines(whole)
    assert m[0] == w[0]  # the shard is dropped from the merged header
    assert sorted(m[1:], key=lambda r: r["id"]) == w[1:]
    # merge refuses: a missing shard, a shard twice, another codec, duplicate ids
    def refused(*args, needle):
        r = cli("tokenize", "--merge", *args, "-o", tmp_path / "bad.jsonl")
        err = r.stderr.decode()
        assert r.returncode == 1 and err.count("\n") == 1 and needle in err, err
        assert not (tmp_path / "bad.jsonl").exists()

    refused(shards[0], shards[1], needle="shard(s) 2 of 3 missing")
    refused(shards[0], shards[1], shards[2], shards[1], needle="both shard 1/3")
    refused(whole, whole, needle="also in")
    other = tmp_path / "other"
    make_tiny_codec(seed=5).save_pretrained(other)
    o = tmp_path / "o.jsonl"
    assert cli("tokenize", d / "c00.wav", "--codec", other, "-o", o).returncode == 0
    refused(whole, o, needle="headers differ")
    refused(whole, shards[0], needle="only one of them is a --shard output")
    r = cli("tokenize", "--merge", whole, "--workers", "2")
    assert r.returncode == 2


def test_empty_shard_is_a_valid_stream(tiny_codec_dir, tmp_path, wav_file):
    out = tmp_path / "s5.jsonl"
    r = cli("tokenize", wav_file, "--shard", "5/8", "--codec", tiny_codec_dir, "-o", out)
    assert r.returncode == 0, r.stderr
    recs = lines(out)
    assert len(recs) == 1 and recs[0]["extra"]["shard"]["index"] == 5


def test_shard_with_a_missing_input_is_an_error(tiny_codec_dir, tmp_path, wav_file):
    r = cli("tokenize", wav_file, tmp_path / "gone", "--shard", "0/2", "--codec", tiny_codec_dir)
    assert r.returncode == 1 and b"every input must be readable" in r.stderr


# --------------------------------------------------------------------------- resume


def test_resume_skips_done_items_and_repairs_a_cut_line(tiny_codec_dir, dataset, tmp_path):
    _d, man = dataset
    ref = tmp_path / "ref.jsonl"
    args = ["--manifest", man, "--codec", tiny_codec_dir, "--threads", "1"]
    assert cli("tokenize", *args, "-o", ref, "--resume").returncode == 0
    full = ref.read_bytes()
    out = tmp_path / "out.jsonl"
    # as a kill would leave it: 10 complete items and half of the 11th
    cut = full.splitlines(keepends=True)
    out.write_bytes(b"".join(cut[:11]) + cut[11][: len(cut[11]) // 2])
    r = cli("tokenize", *args, "-o", out, "--resume", "-v")
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "removed an incomplete last line" in err and "10 item(s) already there" in err
    assert "tokenized 14 item(s)" in err and "10 already done" in err
    assert out.read_bytes() == full  # no duplicate, no loss, same order
    # resuming a complete file does nothing
    r = cli("tokenize", *args, "-o", out, "--resume", "-v")
    assert r.returncode == 0 and b"tokenized 0 item(s)" in r.stderr and out.read_bytes() == full


def test_resume_refuses_other_settings_and_damaged_files(tiny_codec_dir, dataset, tmp_path):
    _d, man = dataset
    args = ["--manifest", man, "--codec", tiny_codec_dir, "--threads", "1"]
    out = tmp_path / "s.jsonl"
    assert cli("tokenize", *args, "--shard", "0/2", "-o", out, "--resume").returncode == 0
    before = out.read_bytes()
    r = cli("tokenize", *args, "--shard", "1/2", "-o", out, "--resume")
    assert r.returncode == 2 and b"other settings" in r.stderr and out.read_bytes() == before
    damaged = before.splitlines(keepends=True)
    damaged[2] = b'{"type": "item", "garbage\n'
    out.write_bytes(b"".join(damaged))
    r = cli("tokenize", *args, "--shard", "0/2", "-o", out, "--resume")
    assert r.returncode == 1 and b"line 3" in r.stderr and b"damaged" in r.stderr
    # a damaged last line that is complete (has its newline) is not what a kill leaves: refused too
    out.write_bytes(before + b'{"type": "item", "garb\n')
    r = cli("tokenize", *args, "--shard", "0/2", "-o", out, "--resume")
    assert r.returncode == 1 and b"damaged" in r.stderr and out.read_bytes().endswith(b"garb\n")
    r = cli("tokenize", *args, "-o", "-", "--resume")
    assert r.returncode == 2 and b"--resume needs -o FILE" in r.stderr
    # never overwrite what is not a token stream, with or without a final newline
    for content in (b"my notes\n", b"my notes", b'{"path": "a.wav"}\n', b"\x00\x01\x02"):
        other = tmp_path / "notes.txt"
        other.write_bytes(content)
        r = cli("tokenize", *args, "-o", other, "--resume")
        assert r.returncode == 2 and b"not a soundtok token stream" in r.stderr, r.stderr
        assert other.read_bytes() == content


def test_resume_file_is_locked_against_a_second_writer(tiny_codec_dir, wav_file, tmp_path):
    import fcntl

    out = tmp_path / "x.jsonl"
    out.write_bytes(b"")
    with open(out, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        r = cli("tokenize", wav_file, "--codec", tiny_codec_dir, "-o", out, "--resume")
    assert r.returncode == 1 and b"another process" in r.stderr


def test_duplicate_ids_across_inputs_are_refused(tiny_codec_dir, tmp_path, wav_file):
    man = tmp_path / "m.jsonl"
    man.write_text(json.dumps({"path": str(wav_file)}) + "\n")
    r = cli("tokenize", wav_file, "--manifest", man, "--codec", tiny_codec_dir)
    assert r.returncode == 2 and b"duplicate item id 'clip'" in r.stderr


# --------------------------------------------------------------------------- DDP


RECORDER = """
import json, os, sys, atexit
import soundtok.train.llm_trainer as T
seen = []
_collate = T.collate
def collate(examples, pad_id):
    seen.extend([list(map(int, e.prompt)) + list(map(int, e.response)) for e in examples])
    return _collate(examples, pad_id)
T.collate = collate
out = sys.argv.pop(1)
atexit.register(lambda: open(os.path.join(out, f"rank{os.environ.get('RANK', '0')}.json"), "w").write(json.dumps(seen)))
from soundtok.cli import main
main(sys.argv[1:])
"""


def test_finetune_llm_ddp_ranks_see_different_data_and_match_single_shapes(tmp_path):
    """torchrun, 2 gloo processes, 2 steps: each rank trains on other examples,
    and the adapter has the shapes of a single-process run's."""
    pytest.importorskip("peft")
    from safetensors.torch import load_file
    from test_llm_finetune import TINY_LORA, tiny_header, write_stream

    from soundtok.llm import tiny_llm

    llm = tiny_llm(tmp_path / "llm", vocab_size=128)
    stream = write_stream(tmp_path / "train.tok.jsonl", tiny_header(), n=16)
    rec = tmp_path / "rec"
    rec.mkdir()
    script = tmp_path / "record.py"
    script.write_text(RECORDER)
    common = ["finetune-llm", str(stream), "--llm", str(llm), "--max-steps", "2", "--batch-size", "2",
              "--task", "caption", "--device", "cpu", "--threads", "1", "--warmup", "0", *TINY_LORA]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + str(ROOT / "tests"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(rec), *common, "-o", str(tmp_path / "ddp")]
    r = subprocess.run(cmd, capture_output=True, env=env, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    seen = [json.loads((rec / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 2 * 2  # 2 steps x batch 2 on each rank
    assert not ({tuple(x) for x in seen[0]} & {tuple(x) for x in seen[1]})  # different examples
    single = cli(*common, "-o", tmp_path / "single")
    assert single.returncode == 0, single.stderr
    for name in ("adapter_model.safetensors", "audio_embeddings.safetensors"):
        a = load_file(str(tmp_path / "ddp" / "final" / name))
        b = load_file(str(tmp_path / "single" / "final" / name))
        assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    meta = json.loads((tmp_path / "ddp" / "final" / "soundtok-adapter.json").read_text())
    assert meta["training"]["processes"] == 2
