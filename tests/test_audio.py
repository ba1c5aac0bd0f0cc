"""Tests for soundtok.audio, soundtok.audio_out and soundtok.fileio, on synthesised audio only."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import soundtok.audio as audio
import soundtok.audio_out as audio_out
from soundtok.audio import load_audio
from soundtok.audio_out import output_path_for, write_audio
from soundtok.errors import AudioError, SoundtokError, UsageError
from soundtok.fileio import atomic_write


def sine(sr: int, seconds: float = 0.25, freq: float = 440.0, channels: int = 1,
         amp: float = 0.5) -> np.ndarray:
    """(frames, channels) float32 sine; channel c has amplitude amp / (c + 1)."""
    t = np.arange(int(sr * seconds)) / sr
    x = np.stack([amp / (c + 1) * np.sin(2 * np.pi * freq * t) for c in range(channels)], 1)
    return x.astype(np.float32)


def write(path: Path, x: np.ndarray, sr: int, **kw) -> Path:
    sf.write(path, x, sr, **kw)
    return path


def peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.argmax(spectrum) * sr / len(x))


# --------------------------------------------------------------------------- load_audio

@pytest.mark.parametrize("ext,kw", [(".wav", {}), (".flac", {}), (".ogg", {}),
                                    (".wav", {"subtype": "PCM_U8"}), (".wav", {"subtype": "FLOAT"}),
                                    (".aiff", {})])
def test_load_formats(tmp_path: Path, ext: str, kw: dict) -> None:
    path = write(tmp_path / f"a{ext}", sine(16000), 16000, **kw)
    wav = load_audio(path, 16000)
    assert wav.dtype.is_floating_point and str(wav.dtype) == "torch.float32"
    assert wav.ndim == 1 and wav.shape[0] == 4000
    assert 0.4 < float(wav.abs().max()) <= 0.52
    assert peak_hz(wav.numpy(), 16000) == pytest.approx(440, abs=4)


def test_stereo_48k_downmix_and_resample(tmp_path: Path) -> None:
    path = write(tmp_path / "st.wav", sine(48000, seconds=1.0, channels=2), 48000)
    wav = load_audio(str(path), 16000).numpy()
    assert wav.shape == (16000,)
    assert peak_hz(wav, 16000) == pytest.approx(440, abs=1)
    # mean of amplitudes 0.5 and 0.25
    assert np.abs(wav[2000:14000]).max() == pytest.approx(0.375, abs=0.01)


def test_mp3(tmp_path: Path) -> None:
    path = tmp_path / "a.mp3"
    try:
        sf.write(path, sine(16000, seconds=0.5), 16000, format="MP3")
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as e:
        pytest.skip(f"this soundfile cannot write MP3: {e}")
    wav = load_audio(path, 16000).numpy()
    assert abs(len(wav) - 8000) < 2000 and peak_hz(wav, 16000) == pytest.approx(440, abs=8)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_ffmpeg_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write(tmp_path / "src.wav", sine(16000, seconds=0.5), 16000)
    m4a = tmp_path / "-clip.m4a"  # leading dash must not be read as an ffmpeg option
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(src), "-c:a", "aac", str(m4a)],
                   check=True, stdin=subprocess.DEVNULL)
    wav = load_audio(m4a, 16000).numpy()
    assert abs(len(wav) - 8000) < 2500 and peak_hz(wav, 16000) == pytest.approx(440, abs=8)
    assert load_audio(m4a.read_bytes(), 16000).shape[0] > 0  # through a pipe
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match="cannot decode .*-clip.m4a as audio"):
        load_audio(m4a, 16000)


def test_load_bytes_and_file_object(tmp_path: Path) -> None:
    path = write(tmp_path / "a.flac", sine(22050), 22050)
    with open(path, "rb") as f:
        assert load_audio(f, 16000).shape == (4000,)
    assert load_audio(path.read_bytes(), 16000).shape == (4000,)


def test_clamps_loud_float_wav(tmp_path: Path) -> None:
    path = write(tmp_path / "loud.wav", sine(16000, amp=3.0), 16000, subtype="FLOAT")
    wav = load_audio(path, 16000)
    assert float(wav.max()) == 1.0 and float(wav.min()) == -1.0


def _bad_inputs(tmp: Path) -> dict[str, tuple[object, str]]:
    (tmp / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 50)
    (tmp / "zero.wav").write_bytes(b"")
    (tmp / "text.flac").write_text("hello, I am not audio\n")
    nan = sine(16000)
    nan[100] = np.nan
    write(tmp / "nan.wav", nan, 16000, subtype="FLOAT")
    inf = sine(16000)
    inf[5] = np.inf
    write(tmp / "inf.wav", inf, 16000, subtype="FLOAT")
    write(tmp / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    write(tmp / "low.wav", sine(2000), 2000)
    (tmp / "adir.wav").mkdir()
    return {
        "missing": (tmp / "missing.wav", f"no such file: {tmp / 'missing.wav'}"),
        "dir": (tmp / "adir.wav", "is a directory"),
        "corrupt": (tmp / "corrupt.wav", f"cannot decode {tmp / 'corrupt.wav'} as audio: "),
        "zero bytes": (tmp / "zero.wav", "as audio: the input is empty"),
        "text": (tmp / "text.flac", "text.flac as audio"),
        "nan": (tmp / "nan.wav", "nan.wav contains NaN or infinite samples"),
        "inf": (tmp / "inf.wav", "contains NaN or infinite samples"),
        "empty wav": (tmp / "empty.wav", "empty.wav contains no audio samples"),
        "low rate": (tmp / "low.wav", "low.wav has sample rate 2000 Hz; at least 4000 Hz is needed"),
        "empty bytes": (b"", "cannot decode <stdin> as audio: the input is empty"),
        "garbage bytes": (b"\x00\x01" * 64, "cannot decode <stdin> as audio"),
    }


def test_bad_inputs(tmp_path: Path) -> None:
    for case, (src, message) in _bad_inputs(tmp_path).items():
        with pytest.raises(AudioError) as exc:
            load_audio(src, 16000)  # type: ignore[arg-type]
        assert message in str(exc.value), case
        assert "\n" not in str(exc.value), case


def test_min_sr_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path / "low.wav", sine(2000), 2000)
    assert load_audio(path, 16000, min_sr=1000).shape == (4000,)  # 0.25 s
    with pytest.raises(AudioError, match="at least 8000 Hz"):
        load_audio(write(tmp_path / "6k.wav", sine(6000), 6000), 16000, min_sr=8000)


# --------------------------------------------------------------------------- writing

@pytest.mark.parametrize("name", ["o.wav", "o.flac", "o.ogg", "noext"])
def test_write_round_trip(tmp_path: Path, name: str) -> None:
    import torch

    x = torch.from_numpy(sine(16000)[:, 0])
    dest = tmp_path / name
    write_audio(str(dest), x, 16000)
    info = sf.info(dest)
    assert info.samplerate == 16000 and info.channels == 1
    assert info.format == {"o.wav": "WAV", "o.flac": "FLAC", "o.ogg": "OGG", "noext": "WAV"}[name]
    if name != "o.ogg":
        assert info.subtype == "PCM_16"
        back = load_audio(dest, 16000).numpy()
        assert np.abs(back - x.numpy()).max() < 1e-3
    assert os.listdir(tmp_path) == [name]
    assert stat.S_IMODE(os.stat(dest).st_mode) & 0o044  # not left private like a temp file


def test_write_options(tmp_path: Path) -> None:
    x = np.array([0.0, 2.0, -3.0, np.nan, 0.5], np.float32)
    write_audio(str(tmp_path / "f.wav"), x, 8000, subtype="FLOAT")
    back, sr = sf.read(tmp_path / "f.wav", dtype="float32")
    assert sr == 8000 and back.tolist() == [0.0, 1.0, -1.0, 0.0, 0.5]
    write_audio(str(tmp_path / "x.bin"), x, 8000, fmt="flac")
    assert sf.info(tmp_path / "x.bin").format == "FLAC"
    with pytest.raises(UsageError, match="cannot write audio format '.xyz'"):
        write_audio(str(tmp_path / "o.xyz"), x, 8000)
    with pytest.raises(ValueError, match="mono"):
        write_audio(str(tmp_path / "o.wav"), np.zeros((2, 10), np.float32), 8000)


def test_write_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    write_audio("-", sine(8000)[:, 0], 8000)
    data = capsysbinary.readouterr().out
    assert data[:4] == b"RIFF"
    back, sr = sf.read(io.BytesIO(data))
    assert sr == 8000 and len(back) == 2000
    assert sf.info(io.BytesIO(data)).subtype == "PCM_16"


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "o.wav"
    write_audio(str(dest), sine(8000)[:, 0], 8000)
    before = dest.read_bytes()

    def failing_write(self, *args, **kwargs):  # the header is already on disk by now
        raise RuntimeError("disk full")

    monkeypatch.setattr(audio_out.sf.SoundFile, "write", failing_write)
    with pytest.raises(SoundtokError, match="cannot write .*o.wav: disk full"):
        write_audio(str(dest), sine(8000)[:, 0], 8000)
    with pytest.raises(SoundtokError):
        write_audio(str(tmp_path / "new.wav"), sine(8000)[:, 0], 8000)
    assert dest.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["o.wav"]


def test_atomic_write_interrupt(tmp_path: Path) -> None:
    dest = tmp_path / "out.txt"
    with atomic_write(dest, "w") as f:
        f.write("héllo\n")
    assert dest.read_text(encoding="utf-8") == "héllo\n"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(dest, "w") as f:
            f.write("partial")
            raise KeyboardInterrupt
    assert dest.read_text(encoding="utf-8") == "héllo\n" and os.listdir(tmp_path) == ["out.txt"]
    with pytest.raises(SoundtokError, match="cannot write"):
        with atomic_write(tmp_path / "no" / "such" / "dir.txt", "w"):
            pass


def test_output_path_for(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert output_path_for(str(out) + "/", "spk1/u1", 5) == os.path.join(str(out), "spk1", "u1.wav")
    assert (out / "spk1").is_dir()
    assert output_path_for(str(out), "x", 1, ext="flac") == os.path.join(str(out), "x.flac")
    assert output_path_for(str(tmp_path / "one.wav"), "x", 1) == str(tmp_path / "one.wav")
    assert output_path_for("-", "x", 1) == "-"
    with pytest.raises(UsageError, match="cannot write 3 items to .*one.wav; give a folder"):
        output_path_for(str(tmp_path / "one.wav"), "x", 3)
    with pytest.raises(UsageError, match="stdout"):
        output_path_for("-", "x", 2)
    for bad in ["../escape", "a/../../b", "/abs", "a//b", ""]:
        with pytest.raises(UsageError, match="cannot be used as a file name"):
            output_path_for(str(out) + "/", bad, 2)
