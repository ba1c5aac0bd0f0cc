"""Generate shell completions for bash, zsh and fish from the CLI itself.

    python scripts/make_completions.py          # write completions/
    python scripts/make_completions.py --check  # exit 1 if completions/ is stale

Each script is what the app prints for ``_SOUNDTOK_COMPLETE=source_<shell> soundtok``
(typer's completion support; ``soundtok --show-completion`` prints the one for the
current shell), so the files always match the app.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = {"bash": "soundtok.bash", "zsh": "_soundtok", "fish": "soundtok.fish"}


def render(shell: str) -> str:
    env = {**os.environ, "_SOUNDTOK_COMPLETE": f"source_{shell}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "soundtok"], env=env, capture_output=True, text=True,
                       check=True)
    return r.stdout


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
