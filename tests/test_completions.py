"""The shipped shell completions match what the app generates now."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_completions_are_current():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_completions.py"), "--check"],
                       capture_output=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr.decode()


def test_completion_lists_subcommands(monkeypatch):
    from click.shell_completion import ShellComplete

    from soundtok.cli import app

    comp = ShellComplete(app, {}, "soundtok", "_SOUNDTOK_COMPLETE")
    names = [c.value for c in comp.get_completions([], "")]
    for cmd in ("tokenize", "detokenize", "train-codec"):
        assert cmd in names
    opts = [c.value for c in comp.get_completions(["tokenize"], "--ch")]
    assert opts == ["--chunk-seconds"]
