"""Generate shell completions for bash, zsh and fish from the CLI itself.

    python scripts/make_completions.py          # write completions/
    python scripts/make_completions.py --check  # exit 1 if completions/ is stale

Uses click's completion machinery (the same scripts that
``_SOUNDTOK_COMPLETE=bash_source soundtok`` prints), so they always match the app.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from click.shell_completion import get_completion_class

from soundtok.cli import app

ROOT = Path(__file__).resolve().parents[1]
FILES = {"bash": "soundtok.bash", "zsh": "_soundtok", "fish": "soundtok.fish"}


def render(shell: str) -> str:
    cls = get_completion_class(shell)
    return cls(app, {}, "soundtok", "_SOUNDTOK_COMPLETE").source()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    stale = []
    for shell, name in FILES.items():
        path = ROOT / "completions" / name
        text = render(shell)
        if a.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale completions (run `make completions`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
