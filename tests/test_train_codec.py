"""train-codec: a 2-step run, resume after interruption, fine-tuning, and a
2-process DDP smoke run (gloo on CPU) -- all on tiny configs and synthetic audio."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import soundfile as sf
from conftest import ROOT, TINY, cli, synth

TINY_JSON = json.dumps(TINY)


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_audio")
    for i in range(6):
        sf.write(d / f"clip{i}.wav", synth(0.6 + 0.2 * i, seed=i), 16000)
    return d


def _args(train_dir, out, *extra):
    return ["train-codec", train_dir, "--val", train_dir, "-o", out, "--config", TINY_JSON,
            "--batch", "2", "--device", "cpu", *extra]


def _metrics(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_two_step_run_writes_a_loadable_codec(train_dir, tmp_path):
    from soundtok.codec.model import SoundCodec

    out = tmp_path / "run"
    r = cli(*_args(train_dir, out, "--steps", "2", "--val-every", "2"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == str(out / "final")
    codec = SoundCodec.from_pretrained(out / "final")
    assert codec.cfg.codebook_size == 32
    rows = _metrics(out)
    stages = {(row["stage"], row["split"]) for row in rows}
    for st in ("vae", "tokenizer", "vocoder"):
        assert (st, "train") in stages and (st, "val") in stages
    # the tokenizer stage measured latent statistics
    assert not (codec.latent_std == 1).all()
    assert json.loads((out / "latest.json").read_text())["checkpoint"].startswith("ckpt-vocoder")


def test_resume_continues_from_checkpoint(train_dir, tmp_path):
    out = tmp_path / "run"
    r = cli(*_args(train_dir, out, "--stage", "vae", "--steps", "2", "--save-every", "2"))
    assert r.returncode == 0, r.stderr
    ckpt = json.loads((out / "latest.json").read_text())["checkpoint"]
    assert ckpt == "ckpt-vae-0000002"
    # "interrupted" run: continue to 4 steps from the step-2 checkpoint
    r = cli(*_args(train_dir, out, "--stage", "vae", "--steps", "4", "--save-every", "2",
                   "--resume", "-v"))
    assert r.returncode == 0, r.stderr
    assert b"resuming from ckpt-vae-0000002" in r.stderr
    assert b"steps 2->4" in r.stderr
    state = json.loads((out / "ckpt-vae-0000004" / "state.json").read_text())
    assert state["stage_step"] == 4 and state["optimizer"]["param_groups"]
    assert not list(out.glob(".tmp-*"))  # no half-written checkpoint left behind


def test_killed_run_leaves_last_checkpoint_intact(train_dir, tmp_path):
    """kill -9 in the middle of training: the latest checkpoint stays loadable."""
    from soundtok.codec.model import SoundCodec

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "soundtok", *map(str, _args(train_dir, out, "--stage", "vae",
                                                              "--steps", "100000",
                                                              "--save-every", "1"))]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time
        deadline = time.time() + 120
        while time.time() < deadline and len(list(out.glob("ckpt-*"))) < 2:
            time.sleep(0.2)
    finally:
        p.kill()
        p.wait()
    ckpt = json.loads((out / "latest.json").read_text())["checkpoint"]
    SoundCodec.from_pretrained(out / ckpt)
    r = cli(*_args(train_dir, out, "--stage", "vae", "--steps", "6", "--resume"))
    assert r.returncode == 0, r.stderr


def test_init_from_finetunes_existing_codec(train_dir, tmp_path, tiny_codec_dir):
    out = tmp_path / "ft"
    r = cli("train-codec", train_dir, "-o", out, "--init-from", tiny_codec_dir, "--stage",
            "tokenizer", "--steps", "1", "--batch", "2", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    from soundtok.codec.model import SoundCodec
    assert SoundCodec.from_pretrained(out / "final").cfg.name == "tiny-test"


def test_vocoder_finetune_on_vae_mels(train_dir, tmp_path, tiny_codec_dir):
    out = tmp_path / "vocft"
    r = cli("train-codec", train_dir, "-o", out, "--init-from", tiny_codec_dir, "--stage",
            "vocoder", "--vocoder-input", "vae", "--steps", "1", "--batch", "2", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    from soundtok.codec.model import SoundCodec
    before, after = SoundCodec.from_pretrained(tiny_codec_dir), SoundCodec.from_pretrained(out / "final")
    sb, sa = before.state_dict(), after.state_dict()
    assert all(torch_equal(sb[k], sa[k]) for k in sb if not k.startswith("vocoder."))
    assert not all(torch_equal(sb[k], sa[k]) for k in sb if k.startswith("vocoder."))


def torch_equal(a, b) -> bool:
    import torch
    return bool(torch.equal(a, b))


def test_bad_train_args(train_dir, tmp_path):
    r = cli(*_args(train_dir, tmp_path / "x", "--stage", "nonsense"))
    assert r.returncode == 2 and b"unknown stage" in r.stderr
    r = cli(*_args(train_dir, tmp_path / "x", "--config", "{not json"))
    assert r.returncode == 2
    r = cli("train-codec", tmp_path / "nothing-here", "-o", tmp_path / "y")
    assert r.returncode == 1 and b"no such file" in r.stderr


def test_ddp_two_processes_gloo(train_dir, tmp_path):
    """torchrun with 2 CPU processes: both ranks train on different crops and
    the result has the single-process codec's shapes."""
    from soundtok.codec.model import SoundCodec

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "soundtok", *map(str, _args(train_dir, out, "--stage", "vae,tokenizer",
                                             "--steps", "2", "--threads", "1"))]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    ranks = [json.loads((out / "ranks" / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert ranks[0]["first_batch_ids"] != ranks[1]["first_batch_ids"]
    ddp = SoundCodec.from_pretrained(out / "final")
    single = cli(*_args(train_dir, tmp_path / "single", "--stage", "vae", "--steps", "1"))
    assert single.returncode == 0
    ref = SoundCodec.from_pretrained(tmp_path / "single" / "final")
    assert {k: v.shape for k, v in ddp.state_dict().items()} == \
           {k: v.shape for k, v in ref.state_dict().items()}
