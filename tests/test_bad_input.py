"""Bad-input matrix across all seven commands, as one parametrised test.

Each case runs one command (in process, through the real entry point and
error handler) on one kind of bad (or merely unusual) input and checks:

* the exit code documented in the README (0 ok, 1 failure, 2 usage error);
* on failure, exactly one line on stderr, starting ``error: `` and naming the
  problem; on success, nothing on stderr;
* nothing already written is lost: the output the command would write (a
  file or a run folder) was there before with other content, and a failed
  run leaves it as it was.

Inputs: wrong file types, empty files, huge headers, 1-sample audio, 48 kHz
stereo, 8-bit, mp3/ogg/flac, NaN audio; token streams truncated, reordered,
from another codec, with codes out of range, random bytes, a WAV file given
as a stream, header only; pickle-bearing weights; adapters for another LLM
or codec.  Random bytes are also fed through hypothesis below.  Tiny models.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TINY, cli, make_tiny_codec, synth

pytest.importorskip("peft")

SENTINEL = b"an earlier result that must survive\n"


class _Evil:
    """Unpickling this would run a shell command (it never must)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="session")
def W(tmp_path_factory, tiny_codec_dir):
    """Every input of the matrix, made once."""
    from test_llm_finetune import write_stream

    from soundtok.llm import tiny_llm
    from soundtok.registry import load_codec

    root = tmp_path_factory.mktemp("badinput")
    w = {"root": root, "codec": tiny_codec_dir, "marker": root / "PWNED"}
    a = root / "audio"
    a.mkdir()
    (a / "text.wav").write_text("hello, I am a text file, not audio\n")
    (a / "empty.wav").write_bytes(b"")
    (a / "huge.wav").write_bytes(b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE" + b"fmt "
                                 + struct.pack("<I", 0x7FFFFFF0) + b"\x01\x00" * 20)
    sf.write(a / "one.wav", np.array([0.5], np.float32), 16000)
    sf.write(a / "one48.wav", np.array([0.5], np.float32), 48000)
    sf.write(a / "st48.wav", np.stack([synth(1.0, 48000), synth(1.0, 48000, seed=1)], 1), 48000)
    sf.write(a / "u8.wav", synth(1.0), 16000, subtype="PCM_U8")
    sf.write(a / "a.mp3", synth(1.0), 16000, format="MP3")
    sf.write(a / "a.ogg", synth(1.0, 44100), 44100)
    sf.write(a / "a.flac", synth(1.0, 22050), 22050)
    x = synth(1.0)
    x[100] = np.nan
    sf.write(a / "nan.wav", x, 16000, subtype="FLOAT")
    sf.write(a / "ok.wav", synth(1.0, seed=3), 16000)
    mixed = root / "mixed"  # formats a training run must accept
    mixed.mkdir()
    for n in ("st48.wav", "u8.wav", "a.mp3", "a.ogg", "a.flac"):
        shutil.copy(a / n, mixed / n.replace(".", "_", 1) if n.startswith("a.") else mixed / n)
    # streams of the tiny codec (with text, so LLM commands can use them)
    header = load_codec(str(tiny_codec_dir)).header()
    s = root / "streams"
    s.mkdir()
    good = write_stream(s / "good.tok.jsonl", header, n=8)
    L = good.read_bytes().splitlines(keepends=True)
    (s / "one.tok.jsonl").write_bytes(L[0] + L[1])
    (s / "truncated.tok.jsonl").write_bytes(b"".join(L)[:-30])
    (s / "truncated1.tok.jsonl").write_bytes(L[0] + L[1][:-30])
    (s / "reordered.tok.jsonl").write_bytes(L[1] + L[0] + b"".join(L[2:]))
    item = json.loads(L[1])
    item["codes"][0][1] = 999
    (s / "range.tok.jsonl").write_bytes(L[0] + (json.dumps(item) + "\n").encode() + b"".join(L[2:]))
    (s / "random.tok.jsonl").write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
    (s / "empty.tok.jsonl").write_bytes(b"")
    (s / "header.tok.jsonl").write_bytes(L[0])
    (s / "huge.tok.jsonl").write_bytes(b'{"soundtok": 1, "type": "header", "codec": "' + b"x" * (20 << 20))
    shutil.copy(a / "ok.wav", s / "wav.tok.jsonl")
    ok = (a / "ok.wav").read_bytes()
    (a / "cut.wav").write_bytes(ok[:len(ok) // 2])  # cut off while copied: its header promises 1 s
    shutil.copy(good, a / "stream.wav")  # a token stream under an audio name
    other = root / "other_codec"
    make_tiny_codec(seed=9).save_pretrained(other)
    other_header = load_codec(str(other)).header()
    write_stream(s / "other.tok.jsonl", other_header, n=8)
    w.update(audio=a, mixed=mixed, streams=s, other_codec=other)
    # LLMs and adapters
    w["llm"] = tiny_llm(root / "llm", vocab_size=128)
    w["llm64"] = tiny_llm(root / "llm64", vocab_size=64)
    ft = ["--llm", w["llm"], "--max-steps", "1", "--batch-size", "4", "--warmup", "0", "--threads", "1",
          "--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0", "--task", "mixed"]
    for name, stream in (("adapter", good), ("adapter_other_codec", s / "other.tok.jsonl")):
        r = cli("finetune-llm", stream, "-o", root / name, *ft)
        assert r.returncode == 0, r.stderr
        w[name] = root / name / "final"
    # pickle-bearing weights, in every form a user could pass
    pk = root / "pickles"
    pk.mkdir()
    evil = pickle.dumps(_Evil(str(w["marker"])))
    for n in ("model.safetensors", "pytorch_model.bin", "model.pt"):
        (pk / n).write_bytes(evil)
    codec_pk = root / "codec_pickle"
    codec_pk.mkdir()
    (codec_pk / "config.json").write_text(json.dumps({"architecture": "soundtok-fm", **TINY}))
    (codec_pk / "model.safetensors").write_bytes(evil)
    adapter_pk = root / "adapter_pickle"
    shutil.copytree(w["adapter"], adapter_pk)
    for n in ("adapter_model.safetensors", "audio_embeddings.safetensors"):
        (adapter_pk / n).write_bytes(evil)
    (adapter_pk / "adapter_model.bin").write_bytes(evil)
    llm_pk = root / "llm_pickle"
    shutil.copytree(w["llm"], llm_pk)
    for f in llm_pk.glob("*.safetensors"):
        f.unlink()
    (llm_pk / "pytorch_model.bin").write_bytes(evil)
    w.update(pickles=pk, codec_pickle=codec_pk, adapter_pickle=adapter_pk, llm_pickle=llm_pk)
    # prompts and caption files
    (root / "prompts_empty.jsonl").write_text("")
    (root / "hyps.jsonl").write_text('{"id": "u0", "text": "someone says zero"}\n')
    return w


@dataclass
class Case:
    command: str
    name: str
    code: int
    needle: str = ""
    xfail: str | None = None

    @property
    def id(self) -> str:
        return f"{self.command}-{self.name}"


CASES = [
    # tokenize: audio inputs (-o out.jsonl held an earlier result)
    Case("tokenize", "text-file-as-wav", 1, "cannot decode"),
    Case("tokenize", "empty-file", 1, "the input is empty"),
    Case("tokenize", "huge-wav-header", 1, "cannot decode"),
    Case("tokenize", "one-sample-16k", 0),
    Case("tokenize", "one-sample-48k", 1, "too short"),
    Case("tokenize", "48k-stereo", 0),
    Case("tokenize", "8-bit", 0),
    Case("tokenize", "mp3", 0),
    Case("tokenize", "ogg-44k", 0),
    Case("tokenize", "flac-22k", 0),
    Case("tokenize", "nan", 1, "NaN or infinite"),
    Case("tokenize", "manifest-random-bytes", 2, "manifest"),
    Case("tokenize", "token-stream-as-input", 2, "this is a token stream, not audio"),
    Case("tokenize", "token-stream-named-wav", 1, "this is a token stream, not audio"),
    Case("tokenize", "truncated-wav", 1, "truncated WAV file: it holds 0.50 s of the 1.00 s"),
    Case("tokenize", "codec-pickle-file", 1, "not a codec directory"),
    Case("tokenize", "codec-dir-pickle-weights", 1, "cannot load codec"),
    Case("tokenize", "codec-is-an-adapter", 1, "not a codec directory"),
    Case("tokenize", "resume-other-codec-file", 2, "other settings"),
    # detokenize: token streams (out.wav, or a folder, held an earlier result)
    Case("detokenize", "truncated", 1, "truncated"),
    Case("detokenize", "truncated-into-folder", 1, "truncated"),
    Case("detokenize", "reordered", 1, "first line is not a soundtok token stream header"),
    Case("detokenize", "other-codec", 1, "codec mismatch"),
    Case("detokenize", "code-out-of-range", 1, "out of range"),
    Case("detokenize", "random-bytes", 1, ""),
    Case("detokenize", "wav-as-stream", 1, "this is audio (WAV), not a token stream"),
    Case("detokenize", "empty", 1, "empty token stream"),
    Case("detokenize", "huge-header", 1, "truncated"),
    Case("detokenize", "header-only", 1, "no items"),
    Case("detokenize", "codec-pickle-file", 1, "not a codec directory"),
    # train-codec (-o RUN held an earlier file)
    Case("train-codec", "text-files", 1, "no usable training audio"),
    Case("train-codec", "empty-file", 1, "no usable training audio"),
    Case("train-codec", "nan", 1, "no usable training audio"),
    Case("train-codec", "mp3-ogg-flac-8bit-48k-stereo", 0),
    Case("train-codec", "init-from-pickle-bin", 1, "not a codec directory"),
    Case("train-codec", "init-from-pickle-weights", 1, "cannot load codec"),
    Case("train-codec", "init-from-an-adapter", 1, "not a codec directory"),
    # finetune-llm (-o RUN held an earlier file)
    Case("finetune-llm", "truncated", 1, "truncated"),
    Case("finetune-llm", "random-bytes", 1, "not valid UTF-8"),
    Case("finetune-llm", "wav-as-stream", 1, "this is audio (WAV), not a token stream"),
    Case("finetune-llm", "empty", 1, "empty"),
    Case("finetune-llm", "code-out-of-range", 1, "out of range"),
    Case("finetune-llm", "reordered", 1, "neither a token stream"),
    Case("finetune-llm", "init-adapter-other-codec", 1, "another codec"),
    Case("finetune-llm", "init-adapter-other-llm", 1, "trained for LLM"),
    Case("finetune-llm", "init-adapter-pickle", 1, "deserializing"),
    Case("finetune-llm", "llm-dir-pickle-only", 1, "no *.safetensors weights"),
    Case("finetune-llm", "llm-pickle-file", 1, "not a GGUF file"),
    # caption (stdout only)
    Case("caption", "other-codec", 1, "codec mismatch"),
    Case("caption", "adapter-for-other-codec", 1, "codec mismatch"),
    Case("caption", "adapter-for-other-llm", 1, "trained for LLM"),
    Case("caption", "truncated", 1, "truncated"),
    Case("caption", "reordered", 1, "first line is not"),
    Case("caption", "code-out-of-range", 1, "out of range"),
    Case("caption", "random-bytes", 1, ""),
    Case("caption", "wav-as-stream", 1, "this is audio (WAV), not a token stream"),
    Case("caption", "empty", 1, "empty token stream"),
    Case("caption", "adapter-pickle", 1, "cannot load LoRA adapter"),
    Case("caption", "adapter-is-a-file", 1, "no such adapter directory"),
    Case("caption", "llm-dir-pickle-only", 1, "no *.safetensors weights"),
    # generate (-o out.jsonl held an earlier result)
    Case("generate", "adapter-for-other-llm", 1, "trained for LLM"),
    Case("generate", "adapter-pickle", 1, "cannot load LoRA adapter"),
    Case("generate", "prompts-random-bytes", 2, "not valid UTF-8"),
    Case("generate", "prompts-empty", 2, "no prompts"),
    Case("generate", "prompts-wav-file", 2, "this is audio (WAV), not prompts"),
    # evaluate
    Case("evaluate", "recon-text-file", 1, "cannot decode"),
    Case("evaluate", "recon-empty-file", 1, "the input is empty"),
    Case("evaluate", "recon-nan", 1, "NaN"),
    Case("evaluate", "recon-48k-stereo", 0),
    Case("evaluate", "recon-truncated-wav", 1, "truncated WAV"),
    Case("evaluate", "recon-tokens-truncated", 1, "truncated"),
    Case("evaluate", "recon-tokens-random-bytes", 1, ""),
    Case("evaluate", "caption-random-bytes", 2, "not valid UTF-8"),
    Case("evaluate", "caption-wav-file", 2, "this is audio (WAV), not captions"),
    Case("evaluate", "fewshot-not-llm-codec", 1, "not an llm-codec"),
    Case("evaluate", "fewshot-empty", 1, "empty token stream"),
]


def build(case: Case, w: dict, out: Path) -> tuple[list, Path | None]:
    """argv for ``case`` and the output that must survive a failure (or None)."""
    a, s = w["audio"], w["streams"]
    codec = ["--codec", w["codec"]]
    if case.command == "tokenize":
        target = out / "out.jsonl"
        inputs = {"text-file-as-wav": a / "text.wav", "empty-file": a / "empty.wav",
                  "huge-wav-header": a / "huge.wav", "one-sample-16k": a / "one.wav",
                  "one-sample-48k": a / "one48.wav", "48k-stereo": a / "st48.wav", "8-bit": a / "u8.wav",
                  "mp3": a / "a.mp3", "ogg-44k": a / "a.ogg", "flac-22k": a / "a.flac", "nan": a / "nan.wav",
                  "manifest-random-bytes": s / "random.tok.jsonl", "token-stream-as-input": s / "good.tok.jsonl",
                  "token-stream-named-wav": a / "stream.wav", "truncated-wav": a / "cut.wav"}
        if case.name in inputs:
            return ["tokenize", inputs[case.name], *codec, "-o", target], target
        if case.name == "codec-pickle-file":
            return ["tokenize", a / "ok.wav", "--codec", w["pickles"] / "model.pt", "-o", target], target
        if case.name == "codec-dir-pickle-weights":
            return ["tokenize", a / "ok.wav", "--codec", w["codec_pickle"], "-o", target], target
        if case.name == "codec-is-an-adapter":
            return ["tokenize", a / "ok.wav", "--codec", w["adapter"], "-o", target], target
        if case.name == "resume-other-codec-file":
            shutil.copy(s / "other.tok.jsonl", target)
            return ["tokenize", a / "ok.wav", *codec, "-o", target, "--resume"], target
    if case.command == "detokenize":
        target = out / "out.wav"
        streams = {"truncated": "truncated1", "reordered": "reordered", "other-codec": "other",
                   "code-out-of-range": "range", "random-bytes": "random", "wav-as-stream": "wav",
                   "empty": "empty", "huge-header": "huge", "header-only": "header"}
        if case.name in streams:
            return ["detokenize", s / f"{streams[case.name]}.tok.jsonl", target, *codec, "--steps", "1"], target
        if case.name == "truncated-into-folder":
            folder = out / "dec"
            folder.mkdir()
            return ["detokenize", s / "truncated.tok.jsonl", f"{folder}/", *codec, "--steps", "1"], folder
        if case.name == "codec-pickle-file":
            return ["detokenize", s / "one.tok.jsonl", target, "--codec", w["pickles"] / "pytorch_model.bin"], target
    if case.command == "train-codec":
        run = out / "run"
        run.mkdir()
        tiny = ["--config", json.dumps(TINY), "--steps", "1", "--batch", "2", "--threads", "1", "--stage", "vae"]
        data = {"text-files": a / "text.wav", "empty-file": a / "empty.wav", "nan": a / "nan.wav",
                "mp3-ogg-flac-8bit-48k-stereo": w["mixed"]}
        if case.name in data:
            return ["train-codec", data[case.name], "-o", run, *tiny], run
        init = {"init-from-pickle-bin": w["pickles"] / "pytorch_model.bin",
                "init-from-pickle-weights": w["codec_pickle"], "init-from-an-adapter": w["adapter"]}
        return ["train-codec", w["mixed"], "-o", run, "--init-from", init[case.name], "--steps", "1",
                "--batch", "2", "--threads", "1", "--stage", "vae"], run
    if case.command == "finetune-llm":
        run = out / "run"
        run.mkdir()
        ft = ["--max-steps", "1", "--batch-size", "4", "--threads", "1", "--lora-r", "4", "--lora-alpha", "8"]
        streams = {"truncated": "truncated", "random-bytes": "random", "wav-as-stream": "wav", "empty": "empty",
                   "code-out-of-range": "range", "reordered": "reordered"}
        if case.name in streams:
            return ["finetune-llm", s / f"{streams[case.name]}.tok.jsonl", "-o", run, "--llm", w["llm"], *ft], run
        good = s / "good.tok.jsonl"
        extra = {"init-adapter-other-codec": ["--llm", w["llm"], "--init-adapter", w["adapter_other_codec"]],
                 "init-adapter-other-llm": ["--llm", w["llm64"], "--init-adapter", w["adapter"]],
                 "init-adapter-pickle": ["--llm", w["llm"], "--init-adapter", w["adapter_pickle"]],
                 "llm-dir-pickle-only": ["--llm", w["llm_pickle"]],
                 "llm-pickle-file": ["--llm", w["pickles"] / "pytorch_model.bin"]}[case.name]
        return ["finetune-llm", good, "-o", run, *ft, *extra], run
    if case.command == "caption":
        ad = ["--adapter", w["adapter"], "--max-new-tokens", "2", "--threads", "1"]
        streams = {"other-codec": "other", "truncated": "truncated", "reordered": "reordered",
                   "code-out-of-range": "range", "random-bytes": "random", "wav-as-stream": "wav", "empty": "empty"}
        if case.name in streams:
            return ["caption", s / f"{streams[case.name]}.tok.jsonl", *ad], None
        good = s / "good.tok.jsonl"
        extra = {"adapter-for-other-codec": ["--adapter", w["adapter_other_codec"]],
                 "adapter-for-other-llm": ["--adapter", w["adapter"], "--llm", w["llm64"]],
                 "adapter-pickle": ["--adapter", w["adapter_pickle"]],
                 "adapter-is-a-file": ["--adapter", w["pickles"] / "model.pt"],
                 "llm-dir-pickle-only": ["--adapter", w["adapter"], "--llm", w["llm_pickle"]]}[case.name]
        return ["caption", good, *extra, "--max-new-tokens", "2", "--threads", "1"], None
    if case.command == "generate":
        target = out / "gen.jsonl"
        base = ["generate", "-o", target, "--duration", "0.3", "--threads", "1"]
        extra = {"adapter-for-other-llm": ["a dog", "--adapter", w["adapter"], "--llm", w["llm64"]],
                 "adapter-pickle": ["a dog", "--adapter", w["adapter_pickle"]],
                 "prompts-random-bytes": ["--prompts", s / "random.tok.jsonl", "--adapter", w["adapter"]],
                 "prompts-empty": ["--prompts", w["root"] / "prompts_empty.jsonl", "--adapter", w["adapter"]],
                 "prompts-wav-file": ["--prompts", a / "ok.wav", "--adapter", w["adapter"]]}[case.name]
        return [*base, *extra], target
    if case.command == "evaluate":
        recon = ["--json", "--no-dnsmos", "--no-asr", "--no-speaker", "--threads", "1"]
        refs = {"recon-text-file": a / "text.wav", "recon-empty-file": a / "empty.wav", "recon-nan": a / "nan.wav",
                "recon-48k-stereo": a / "st48.wav", "recon-truncated-wav": a / "cut.wav"}
        if case.name in refs:
            return ["evaluate", "recon", refs[case.name], *codec, "--steps", "1", *recon], None
        if case.name.startswith("recon-tokens"):
            stream = s / ("truncated.tok.jsonl" if "truncated" in case.name else "random.tok.jsonl")
            deg = out / "deg"
            deg.mkdir()
            shutil.copy(a / "ok.wav", deg / "ok.wav")
            return ["evaluate", "recon", a / "ok.wav", "--deg", deg, "--tokens", stream, *recon], None
        if case.name == "caption-random-bytes":
            return ["evaluate", "caption", s / "random.tok.jsonl", s / "good.tok.jsonl", "--json",
                    "--no-embedding"], None
        if case.name == "caption-wav-file":
            return ["evaluate", "caption", a / "ok.wav", s / "good.tok.jsonl", "--json", "--no-embedding"], None
        if case.name == "fewshot-not-llm-codec":
            return ["evaluate", "fewshot", s / "good.tok.jsonl", "--llm", w["llm"], "--episodes", "1",
                    "--json"], None
        if case.name == "fewshot-empty":
            return ["evaluate", "fewshot", s / "empty.tok.jsonl", "--llm", w["llm"], "--episodes", "1",
                    "--json"], None
    raise AssertionError(f"no such case {case.id}")


def _snapshot(path: Path | None) -> dict[str, bytes] | None:
    if path is None:
        return None
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return {"": path.read_bytes()}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)]
                                               if c.xfail else []) for c in CASES])
def test_bad_input(case: Case, W, tmp_path):
    argv, protect = build(case, W, tmp_path)
    if protect is not None:  # an earlier result where the command writes
        if protect.is_dir():
            (protect / "earlier.txt").write_bytes(SENTINEL)
        elif not protect.exists():
            protect.write_bytes(SENTINEL)
    before = _snapshot(protect)
    r = cli(*argv)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == case.code, err
    if case.code == 0:
        assert err == ""
        return
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and case.needle in err, err
    if protect is not None:
        after = _snapshot(protect)
        if protect.is_dir():  # files may be added (logs, decoded items), none changed or lost
            assert all(after.get(k) == v for k, v in before.items()), sorted(after)
        else:
            assert after == before
    assert not W["marker"].exists()  # no pickle was ever loaded


# --------------------------------------------------------------------------- random bytes (hypothesis)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=3000) | st.builds(lambda b: b'{"soundtok": 1, "type": "header"' + b,
                                                  st.binary(max_size=200)))
def test_random_bytes_as_token_stream(W, tmp_path_factory, data):
    """Any bytes given as a token stream: exit 1 and one error line, for every reader."""
    f = tmp_path_factory.mktemp("rnd") / "r.tok.jsonl"
    f.write_bytes(data)
    for argv in (["detokenize", f, f.with_suffix(".wav"), "--codec", W["codec"], "--steps", "1"],
                 ["caption", f, "--adapter", W["adapter"], "--max-new-tokens", "1"],
                 ["finetune-llm", f, "-o", f.parent / "run", "--llm", W["llm"], "--max-steps", "1"]):
        r = cli(*argv)
        err = r.stderr.decode(errors="replace")
        assert r.returncode in (1, 2) and err.count("\n") == 1 and err.startswith("error: "), (argv[0], err)
        assert not f.with_suffix(".wav").exists()
