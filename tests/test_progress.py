"""Progress on stderr: totals, rate and time left where the count is known, a spinner while
models load, results on stdout never on the display's line, nothing when stderr is not a
terminal; and the notice of a first-use LLM conversion, shown unless -q in pipes too.

The terminal tests run the real CLI on a pseudo-terminal (``pty.openpty``) and replay what it
wrote on a small screen model (carriage return, newline, cursor up, erase line), so what the
user would see is checked, not escape codes.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys

import pytest
import soundfile as sf
from conftest import ROOT, cli, synth

pty = pytest.importorskip("pty")

N_CLIPS = 5


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("progress_clips")
    for i in range(N_CLIPS):
        sf.write(d / f"c{i}.wav", synth(0.4, seed=i), 16000)
    return d


def run_on_terminal(args, stdout_too=True, timeout=240):
    """Run ``python -m soundtok ARGS`` with stderr (and stdout unless ``stdout_too`` is False) on
    a pseudo-terminal 100 columns wide; returns (exit code, terminal bytes, piped stdout)."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": "100"}
    for k in ("SOUNDTOK_DEBUG", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(k, None)
    p = subprocess.Popen([sys.executable, "-m", "soundtok", *map(str, args)], stdin=subprocess.DEVNULL,
                         stdout=slave if stdout_too else subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    term, piped = b"", b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                p.kill()
                raise AssertionError(f"no output for {timeout} s")
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            term += chunk
        if not stdout_too:
            piped = p.stdout.read()
        p.wait(timeout)
    finally:
        os.close(master)
    return p.returncode, term, piped


def screen(raw: bytes, width: int = 100) -> list[str]:
    """The lines a terminal shows after ``raw``: enough of a VT100 for rich's live display
    (CR, LF, cursor up, erase line; colours and cursor visibility ignored)."""
    text = raw.decode("utf-8", errors="replace")
    lines, row, col = [""], 0, 0
    for tok in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]", text):
        if tok == "\r":
            col = 0
        elif tok == "\n":
            row += 1
            col = 0  # the pty turns \n into \r\n
            if row == len(lines):
                lines.append("")
        elif tok.startswith("\x1b["):
            code, arg = tok[-1], tok[2:-1]
            if code == "A":
                row = max(0, row - int(arg or 1))
            elif code == "K":
                lines[row] = "" if arg == "2" else lines[row][:col]
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + tok + line[col + 1:]
            col += 1
    return [ln.rstrip() for ln in lines]


def test_terminal_results_and_progress_never_share_a_line(clips, tiny_codec_dir):
    """stdout and stderr on one terminal: every token-stream line stands alone, the display
    had the total (a folder's size is known), the rate and the time left, and it is gone at
    the end."""
    code, raw, _ = run_on_terminal(["tokenize", clips, "--codec", tiny_codec_dir, "--batch-size", "1"])
    shown = screen(raw)
    assert code == 0, shown
    body = [ln for ln in shown if ln]
    assert body[-1] == f"soundtok: tokenized {N_CLIPS} item(s), {0.4 * N_CLIPS:.1f} s of audio", body
    stream = body[:-1]
    assert len(stream) == 1 + N_CLIPS, stream
    assert json.loads(stream[0])["type"] == "header"
    assert [json.loads(ln)["id"] for ln in stream[1:]] == [f"c{i}" for i in range(N_CLIPS)]
    text = raw.decode("utf-8", errors="replace")
    assert "loading the codec" in text  # the spinner while the model loads
    assert f"{N_CLIPS}/{N_CLIPS} items" in text and "eta " in text
    assert re.search(r"\d+\.\d (items/s|s/item)", text)  # the rate, whichever way it reads best
    assert "/?" not in text


def test_progress_on_terminal_stderr_while_stdout_is_piped(clips, tiny_codec_dir):
    code, raw, out = run_on_terminal(["tokenize", clips, "--codec", tiny_codec_dir], stdout_too=False)
    assert code == 0
    lines = out.decode().splitlines()
    assert len(lines) == 1 + N_CLIPS and all(json.loads(ln) for ln in lines)  # stdout: data only
    text = raw.decode("utf-8", errors="replace")
    assert f"{N_CLIPS}/{N_CLIPS} items" in text and "{" not in text  # no data on the terminal
    assert [ln for ln in screen(raw) if ln] == [f"soundtok: tokenized {N_CLIPS} item(s), "
                                                f"{0.4 * N_CLIPS:.1f} s of audio"]


def test_detokenize_refuses_to_write_audio_to_a_terminal(tmp_path, tiny_codec_dir, wav_file):
    stream = tmp_path / "c.tok.jsonl"
    assert cli("tokenize", wav_file, "--codec", tiny_codec_dir, "-o", stream).returncode == 0
    code, raw, _ = run_on_terminal(["detokenize", stream, "--codec", tiny_codec_dir])
    assert code == 2
    assert [ln for ln in screen(raw) if ln] == [
        "error: refusing to write binary audio to a terminal: redirect stdout (> out.wav, | play -) "
        "or give an OUTPUT file or folder"]


class _Terminal:
    """A stderr that says it is a terminal (for in-process runs of the CLI)."""

    def __init__(self, real):
        self._real = real

    def isatty(self):
        return True

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_training_shows_steps_of_all_stages(tmp_path, clips, monkeypatch):
    """train-codec counts the steps of every stage it runs (2 x 3 here) on one bar."""
    from conftest import TINY

    real_main = __import__("soundtok.cli", fromlist=["main"]).main

    def main(argv):
        sys.stderr = _Terminal(sys.stderr)
        real_main(argv)

    monkeypatch.setattr("soundtok.cli.main", main)
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("TERM", "xterm")
    r = cli("train-codec", clips, "-o", tmp_path / "run", "--config", json.dumps(TINY), "--batch", "2",
            "--steps", "2", "--device", "cpu", "--threads", "1")
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "6/6 steps" in err and "eta " in err, err
    assert "loading the audio" in err


def test_library_progress_counts(tmp_path, clips, tiny_codec_dir):
    """tokenize reports (done, total) from 0 to the total, counting failed and resumed items;
    detokenize counts a stream file's items first."""
    from soundtok.api import detokenize, tokenize

    manifest = tmp_path / "m.jsonl"
    rows = [{"path": str(clips / f"c{i}.wav")} for i in range(3)] + [{"path": str(tmp_path / "gone.wav")}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    calls = []
    out = tmp_path / "t.tok.jsonl"
    rep = tokenize([], str(out), codec=str(tiny_codec_dir), manifests=[str(manifest)], on_error=lambda m: None,
                   on_progress=lambda d, t: calls.append((d, t)))
    assert rep.ok == 3 and len(rep.failed) == 1
    assert calls[0] == (0, 4) and calls[-1] == (4, 4) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    calls.clear()
    tokenize([], str(out), codec=str(tiny_codec_dir), manifests=[str(manifest)], resume=True,
             on_error=lambda m: None, on_progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)  # 3 resumed + 1 failed
    calls.clear()
    detokenize(str(out), str(tmp_path / "dec") + "/", codec=str(tiny_codec_dir), steps=1,
               on_progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_llm_conversion_notice_in_a_pipe_unless_quiet(tmp_path, monkeypatch):
    """The first use of a GGUF LLM writes a cache; finetune-llm says so on stderr although
    stderr is not a terminal, once; -q silences it."""
    torch = pytest.importorskip("torch")  # noqa: F841
    pytest.importorskip("peft")
    from test_llm_finetune import TINY_LORA, tiny_header, write_stream

    from soundtok.llm import convert, load_llm, tiny_llm

    tiny = tiny_llm(tmp_path / "tiny", vocab_size=128)
    monkeypatch.setattr(convert, "_load_gguf", lambda path: load_llm(tiny, dtype="float32"))
    stream = write_stream(tmp_path / "train.tok.jsonl", tiny_header(), n=8)
    args = ["--max-steps", "1", "--batch-size", "4", "--warmup", "0", "--threads", "1", *TINY_LORA]
    for n, quiet in enumerate((False, True)):
        gguf = tmp_path / f"Fake{n}.gguf"  # a new GGUF each time: converted once each
        gguf.write_bytes(b"GGUF" + bytes([n]) * 60)
        monkeypatch.setenv("SOUNDTOK_CACHE", str(tmp_path / "cache"))
        r = cli("finetune-llm", stream, "-o", tmp_path / f"run{n}", "--llm", gguf, *args,
                *(["-q"] if quiet else []))
        assert r.returncode == 0, r.stderr
        err = r.stderr.decode().splitlines()
        if quiet:
            assert err == []
        else:
            assert len(err) == 1 and err[0].startswith(f"soundtok: converting fake{n} GGUF"), err
            assert str(tmp_path / "cache" / "llm") in err[0]
