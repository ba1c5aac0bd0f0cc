"""Failure matrix: kill -9 and resume, a full disk, a closed stdout (SIGPIPE)
and Ctrl-C (SIGINT), for tokenize, detokenize, train-codec, finetune-llm,
caption, generate and evaluate.

A FIFO in a manifest makes "kill in the middle of a run" deterministic: the
run writes the items before it, then blocks reading it.  A full disk is
RLIMIT_FSIZE (Python ignores SIGXFSZ, so writes past the limit fail with
EFBIG, as on a full disk).  Tiny models, one torch thread.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, TINY, cli, synth

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
ENV.pop("SOUNDTOK_DEBUG", None)
SOUNDTOK = [sys.executable, "-m", "soundtok"]


def lines(path: Path) -> list[bytes]:
    return Path(path).read_bytes().splitlines(keepends=True)


def one_error_line(r, code: int, *needles: str) -> str:
    err = r.stderr.decode()
    assert r.returncode == code, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for n in needles:
        assert n in err, err
    return err


def wait_for(cond, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    t0 = time.time()
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended early ({proc.returncode}): "
                                 f"{proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        if time.time() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.02)


def alive(proc) -> bool:
    """A psutil process that still runs (not gone, not a zombie)."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def no_temp_files(folder: Path) -> list[str]:
    return [p.name for p in Path(folder).rglob("*") if ".tmp" in p.name]


@contextlib.contextmanager
def file_size_limit(nbytes: int):
    """Files written meanwhile cannot grow past ``nbytes`` (writes fail with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """30 one-second clips and a manifest of them with a FIFO as item 20."""
    d = tmp_path_factory.mktemp("fail_data")
    rows = []
    for i in range(30):
        name = f"c{i:02d}.wav"
        if i == 20:
            name = "fifo.wav"
            sf.write(d / "c20.wav", synth(1.0, seed=i), 16000)  # what the FIFO will carry
        else:
            sf.write(d / name, synth(1.0, seed=i), 16000)
        rows.append({"path": name, "id": f"c{i:02d}"})
    (d / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def make_fifo(d: Path) -> Path:
    f = d / "fifo.wav"
    if f.exists() or f.is_symlink():
        f.unlink()
    os.mkfifo(f)
    return f


# --------------------------------------------------------------------------- kill -9


def use_file(d: Path) -> None:
    """Make fifo.wav an ordinary audio file (a symlink to c20.wav)."""
    f = d / "fifo.wav"
    if f.exists() or f.is_symlink():
        f.unlink()
    os.symlink(d / "c20.wav", f)


def test_kill9_sharded_tokenize_then_resume(clips, tiny_codec_dir, tmp_path):
    """kill -9 a sharded, 2-worker, incremental run; --resume completes it with
    no item lost or repeated: the file equals an uninterrupted run's."""
    psutil = pytest.importorskip("psutil")
    ref, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    # --batch-size 1: each item is written as soon as it is encoded (with batching, a window
    # of clips is written together, whatever the decoders are doing, so outputs never depend on timing)
    args = ["tokenize", "--manifest", clips / "m.jsonl", "--shard", "0/2", "--codec", tiny_codec_dir,
            "--threads", "1", "--resume", "--workers", "2", "--batch-size", "1"]
    use_file(clips)
    r = cli(*args, "-o", ref)
    assert r.returncode == 0, r.stderr
    make_fifo(clips)
    p = subprocess.Popen(SOUNDTOK + [str(a) for a in args] + ["-o", str(out)], env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # shard 0 holds c00, c02, ..., c18, then the FIFO (c20): 10 items + header before it blocks
        wait_for(lambda: out.exists() and len(lines(out)) >= 11, proc=p)
        workers = psutil.Process(p.pid).children(recursive=True)
        assert len(workers) >= 2
        p.kill()
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert lines(out) == lines(ref)[:11]  # exactly the finished items, each whole
    psutil.wait_procs(workers, timeout=10)  # the workers follow their parent
    assert not any(alive(w) for w in workers)
    use_file(clips)
    r = cli(*args, "-o", out, "-v")
    assert r.returncode == 0, r.stderr
    assert b"10 already done" in r.stderr
    assert out.read_bytes() == ref.read_bytes()


def test_a_dead_decoding_worker_is_one_error_line(clips, tiny_codec_dir, tmp_path):
    """A worker killed while decoding (as by the OOM killer): one line naming the clip,
    exit 1; the items before it stay, and --resume finishes the run."""
    psutil = pytest.importorskip("psutil")
    fifo = make_fifo(clips)
    out = tmp_path / "out.jsonl"
    args = ["tokenize", "--manifest", str(clips / "m.jsonl"), "--codec", str(tiny_codec_dir), "--threads", "1",
            "--workers", "2", "--resume", "--batch-size", "1", "-o", str(out)]
    p = subprocess.Popen(SOUNDTOK + args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: out.exists() and len(lines(out)) >= 21, proc=p)
        for w in psutil.Process(p.pid).children(recursive=True):  # one of them is stuck on the FIFO
            with contextlib.suppress(psutil.Error):
                if "resource_tracker" not in " ".join(w.cmdline()):
                    w.kill()
        _, err = p.communicate(timeout=60)
    finally:
        fifo.unlink()
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1, err
    assert err.decode() == f"error: a decoding worker died while reading {clips / 'fifo.wav'} " \
                           f"(out of memory, or a crash in the decoder)\n", err
    assert len(lines(out)) == 21
    use_file(clips)
    try:
        r = cli(*args[:-2], "-o", out)
    finally:
        (clips / "fifo.wav").unlink()
    assert r.returncode == 0 and len(lines(out)) == 31, r.stderr


TRAIN_TINY = ["--config", json.dumps(TINY), "--batch", "2", "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fail_train")
    for i in range(4):
        sf.write(d / f"t{i}.wav", synth(0.8 + 0.2 * i, seed=i), 16000)
    return d


def test_kill9_train_codec_resumes_from_the_last_checkpoint(train_dir, tmp_path):
    from soundtok.codec.model import SoundCodec

    out = tmp_path / "run"
    args = ["train-codec", str(train_dir), "-o", str(out), "--stage", "vae", "--save-every", "1",
            *TRAIN_TINY]
    p = subprocess.Popen(SOUNDTOK + args + ["--steps", "100000"], env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (out / "latest.json").exists() and json.loads(
            (out / "latest.json").read_text())["checkpoint"] >= "ckpt-vae-0000003", proc=p)
    finally:
        p.kill()
        p.wait()
    last = json.loads((out / "latest.json").read_text())["checkpoint"]
    SoundCodec.from_pretrained(out / last)  # the checkpoint it points at is whole
    step = int(last.rsplit("-", 1)[1])
    r = cli(*args, "--steps", str(step + 2), "--resume", "-v")
    assert r.returncode == 0, r.stderr
    assert f"resuming from {last}".encode() in r.stderr and f"steps {step}->{step + 2}".encode() in r.stderr
    SoundCodec.from_pretrained(out / "final")


def tiny_llm_setup(root: Path):
    from test_llm_finetune import tiny_header, write_stream

    from soundtok.llm import tiny_llm

    llm = root / "llm"
    if not llm.exists():
        tiny_llm(llm, vocab_size=128)
    stream = root / "train.tok.jsonl"
    if not stream.exists():
        write_stream(stream, tiny_header(), n=16)
    return llm, stream


@pytest.fixture(scope="module")
def llm_setup(tmp_path_factory):
    pytest.importorskip("peft")
    return tiny_llm_setup(tmp_path_factory.mktemp("fail_llm"))


FT_TINY = ["--batch-size", "2", "--warmup", "0", "--threads", "1", "--lora-r", "4", "--lora-alpha", "8",
           "--lora-dropout", "0", "--device", "cpu"]


def test_kill9_finetune_llm_resumes_from_the_last_checkpoint(llm_setup, tmp_path):
    llm, stream = llm_setup
    out = tmp_path / "run"
    args = ["finetune-llm", str(stream), "-o", str(out), "--llm", str(llm), "--save-every", "1", *FT_TINY]
    p = subprocess.Popen(SOUNDTOK + args + ["--max-steps", "100000"], env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (out / "latest.json").exists() and json.loads(
            (out / "latest.json").read_text())["checkpoint"] >= "ckpt-0000003", proc=p)
    finally:
        p.kill()
        p.wait()
    last = json.loads((out / "latest.json").read_text())["checkpoint"]
    step = int(last.rsplit("-", 1)[1])
    state = json.loads((out / last / "state.json").read_text())
    assert state["step"] == step
    r = cli(*args, "--max-steps", str(step + 2), "--resume", "-v")
    assert r.returncode == 0, r.stderr
    assert f"resuming from {last} (step {step})".encode() in r.stderr
    assert json.loads((out / "final" / "soundtok-adapter.json").read_text())["training"]["steps"] == step + 2


# --------------------------------------------------------------------------- a full disk


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    d = tmp_path_factory.mktemp("many")
    for i in range(24):
        sf.write(d / f"m{i:02d}.wav", synth(1.0, seed=i), 16000)
    return d


def test_disk_full_tokenize_atomic_keeps_the_old_file(many, tiny_codec_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("the previous result\n")
    with file_size_limit(4000):
        r = cli("tokenize", many, "--codec", tiny_codec_dir, "-o", out, "--threads", "1")
    one_error_line(r, 1, f"cannot write {out}", "File too large", "disk full")
    assert out.read_text() == "the previous result\n" and not no_temp_files(tmp_path)


def test_disk_full_tokenize_resume_keeps_whole_items(many, tiny_codec_dir, tmp_path):
    ref, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    args = ["tokenize", many, "--codec", tiny_codec_dir, "--threads", "1", "--resume"]
    assert cli(*args, "-o", ref).returncode == 0
    with file_size_limit(4000):
        r = cli(*args, "-o", out)
    one_error_line(r, 1, f"cannot write {out}", "disk full")
    from soundtok.tokens import TokenReader

    done = lines(out)
    assert 2 <= len(done) < len(lines(ref)) and done[:-1] == lines(ref)[:len(done) - 1]
    r = cli(*args, "-o", out)  # space again: the run completes, the cut line is repaired
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert len(list(TokenReader(str(out)))) == 24


def test_disk_full_detokenize(tiny_codec_dir, many, tmp_path):
    stream = tmp_path / "s.jsonl"
    assert cli("tokenize", many, "--codec", tiny_codec_dir, "-o", stream).returncode == 0
    one = tmp_path / "one.jsonl"
    one.write_bytes(b"".join(lines(stream)[:2]))
    old = tmp_path / "old.wav"
    old.write_bytes(b"the previous result")
    with file_size_limit(20000):
        r = cli("detokenize", one, old, "--codec", tiny_codec_dir, "--steps", "1")
        one_error_line(r, 1, f"cannot write {old}", "disk full")
        assert old.read_bytes() == b"the previous result"
        r = cli("detokenize", one, "-", "--codec", tiny_codec_dir, "--steps", "1")
        one_error_line(r, 1, "cannot write a temporary file for stdout", "disk full")
    # a folder: the short items fit, then one too large for the space left; files done stay whole
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i, secs in enumerate((0.5, 0.5, 2.0, 0.5)):
        sf.write(mixed / f"x{i}.wav", synth(secs, seed=i), 16000)
    ms = tmp_path / "mixed.jsonl"
    assert cli("tokenize", mixed, "--codec", tiny_codec_dir, "-o", ms).returncode == 0
    dec = tmp_path / "dec"
    with file_size_limit(40000):
        r = cli("detokenize", ms, f"{dec}/", "--codec", tiny_codec_dir, "--steps", "1")
    one_error_line(r, 1, f"cannot write {dec}/x2.wav", "disk full")
    assert not no_temp_files(dec) and sorted(f.name for f in dec.iterdir()) == ["x0.wav", "x1.wav"]
    for f in dec.iterdir():
        assert sf.info(str(f)).frames == 8000


def test_no_space_left_on_a_tiny_tmpfs(many, tiny_codec_dir, tmp_path):
    """A real ENOSPC: a 64 kB tmpfs (needs root and mount; skipped otherwise)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        earlier = "an earlier output\n" * 3000  # 54 kB of the 64 kB
        (disk / "earlier.txt").write_text(earlier)
        out = disk / "out.jsonl"
        big = tmp_path / "big"
        big.mkdir()
        for i in range(8):
            sf.write(big / f"b{i:02d}.wav", synth(20.0, seed=i), 16000)
        r = cli("tokenize", big, "--codec", tiny_codec_dir, "-o", out, "--resume", "--threads", "1")
        one_error_line(r, 1, f"cannot write {out}", "No space left on device")
        assert (disk / "earlier.txt").read_text() == earlier
        from soundtok.tokens import TokenReader

        with pytest.raises(Exception, match="truncated"):  # a cut-off last line, as a kill leaves
            list(TokenReader(str(out)))
        n = len(lines(out)) - 2  # whole items
        (disk / "earlier.txt").unlink()
        r = cli("tokenize", big, "--codec", tiny_codec_dir, "-o", out, "--resume", "--threads", "1", "-v")
        assert b"removed an incomplete last line" in r.stderr
        assert b"%d item(s) already there" % n in r.stderr
        assert r.returncode == 0 and len(list(TokenReader(str(out)))) == 8
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_disk_full_train_codec_keeps_the_last_checkpoint(train_dir, tmp_path):
    from soundtok.codec.model import SoundCodec

    out = tmp_path / "run"
    args = ["train-codec", train_dir, "-o", out, "--stage", "vae", "--save-every", "2", *TRAIN_TINY]
    assert cli(*args, "--steps", "2").returncode == 0
    with file_size_limit(20000):
        r = cli(*args, "--steps", "4", "--resume")
    one_error_line(r, 1, "File too large")
    assert json.loads((out / "latest.json").read_text())["checkpoint"] == "ckpt-vae-0000002"
    SoundCodec.from_pretrained(out / "ckpt-vae-0000002")
    r = cli(*args, "--steps", "4", "--resume", "-v")
    assert r.returncode == 0 and b"resuming from ckpt-vae-0000002" in r.stderr


def test_disk_full_train_codec_leaves_no_partial_checkpoint(train_dir, tmp_path):
    out = tmp_path / "run"
    args = ["train-codec", train_dir, "-o", out, "--stage", "vae", "--save-every", "2", *TRAIN_TINY]
    assert cli(*args, "--steps", "2").returncode == 0
    with file_size_limit(20000):
        assert cli(*args, "--steps", "4", "--resume").returncode == 1
    assert not no_temp_files(out)


def test_disk_full_finetune_llm_keeps_the_last_checkpoint(llm_setup, tmp_path):
    llm, stream = llm_setup
    out = tmp_path / "run"
    args = ["finetune-llm", stream, "-o", out, "--llm", llm, "--save-every", "2", *FT_TINY]
    assert cli(*args, "--max-steps", "2").returncode == 0
    with file_size_limit(20000):
        r = cli(*args, "--max-steps", "4", "--resume")
    one_error_line(r, 1, "File too large")
    assert json.loads((out / "latest.json").read_text())["checkpoint"] == "ckpt-0000002"
    r = cli(*args, "--max-steps", "4", "--resume", "-v")
    assert r.returncode == 0 and b"resuming from ckpt-0000002" in r.stderr


# --------------------------------------------------------------------------- SIGPIPE


def test_sigpipe_tokenize_head(tiny_codec_dir, many):
    """`soundtok tokenize ... | head -c 10`: quiet, exit 141 (documented)."""
    cmd = (f"{sys.executable} -m soundtok tokenize {many} --codec {tiny_codec_dir} --threads 1 "
           f"--batch-size 1 | head -c 10; exit ${{PIPESTATUS[0]}}")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, env=ENV)
    assert r.stdout == b'{"soundtok' and r.stderr == b""
    assert r.returncode in (0, 141)  # 0 if everything fitted in the pipe before head left


def run_closed_stdout(args: list[str]) -> subprocess.CompletedProcess:
    """Run the CLI with stdout a pipe whose reader is already gone."""
    rd, wr = os.pipe()
    os.close(rd)
    try:
        return subprocess.run(SOUNDTOK + args, stdout=wr, stderr=subprocess.PIPE, env=ENV,
                              stdin=subprocess.DEVNULL)
    finally:
        os.close(wr)


class _GonePipe(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def cli_closed_stdout(*args) -> subprocess.CompletedProcess:
    """conftest.cli with a stdout whose reader went away (in process: fast)."""
    from soundtok.cli import main

    err = io.BytesIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8")
    # unbuffered: every write meets the closed pipe at once, as an output larger
    # than the buffers does
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(_GonePipe(), buffer_size=1), encoding="utf-8",
                                  write_through=True)
    sys.stderr = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = e.code or 0
    finally:
        sys.stderr.flush()
        sys.stderr.detach()
        out = sys.stdout
        sys.stdin, sys.stdout, sys.stderr = saved
        try:
            out.detach()
        except (OSError, ValueError):
            pass
    return subprocess.CompletedProcess(args, code, b"", err.getvalue())


def test_sigpipe_tokenize_closed_pipe(tiny_codec_dir, many):
    r = run_closed_stdout(["tokenize", str(many), "--codec", str(tiny_codec_dir), "--threads", "1"])
    assert (r.returncode, r.stderr) == (141, b"")


@pytest.mark.parametrize("args", [["--help"], ["tokenize", "--help"], ["--version"]])
def test_sigpipe_help_closed_pipe(args):
    r = run_closed_stdout(args)
    assert (r.returncode, r.stderr) == (141, b"")


@pytest.fixture(scope="module")
def adapter(llm_setup, tmp_path_factory, tiny_codec_dir):
    """A 1-step adapter for the tiny codec's tokens, and a stream of that codec."""
    from test_llm_finetune import write_stream

    from soundtok.registry import load_codec

    llm, _ = llm_setup
    root = tmp_path_factory.mktemp("fail_adapter")
    stream = write_stream(root / "s.tok.jsonl", load_codec(str(tiny_codec_dir)).header(), n=8)
    r = cli("finetune-llm", stream, "-o", root / "run", "--llm", llm, "--max-steps", "1", "--task", "mixed",
            *FT_TINY)
    assert r.returncode == 0, r.stderr
    return root / "run" / "final", stream


def test_sigpipe_in_process_tokenize(tiny_codec_dir, many):
    r = cli_closed_stdout("tokenize", many, "--codec", tiny_codec_dir, "--threads", "1")
    assert (r.returncode, r.stderr) == (141, b"")


@pytest.mark.parametrize("command", ["detokenize", "caption", "generate", "evaluate recon --json"])
def test_sigpipe_other_commands(command, adapter, tiny_codec_dir, tmp_path):
    ad, stream = adapter
    if command == "detokenize":
        one = tmp_path / "one.jsonl"
        one.write_bytes(b"".join(lines(stream)[:2]))
        args = ["detokenize", one, "-", "--codec", tiny_codec_dir, "--steps", "1"]
    elif command == "caption":
        args = ["caption", stream, "--adapter", ad, "--max-new-tokens", "2"]
    elif command == "generate":
        args = ["generate", "someone says one", "--adapter", ad, "--duration", "0.3"]
    else:
        for sub, seed in (("ref", 0), ("deg", 1)):
            (tmp_path / sub).mkdir()
            sf.write(tmp_path / sub / "a.wav", synth(1.0, seed=seed), 16000)
        args = ["evaluate", "recon", tmp_path / "ref", "--deg", tmp_path / "deg", "--json", "--no-dnsmos",
                "--no-asr", "--no-speaker"]
    r = cli_closed_stdout(*args, "--threads", "1")
    assert (r.returncode, r.stderr) == (141, b"")


# --------------------------------------------------------------------------- Ctrl-C


def ctrl_c(p: subprocess.Popen) -> tuple[int, bytes]:
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group."""
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=60)
    return p.returncode, err


def _sigint_default() -> None:
    """In the child: SIGINT back to its default, as under a terminal.  A shell that runs the
    suite as a background job starts it with SIGINT ignored, which children would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_tokenize_atomic_leaves_nothing(clips, tiny_codec_dir, tmp_path):
    fifo = make_fifo(clips)
    out = tmp_path / "out.jsonl"
    p = subprocess.Popen(SOUNDTOK + ["tokenize", "--manifest", str(clips / "m.jsonl"), "--codec",
                                     str(tiny_codec_dir), "--threads", "1", "--batch-size", "1", "-o", str(out)],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         preexec_fn=_sigint_default)
    try:
        # the temporary output holds the 20 items before the FIFO
        wait_for(lambda: any(len(lines(f)) >= 21 for f in tmp_path.glob(".out.jsonl.*")), proc=p)
        code, err = ctrl_c(p)
    finally:
        fifo.unlink()
        if p.poll() is None:
            p.kill()
            p.wait()
    assert code == 130 and err.decode().strip().splitlines()[-1] == "error: interrupted", err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_ctrl_c_tokenize_resume_with_workers_keeps_whole_items(clips, tiny_codec_dir, tmp_path):
    psutil = pytest.importorskip("psutil")
    fifo = make_fifo(clips)
    out = tmp_path / "out.jsonl"
    p = subprocess.Popen(SOUNDTOK + ["tokenize", "--manifest", str(clips / "m.jsonl"), "--codec",
                                     str(tiny_codec_dir), "--threads", "1", "--workers", "2", "--resume",
                                     "--batch-size", "1", "-o", str(out)],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         preexec_fn=_sigint_default)
    try:
        wait_for(lambda: out.exists() and len(lines(out)) >= 21, proc=p)
        workers = psutil.Process(p.pid).children(recursive=True)
        code, err = ctrl_c(p)
    finally:
        fifo.unlink()
        if p.poll() is None:
            p.kill()
            p.wait()
    assert code == 130 and b"Traceback" not in err, err
    assert err.decode().strip().splitlines()[-1] == "error: interrupted"
    psutil.wait_procs(workers, timeout=10)
    assert not any(alive(w) for w in workers)
    from soundtok.tokens import TokenReader

    assert [i.id for i in TokenReader(str(out))] == [f"c{i:02d}" for i in range(20)]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_ctrl_c_detokenize_folder_keeps_only_whole_files(tiny_codec_dir, many, tmp_path):
    stream = tmp_path / "s.jsonl"
    assert cli("tokenize", many, "--codec", tiny_codec_dir, "-o", stream).returncode == 0
    dec = tmp_path / "dec"
    p = subprocess.Popen(SOUNDTOK + ["detokenize", str(stream), f"{dec}/", "--codec", str(tiny_codec_dir),
                                     "--threads", "1", "--steps", "40"],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         preexec_fn=_sigint_default)
    wait_for(lambda: dec.is_dir() and len([f for f in dec.iterdir() if f.suffix == ".wav"]) >= 2, proc=p)
    code, err = ctrl_c(p)
    assert code == 130 and err.decode().strip().splitlines()[-1] == "error: interrupted"
    assert not no_temp_files(dec)
    done = sorted(dec.iterdir())
    assert 2 <= len(done) < 24
    for f in done:
        assert sf.info(str(f)).frames == 16000  # every file there is whole


def test_ctrl_c_generate_leaves_nothing(adapter, tmp_path):
    ad, _ = adapter
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"sound {i}"}) + "\n" for i in range(400)))
    out = tmp_path / "gen.jsonl"
    out.write_text("the previous result\n")
    p = subprocess.Popen(SOUNDTOK + ["generate", "--prompts", str(prompts), "--adapter", str(ad), "-o", str(out),
                                     "--duration", "5", "--batch-size", "1", "--threads", "1"],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         preexec_fn=_sigint_default)
    wait_for(lambda: any(f.name.startswith(".gen.jsonl.") and f.stat().st_size > 300
                         for f in tmp_path.iterdir()), proc=p)
    code, err = ctrl_c(p)
    assert code == 130 and err.decode().strip().splitlines()[-1] == "error: interrupted"
    assert out.read_text() == "the previous result\n" and not no_temp_files(tmp_path)


def _interrupt_after_checkpoint(monkeypatch, module, after: int = 2):
    """Ctrl-C right after the ``after``-th checkpoint is written (in process)."""
    import soundtok.train.checkpoint as ck

    real, calls = ck.save_checkpoint, []

    def save_then_interrupt(*a, **kw):
        out = real(*a, **kw)
        calls.append(out)
        if len(calls) == after:
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(module, "save_checkpoint", save_then_interrupt)


def _interrupt_while_writing_checkpoint(monkeypatch, after: int = 2):
    """Ctrl-C in the middle of writing the ``after``-th checkpoint (in process)."""
    import safetensors.torch as st

    real, calls = st.save_file, []

    def save_file(tensors, path, *a, **kw):
        real(tensors, path, *a, **kw)
        if "optimizer" in str(path):
            calls.append(path)
            if len(calls) == after:
                raise KeyboardInterrupt

    monkeypatch.setattr(st, "save_file", save_file)


def test_ctrl_c_train_codec_keeps_the_last_checkpoint(train_dir, tmp_path, monkeypatch):
    import soundtok.train.codec_trainer as trainer
    from soundtok.codec.model import SoundCodec

    out = tmp_path / "run"
    args = ["train-codec", train_dir, "-o", out, "--stage", "vae", "--save-every", "1", *TRAIN_TINY]
    with monkeypatch.context() as m:
        _interrupt_after_checkpoint(m, trainer)
        r = cli(*args, "--steps", "10")
    assert r.returncode == 130 and r.stderr.decode().strip().splitlines()[-1] == "error: interrupted"
    assert json.loads((out / "latest.json").read_text())["checkpoint"] == "ckpt-vae-0000002"
    SoundCodec.from_pretrained(out / "ckpt-vae-0000002")
    assert not (out / "final").exists() and not no_temp_files(out)
    r = cli(*args, "--steps", "3", "--resume", "-v")
    assert r.returncode == 0 and b"resuming from ckpt-vae-0000002" in r.stderr


def test_ctrl_c_while_writing_a_checkpoint_leaves_no_partial_files(train_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["train-codec", train_dir, "-o", out, "--stage", "vae", "--save-every", "1", *TRAIN_TINY]
    with monkeypatch.context() as m:
        _interrupt_while_writing_checkpoint(m)
        r = cli(*args, "--steps", "10")
    assert r.returncode == 130
    assert json.loads((out / "latest.json").read_text())["checkpoint"] == "ckpt-vae-0000001"
    assert not no_temp_files(out)


def test_ctrl_c_finetune_llm_keeps_the_last_checkpoint(llm_setup, tmp_path, monkeypatch):
    import soundtok.train.llm_trainer as trainer

    llm, stream = llm_setup
    out = tmp_path / "run"
    args = ["finetune-llm", stream, "-o", out, "--llm", llm, "--save-every", "1", *FT_TINY]
    with monkeypatch.context() as m:
        _interrupt_after_checkpoint(m, trainer)
        r = cli(*args, "--max-steps", "10")
    assert r.returncode == 130 and r.stderr.decode().strip().splitlines()[-1] == "error: interrupted"
    assert json.loads((out / "latest.json").read_text())["checkpoint"] == "ckpt-0000002"
    assert not (out / "final").exists() and not no_temp_files(out)
    r = cli(*args, "--max-steps", "3", "--resume", "-v")
    assert r.returncode == 0 and b"resuming from ckpt-0000002" in r.stderr


def test_nan_audio_in_a_long_stream_is_one_error(tiny_codec_dir, tmp_path, monkeypatch):
    """A NaN found late in a streamed input fails that item only, with one line."""
    import soundtok.pipeline as pipeline

    monkeypatch.setattr(pipeline, "WHOLE_MAX_SECONDS", 1.0)
    x = synth(4.0)
    x[50000] = np.nan
    sf.write(tmp_path / "bad.wav", x, 16000, subtype="FLOAT")
    sf.write(tmp_path / "good.wav", synth(2.0), 16000)
    out = tmp_path / "o.jsonl"
    r = cli("tokenize", tmp_path / "bad.wav", tmp_path / "good.wav", "--codec", tiny_codec_dir, "-o", out)
    assert r.returncode == 1
    err = r.stderr.decode().splitlines()
    assert err[0] == f"error: {tmp_path / 'bad.wav'} contains NaN or infinite samples"
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()[1:]] == ["good"]
