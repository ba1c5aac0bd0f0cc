"""Security: models load from safetensors + JSON only (no pickle, no remote
code); pickle-bearing files given to --codec, --init-from, --adapter,
--init-adapter and --llm are refused with one line and never unpickled;
manifest paths are used as given, never expanded or run by a shell."""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf
from conftest import ROOT, TINY, cli, synth

PACKAGE = ROOT / "soundtok"


def _sources() -> list[tuple[Path, ast.AST]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))]


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


# --------------------------------------------------------------------------- static checks


def _weights_only(node: ast.Call) -> bool:
    """``torch.load(..., weights_only=True)``: torch's restricted unpickler, which builds
    only tensors and plain containers (no code runs). Allowed for third-party weights that
    exist only as .pt files (resemblyzer's speaker encoder, a metric)."""
    return any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
               for k in node.keywords)


def test_no_pickle_based_loading_in_the_package():
    """No torch.load (except weights_only=True) / pickle / marshal / unsafe yaml /
    np.load(allow_pickle) anywhere."""
    banned_calls = {"torch.load", "pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.load",
                    "marshal.loads", "joblib.load", "dill.load", "dill.loads", "cloudpickle.load",
                    "torch.jit.load", "yaml.load", "yaml.unsafe_load", "shelve.open"}
    banned_modules = {"pickle", "dill", "joblib", "cloudpickle", "marshal", "shelve"}
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                if (name in banned_calls or name.endswith((".torch.load", "torch_load"))) and not (
                        name == "torch.load" and _weights_only(node)):
                    found.append(f"{path}:{node.lineno} {name}()")
                if name.split(".")[-1] == "load" and name.startswith(("np.", "numpy.")) and any(
                        k.arg == "allow_pickle" for k in node.keywords):
                    found.append(f"{path}:{node.lineno} {name}(allow_pickle=...)")
            if isinstance(node, ast.Import):
                found += [f"{path}:{node.lineno} import {a.name}" for a in node.names
                          if a.name.split(".")[0] in banned_modules]
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in banned_modules:
                found.append(f"{path}:{node.lineno} from {node.module} import ...")
    assert not found, found


def test_trust_remote_code_is_always_false():
    uses = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                uses.append((path, node.lineno, node.value))
            if isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values):
                    if isinstance(k, ast.Constant) and k.value == "trust_remote_code":
                        uses.append((path, k.lineno, v))
    assert uses  # the loader passes it explicitly
    bad = [f"{p}:{n}" for p, n, v in uses if not (isinstance(v, ast.Constant) and v.value is False)]
    assert not bad, bad


def test_no_shell_and_no_eval():
    """Nothing is run through a shell, and no code is built from strings."""
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _dotted(node.func)
            bare = isinstance(node.func, ast.Name)  # eval(...), not module.eval()
            if (bare and name in {"eval", "exec", "compile", "__import__"}) or name in {
                    "os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"}:
                found.append(f"{path}:{node.lineno} {name}()")
            for k in node.keywords:
                if k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False):
                    found.append(f"{path}:{node.lineno} shell=")
            if name.startswith("subprocess.") and node.args and isinstance(node.args[0], (ast.Constant,
                                                                                          ast.JoinedStr)):
                found.append(f"{path}:{node.lineno} {name}(a command string)")
    assert not found, found


def test_model_files_are_read_with_safetensors_and_json():
    """Every loader of weights names safetensors (or GGUF, a non-executable format)."""
    text = {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")}
    for model in ("codec/model.py", "llmcodec/model.py"):
        assert "load_file" in text[model] and "safetensors" in text["modelfiles.py"] + text[model]
    loader = (PACKAGE / "llm" / "loader.py").read_text()
    assert "use_safetensors=True" in loader
    assert "other weight formats are not loaded" in loader


# --------------------------------------------------------------------------- pickles are refused


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def evil(tmp_path_factory, tiny_codec_dir):
    pytest.importorskip("peft")
    from test_llm_finetune import write_stream

    from soundtok.llm import tiny_llm
    from soundtok.registry import load_codec

    root = tmp_path_factory.mktemp("evil")
    marker = root / "PWNED"
    payload = pickle.dumps(_Evil(str(marker)))
    files = root / "files"
    files.mkdir()
    for n in ("model.safetensors", "pytorch_model.bin", "model.pt"):
        (files / n).write_bytes(payload)
    codec_dir = root / "codec"  # a codec directory whose weights are a pickle
    codec_dir.mkdir()
    (codec_dir / "config.json").write_text(json.dumps({"architecture": "soundtok-fm", **TINY}))
    (codec_dir / "model.safetensors").write_bytes(payload)
    llm = tiny_llm(root / "llm", vocab_size=128)
    stream = write_stream(root / "s.tok.jsonl", load_codec(str(tiny_codec_dir)).header(), n=8)
    r = cli("finetune-llm", stream, "-o", root / "run", "--llm", llm, "--max-steps", "1", "--batch-size", "4",
            "--threads", "1", "--lora-r", "4", "--lora-alpha", "8")
    assert r.returncode == 0, r.stderr
    adapter = root / "adapter"  # an adapter whose weights are pickles
    shutil.copytree(root / "run" / "final", adapter)
    for n in ("adapter_model.safetensors", "audio_embeddings.safetensors"):
        (adapter / n).write_bytes(payload)
    bin_only = root / "adapter_bin"  # LoRA weights only as adapter_model.bin (a pickle)
    shutil.copytree(root / "run" / "final", bin_only)
    (bin_only / "adapter_model.safetensors").unlink()
    (bin_only / "adapter_model.bin").write_bytes(payload)
    llm_bin = root / "llm_bin"
    shutil.copytree(llm, llm_bin)
    for f in llm_bin.glob("*.safetensors"):
        f.unlink()
    (llm_bin / "pytorch_model.bin").write_bytes(payload)
    wav = root / "a.wav"
    sf.write(wav, synth(0.5), 16000)
    return {"root": root, "marker": marker, "files": files, "codec_dir": codec_dir, "llm": llm, "stream": stream,
                "adapter": adapter, "bin_only": bin_only, "llm_bin": llm_bin, "wav": wav,
                "good_adapter": root / "run" / "final"}


def _argv(kind: str, target: str, e: dict) -> list:
    out = e["root"] / "out"
    return {
        "tokenize --codec": ["tokenize", e["wav"], "--codec", target, "-o", out / "t.jsonl"],
        "detokenize --codec": ["detokenize", e["stream"], f"{out}/", "--codec", target],
        "train-codec --init-from": ["train-codec", e["wav"], "-o", out / "run", "--init-from", target,
                                    "--steps", "1", "--stage", "vae"],
        "caption --adapter": ["caption", e["stream"], "--adapter", target],
        "generate --adapter": ["generate", "a dog", "--adapter", target],
        "finetune-llm --init-adapter": ["finetune-llm", e["stream"], "-o", out / "ft", "--llm", e["llm"],
                                        "--init-adapter", target, "--lora-r", "4", "--lora-alpha", "8",
                                        "--max-steps", "1"],
        "finetune-llm --llm": ["finetune-llm", e["stream"], "-o", out / "ft", "--llm", target, "--max-steps", "1"],
        "caption --llm": ["caption", e["stream"], "--adapter", e["good_adapter"], "--llm", target],
    }[kind]


PICKLE_CASES = [
    ("tokenize --codec", "files/model.safetensors"), ("tokenize --codec", "files/pytorch_model.bin"),
    ("tokenize --codec", "files/model.pt"), ("tokenize --codec", "codec_dir"),
    ("detokenize --codec", "files/pytorch_model.bin"), ("detokenize --codec", "codec_dir"),
    ("train-codec --init-from", "files/model.safetensors"), ("train-codec --init-from", "files/model.pt"),
    ("train-codec --init-from", "codec_dir"),
    ("caption --adapter", "adapter"), ("caption --adapter", "bin_only"), ("caption --adapter", "files/model.pt"),
    ("generate --adapter", "adapter"), ("generate --adapter", "bin_only"),
    ("finetune-llm --init-adapter", "adapter"),
    ("finetune-llm --llm", "llm_bin"), ("finetune-llm --llm", "files/pytorch_model.bin"),
    ("finetune-llm --llm", "files/model.pt"), ("caption --llm", "llm_bin"),
]


@pytest.mark.parametrize("kind,what", PICKLE_CASES, ids=[f"{k}={w}" for k, w in PICKLE_CASES])
def test_pickle_bearing_files_are_refused(evil, kind, what):
    target = str(evil["root"] / what) if "/" in what else str(evil[what])
    r = cli(*_argv(kind, target, evil))
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert not evil["marker"].exists()  # the payload never ran


def test_a_bin_only_adapter_is_not_loaded(evil, tmp_path):
    import torch
    from safetensors.torch import load_file

    d = tmp_path / "adapter"
    shutil.copytree(evil["good_adapter"], d)
    weights = load_file(str(d / "adapter_model.safetensors"))
    (d / "adapter_model.safetensors").unlink()
    torch.save(weights, d / "adapter_model.bin")  # a well-formed torch pickle
    r = cli("caption", evil["stream"], "--adapter", d, "--max-new-tokens", "1")
    assert r.returncode == 1 and b"safetensors" in r.stderr


# --------------------------------------------------------------------------- manifest paths


def test_manifest_paths_are_used_as_given(tiny_codec_dir, tmp_path):
    """Shell syntax, ~, $VARS and glob characters in manifest paths are plain
    characters of a file name: nothing is run, expanded or globbed."""
    marker = tmp_path / "PWNED"
    sf.write(tmp_path / "c1.wav", synth(0.3), 16000)
    literal = tmp_path / "$(touch PWNED) `touch PWNED`; touch PWNED.wav"
    sf.write(literal, synth(0.3, seed=1), 16000)  # a file really named like that
    names = [f"$(touch {marker}).wav", f"`touch {marker}`.wav", f"x.wav; touch {marker}", "~/c1.wav",
             "$HOME/c1.wav", "c*.wav", "-rf.wav", f"| touch {marker}"]
    rows = [{"path": n, "id": f"bad{i}"} for i, n in enumerate(names)] + [{"path": literal.name, "id": "lit"}]
    man = tmp_path / "m.jsonl"
    man.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o.jsonl"
    r = cli("tokenize", "--manifest", man, "--codec", tiny_codec_dir, "-o", out, "--workers", "1")
    assert r.returncode == 1
    err = r.stderr.decode().splitlines()
    for n in names:  # each reported missing under its literal name, next to the manifest
        assert f"error: no such file: {tmp_path / n}" in err, (n, err)
    assert err[-1] == f"error: {len(names)} of {len(names) + 1} inputs failed (listed above)"
    items = [json.loads(x) for x in out.read_text().splitlines()[1:]]
    assert [i["id"] for i in items] == ["lit"] and items[0]["source"] == str(literal)
    assert not marker.exists() and not (tmp_path / "PWNED").exists()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_ffmpeg_fallback_gets_the_name_as_one_argument(tiny_codec_dir, tmp_path):
    """A file only ffmpeg can decode, named with shell syntax and a leading dash."""
    marker = tmp_path / "PWNED"
    src = tmp_path / "src.wav"
    sf.write(src, synth(0.5), 16000)
    name = tmp_path / f"-y $(touch {marker.name}); touch {marker.name}.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(src), "-c:a", "aac", "-f", "mp4", "file:" + str(name)],
                   check=True, stdin=subprocess.DEVNULL, cwd=tmp_path)
    man = tmp_path / "m.jsonl"
    man.write_text(json.dumps({"path": name.name, "id": "m4a"}) + "\n")
    r = cli("tokenize", man, "--codec", tiny_codec_dir, "-o", tmp_path / "o.jsonl")
    assert r.returncode == 0, r.stderr
    assert not marker.exists()
