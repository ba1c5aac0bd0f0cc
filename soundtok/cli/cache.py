"""``soundtok cache``: the files soundtok derives on first use -- where, how big; clear them."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .options import APP_SETTINGS, Json

app = typer.Typer(**APP_SETTINGS)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}" if n < 10 * scale else f"{n / scale:.1f} {unit}"
    return f"{n} B"


@app.command("cache")
def command(
    kind: Annotated[str | None, typer.Argument(
        metavar="KIND", show_default=False,
        help="Only this kind: llm (converted LLMs) or whisper (joined Whisper weights).")] = None,
    clear: Annotated[bool, typer.Option(
        "--clear", help="Delete the cache (or its KIND) instead of listing it.")] = False,
    as_json: Json = False,
):
    """List the caches of derived files (LLMs converted to safetensors, joined
    Whisper weights) with their sizes and the cache root; --clear [KIND]
    deletes them (all, or one kind).

    The root is $SOUNDTOK_CACHE if set, else $XDG_CACHE_HOME/soundtok, else
    ~/.cache/soundtok. Everything in it can be deleted at any time: it is
    rebuilt when next needed. Only what soundtok made is deleted: a root that
    holds other folders named llm, adapters or whisper keeps what is yours.

    \b
    Examples:
      soundtok cache
      soundtok cache llm --json | jq -r 'select(.type=="entry") | .path'
      soundtok cache --clear llm
      SOUNDTOK_CACHE=/scratch/soundtok soundtok cache --clear
    """
    from ..cache import KINDS, cache_entries, cache_root, clear_cache
    from ..errors import UsageError

    root = cache_root()
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown cache kind {kind!r}: use {', '.join(KINDS)}")
    if clear:
        def kept(entries) -> None:
            shown = ", ".join(str(p.relative_to(root)) for p in entries[:3]) + (", ..." if len(entries) > 3 else "")
            typer.echo(f"soundtok: kept {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} soundtok did "
                       f"not make ({shown}); delete them yourself if they are not needed", err=True)

        freed = clear_cache(kind, on_kept=kept)
        where = root / kind if kind else root
        if as_json:
            typer.echo(json.dumps({"type": "cleared", "path": str(where), "bytes": freed}))
        else:
            typer.echo(f"freed {_size(freed)}: {where}" if freed else f"nothing to clear in {where}")
        return
    entries = [(p, n) for p, n in cache_entries() if kind is None or p.parent.name == kind]
    if as_json:
        for path, size in entries:
            typer.echo(json.dumps({"type": "entry", "kind": path.parent.name, "path": str(path),
                                   "bytes": size}))
        typer.echo(json.dumps({"type": "root", "path": str(root), "bytes": sum(s for _, s in entries),
                               "from": _source(short=True)}))
        return
    typer.echo(f"cache root: {root} ({_source()})")
    if not entries:
        typer.echo("  (empty)")
        return
    width = max(len(_size(s)) for _, s in entries)
    for path, size in entries:
        typer.echo(f"  {_size(size):>{width}}  {path.relative_to(root)}")
    typer.echo(f"  {_size(sum(s for _, s in entries)):>{width}}  in all")


def _source(short: bool = False) -> str:
    """What chose the root: SOUNDTOK_CACHE, XDG_CACHE_HOME or the default."""
    import os

    name = next((v for v in ("SOUNDTOK_CACHE", "XDG_CACHE_HOME") if os.environ.get(v)), "default")
    if short:
        return name
    if name == "SOUNDTOK_CACHE":
        return "from SOUNDTOK_CACHE"
    return ("from XDG_CACHE_HOME" if name != "default" else "the default") + "; SOUNDTOK_CACHE sets another"
