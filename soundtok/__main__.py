"""``python -m soundtok`` runs the command-line interface."""

from soundtok.cli import main

if __name__ == "__main__":
    main()
