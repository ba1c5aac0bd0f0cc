"""The shipped shell completions match what the app generates now, and the app answers them."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, cli


def test_completions_are_current():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_completions.py"), "--check"],
                       capture_output=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr.decode()


def test_completion_scripts_call_the_app():
    # each shipped script asks `soundtok` itself, through the variable the app answers to
    for name, shell in (("soundtok.bash", "bash"), ("_soundtok", "zsh"), ("soundtok.fish", "fish")):
        text = (ROOT / "completions" / name).read_text()
        assert f"_SOUNDTOK_COMPLETE=complete_{shell}" in text, name


def _complete(monkeypatch, words: str, cword: int) -> list[str]:
    """What bash's completion function gets back from the app (the completions/ protocol)."""
    monkeypatch.setenv("_SOUNDTOK_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(cword))
    r = cli()
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().split()


def test_completion_lists_subcommands(monkeypatch):
    names = _complete(monkeypatch, "soundtok ", 1)
    for cmd in ("tokenize", "detokenize", "train-codec", "finetune-llm", "caption", "generate",
                "evaluate", "cache"):
        assert cmd in names
    assert _complete(monkeypatch, "soundtok tokenize --ch", 2) == ["--chunk-seconds"]
    assert _complete(monkeypatch, "soundtok evaluate re", 2) == ["recon"]
