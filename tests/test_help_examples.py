"""Every example shown by every command's ``--help`` parses: the app's own parser reads it
(types, ranges, choices, required arguments, unknown flags) without running the command,
so the examples cannot drift from the flags."""

from __future__ import annotations

import shlex

import pytest
import typer
from conftest import cli

from soundtok.cli import app


def _paths(cmd, path=()):
    """Every command path of the app: (), ("tokenize",), ("evaluate", "recon"), ..."""
    yield path
    if hasattr(cmd, "list_commands"):
        with cmd.make_context("soundtok", [], resilient_parsing=True) as ctx:
            for name in cmd.list_commands(ctx):
                yield from _paths(cmd.get_command(ctx, name), (*path, name))


PATHS = list(_paths(typer.main.get_command(app)))


def _examples(help_text: str) -> list[str]:
    """The lines of the "Examples:" block of a help text (shell command lines)."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Examples:")
    indent = len(lines[start]) - len(lines[start].lstrip())
    out = []
    for line in lines[start + 1:]:
        if not line.strip() or len(line) - len(line.lstrip()) <= indent:
            break
        out.append(line.strip())
    return out


def _soundtok_calls(example: str) -> list[list[str]]:
    """The argument lists given to soundtok in one shell line (pipes, redirections, ``-m soundtok``
    under torchrun included)."""
    lex = shlex.shlex(example, posix=True, punctuation_chars="|&;<>")
    lex.whitespace_split = True
    tokens = list(lex)
    calls, segment = [], []
    for tok in [*tokens, "|"]:
        if tok in ("|", "||", "&&", ";"):
            if "soundtok" in segment:
                args = segment[segment.index("soundtok") + 1:]
                calls.append(args)
            segment = []
        elif segment and segment[-1] in (">", "<", ">>"):
            segment[-1:] = []  # a redirection and its target are the shell's, not soundtok's
        else:
            segment.append(tok)
    return calls


def _parse(args: list[str]) -> None:
    """Parse ``soundtok ARGS`` down to the leaf command, raising the app's usage errors."""
    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("soundtok", list(args))
    while hasattr(cmd, "resolve_command"):
        rest = [*ctx._protected_args, *ctx.args]
        assert rest, f"no subcommand in {args}"
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        ctx = cmd.make_context(name, rest, parent=ctx)


def test_every_command_is_listed():
    names = {p[0] for p in PATHS if p}
    assert names == {"tokenize", "detokenize", "train-codec", "finetune-llm", "caption", "generate",
                     "evaluate", "cache"}
    assert {p for p in PATHS if len(p) == 2} == {("evaluate", "recon"), ("evaluate", "caption"),
                                                 ("evaluate", "fewshot")}


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "soundtok")
def test_help_examples_parse(path):
    r = cli(*path, "--help")
    assert r.returncode == 0, r.stderr
    examples = _examples(r.stdout.decode())
    assert examples, f"soundtok {' '.join(path)} --help shows no examples"
    calls = [call for ex in examples for call in _soundtok_calls(ex)]
    # every example runs soundtok, and the command's own examples include the command itself
    assert all(_soundtok_calls(ex) for ex in examples), examples
    assert any(call[:len(path)] == list(path) for call in calls), (path, examples)
    for call in calls:
        try:
            _parse(call)
        except typer.Exit:  # --help, --version: parsed
            pass
        except Exception as e:
            msg = e.format_message() if hasattr(e, "format_message") else str(e)
            pytest.fail(f"example `soundtok {shlex.join(call)}` does not parse: {msg}")


def test_a_broken_example_is_caught():
    # the checker itself: an unknown flag, a bad choice and a value out of range are all refused
    for bad in ("soundtok tokenize clip.wav --bogus", "soundtok detokenize x.jsonl - --decoder nope",
                "soundtok caption s.jsonl --top-p 2", "soundtok evaluate recon", "soundtok nosuch"):
        (call,) = _soundtok_calls(bad)
        with pytest.raises(typer.TyperException):
            _parse(call)
    assert _soundtok_calls("cat a.wav | soundtok tokenize - > out.jsonl") == [["tokenize", "-"]]
    assert _soundtok_calls("torchrun --nproc_per_node 4 -m soundtok caption x") == [["caption", "x"]]
