"""Tests for soundtok.inputs: files, folders, globs, manifests, stdin; ids; shards."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundtok.audio import load_audio
from soundtok.errors import AudioError, UsageError
from soundtok.inputs import AUDIO_EXTENSIONS, check_unique_ids, plan_sources


def sources(specs, **kw):
    """The sources of a plan (expansion and the duplicate check happen at once)."""
    return plan_sources(specs, **kw).sources()


def sine(sr: int, seconds: float = 0.25) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


def write(path: Path, x: np.ndarray, sr: int) -> None:
    sf.write(path, x, sr)



@pytest.fixture
def tree(tmp_path: Path) -> Path:
    x = sine(8000, seconds=0.05)
    root = tmp_path / "data"
    for rel in ["b.wav", "a.flac", "spk1/u2.wav", "spk1/u1.ogg", "spk2/deep/u1.wav"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write(root / rel, x, 8000)
    (root / "notes.txt").write_text("not audio")
    (root / ".hidden.wav").write_bytes(b"x")
    (root / ".cache").mkdir()
    write(root / ".cache" / "c.wav", x, 8000)
    return root


def ids(sources) -> list[str]:
    return [s.id for s in sources]


def test_directory(tree: Path) -> None:
    got = list(sources([str(tree)]))
    assert ids(got) == ["a", "b", "spk1/u1", "spk1/u2", "spk2/deep/u1"]
    assert got[2].path == os.path.join(str(tree), "spk1", "u1.ogg")
    assert all(s.stream is None and s.open() == s.path for s in got)


def test_files_and_globs(tree: Path) -> None:
    assert ids(sources([str(tree / "b.wav"), str(tree / "spk1" / "u1.ogg")])) == ["b", "u1"]
    assert ids(sources([str(tree / "spk1" / "*")])) == ["u1", "u2"]
    assert ids(sources([str(tree / "**" / "u2.wav")])) == ["u2"]
    with pytest.raises(AudioError, match=r"glob .*\*\.mp3 matched no files"):
        sources([str(tree / "*.mp3")])
    with pytest.raises(AudioError, match="no such file: .*nope.wav"):
        sources([str(tree / "nope.wav")])
    (tree / "emptydir").mkdir()
    with pytest.raises(AudioError, match="contains no audio files"):
        sources([str(tree / "emptydir")])


def test_duplicate_ids(tree: Path) -> None:
    with pytest.raises(UsageError, match="duplicate item id 'u1'"):
        sources([str(tree / "spk1" / "u1.ogg"), str(tree / "spk2" / "deep" / "u1.wav")])
    write(tree / "b.flac", sine(8000, seconds=0.05), 8000)
    with pytest.raises(UsageError, match="duplicate item id 'b'"):
        sources([str(tree)])


def test_stdin_is_spooled(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", np.zeros(100, np.float32), 16000)
    wav = (tmp_path / "a.wav").read_bytes()
    got = list(sources(["-"], stdin=io.BytesIO(wav)))
    assert [(s.id, s.path, s.where) for s in got] == [("stdin", None, "<stdin>")]
    assert got[0].open().read() == wav and got[0].open().read() == wav  # rewound each time
    # what is not audio is refused from its first bytes, before being read whole
    with pytest.raises(AudioError, match="cannot decode <stdin> as audio"):
        list(sources(["-"], stdin=io.BytesIO(b"RIFFdata")))


def test_jsonl_manifest(tree: Path, tmp_path: Path) -> None:
    man = tree / "m.jsonl"
    rows = [{"path": "spk1/u1.ogg", "text": "hello", "speaker": "s1"},
            {"path": str(tree / "b.wav"), "id": "custom", "label": 3}]
    man.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    got = list(sources([str(man)]))
    assert ids(got) == ["u1", "custom"]
    assert got[0].path == os.path.join(str(tree), "spk1/u1.ogg") and os.path.isfile(got[0].path)
    assert got[0].text == "hello" and got[0].meta == {"speaker": "s1"}
    assert got[1].label == "3" and got[1].text is None and got[1].meta == {}
    assert load_audio(got[0].path, 8000).shape[0] > 0


def test_csv_manifest(tree: Path) -> None:
    man = tree / "m.csv"
    man.write_text("path,text,id,lang\nspk1/u2.wav,hi there,x1,en\n"
                   "\"a.flac\",\"comma, inside\",,fr\n", encoding="utf-8-sig")
    got = list(sources([str(man)]))
    assert ids(got) == ["x1", "a"]
    assert got[1].text == "comma, inside" and got[1].meta == {"lang": "fr"}
    assert got[1].path == os.path.join(str(tree), "a.flac")


@pytest.mark.parametrize("name,content,exc,message", [
    ("m.csv", "file,text\na.wav,x\n", UsageError, 'has no "path" column'),
    ("m.csv", "", UsageError, 'has no "path" column'),
    ("m.csv", "path,text\n,x\n", UsageError, '"path" must be a non-empty string'),
    ("m.jsonl", '{"file": "a.wav"}\n', UsageError, 'line 1: expected a JSON object with a "path"'),
    ("m.jsonl", '{"path": "a.wav"}\n{oops\n', UsageError, "line 2: invalid JSON"),
    ("m.jsonl", '{"path": 3}\n', UsageError, '"path" must be a non-empty string'),
    ("m.jsonl", "\n", AudioError, "lists no audio files"),
])
def test_bad_manifests(tmp_path: Path, name: str, content: str, exc: type, message: str) -> None:
    man = tmp_path / name
    man.write_text(content)
    with pytest.raises(exc, match=message):
        sources([str(man)])


def test_manifest_paths_are_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    man = tmp_path / "m.jsonl"
    man.write_text(json.dumps({"path": f"$(touch {marker}).wav"}) + "\n"
                   + json.dumps({"path": f"; touch {marker}"}) + "\n")
    for src in sources([str(man)]):
        with pytest.raises(AudioError, match="no such file"):
            load_audio(src.path, 16000)  # type: ignore[arg-type]
    assert not marker.exists()


def test_audio_extensions() -> None:
    assert AUDIO_EXTENSIONS == (".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".aiff", ".aif")


def test_one_duplicate_check_names_both_places(tree: Path, tmp_path: Path) -> None:
    man = tmp_path / "m.jsonl"
    man.write_text(json.dumps({"path": str(tree / "b.wav")}) + "\n")
    with pytest.raises(UsageError, match=r"duplicate item id 'b' \(.*b\.wav and .*m\.jsonl line 1\)"):
        plan_sources([str(tree / "b.wav")], [str(man)])
    with pytest.raises(UsageError, match="duplicate item id 'x' \\(a and b\\)"):
        check_unique_ids([("x", "a"), ("y", "a"), ("x", "b")])


def test_unmatched_input_raises_or_is_reported(tree: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        plan_sources([str(tree / "nope.wav"), str(tree / "b.wav")])
    failed = []
    plan = plan_sources([str(tree / "nope.wav"), str(tree / "b.wav")],
                        fail=lambda spec, msg: failed.append(spec))
    assert [s.id for s in plan.sources()] == ["b"] and failed == [str(tree / "nope.wav")]
