"""scripts/eval_codec.py: how corpus rows are sorted into sets, the per-voice spread of
``--limit``, and one end-to-end run on a tiny synthetic 'music' set with the tiny codec."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import soundfile as sf
from conftest import ROOT, synth

spec = importlib.util.spec_from_file_location("eval_codec", ROOT / "scripts" / "eval_codec.py")
E = importlib.util.module_from_spec(spec)
spec.loader.exec_module(E)


def test_rows_are_sorted_into_sets():
    assert E.kind_of({"source": "music21/bach", "path": "x"}) == "music"
    assert E.kind_of({"source": "klettres", "text": "a", "path": "x"}) == "speech"
    assert E.kind_of({"source": "piper", "voice": "joe", "text": "hi", "path": "x"}) == "voices"
    assert E.kind_of({"source": "piper", "voice": "joe", "path": "x"}) is None  # no text
    assert E.kind_of({"source": "sonic-pi", "path": "x"}) is None
    # the corpus's own kind field wins
    assert E.kind_of({"kind": "speech-tts", "source": "kokoro", "text": "hi", "path": "x"}) == "voices"
    assert E.kind_of({"kind": "speech", "source": "klettres", "text": "a", "path": "x"}) == "speech"
    assert E.kind_of({"kind": "sound", "source": "esc10", "text": "a dog", "path": "x"}) is None
    assert E.kind_of({"kind": "music", "source": "music21", "path": "x"}) == "music"


def test_limit_takes_clips_in_turn_from_each_voice():
    rows = [{"id": f"{v}{i}", "voice": v, "path": f"{v}{i}.wav"} for v in "abc" for i in range(3)]
    picked = E.spread(rows, 4)
    assert [r["voice"] for r in picked] == ["a", "b", "c", "a"]
    assert len(E.spread(rows, None)) == 9


def test_end_to_end_on_a_tiny_music_set(tmp_path, tiny_codec_dir, monkeypatch):
    for i in range(2):
        sf.write(tmp_path / f"m{i}.wav", synth(1.5, seed=i), 16000)
    man = tmp_path / "corpus.jsonl"
    man.write_text("".join(json.dumps({"path": f"m{i}.wav", "split": s, "source": "music21"}) + "\n"
                           for i, s in enumerate(["test", "train"])))
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["eval_codec.py", "--codec", str(tiny_codec_dir),
                                      "--decoders", "mse", "--sets", "music,voices",
                                      "--music", str(man), "--voices", str(tmp_path / "none.jsonl"),
                                      "--baselines", "", "--threads", "1", "--out", str(out),
                                      "--corpus", str(tmp_path / "no-corpus"),
                                      "--report-clips", "1"])
    import torch

    threads = torch.get_num_threads()
    try:
        assert E.main() == 0
    finally:
        torch.set_num_threads(threads)  # the script sets --threads for the whole process
    md = (out / "results.md").read_text()
    assert "## Held-out music" in md and "| soundtok-mse | 127 |" in md  # 38 frames x 5 bit / 1.5 s
    assert "Skipped: no data" in md  # the voices manifest does not exist
    res = json.loads((out / "results.json").read_text())
    assert res["music"]["clips"] == 1  # only the test-split row
    assert any(p.name.startswith("spectrogram_01") for p in (out / "music").iterdir())
    assert Path(out / "manifests" / "music.jsonl").read_text().count("\n") == 1
