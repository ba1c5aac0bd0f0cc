"""Naming inputs of the wrong kind (soundtok.sniff) and reporting WAV files cut short."""

from __future__ import annotations

import io
import struct

import pytest
import soundfile as sf
from conftest import synth

from soundtok import sniff
from soundtok.audio import AudioStream, read_audio
from soundtok.errors import AudioError


def _encoded(fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, synth(0.2), 16000, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,subtype,kind", [("WAV", "PCM_16", "WAV"), ("FLAC", None, "FLAC"),
                                              ("OGG", "VORBIS", "OGG"), ("AIFF", None, "AIFF"),
                                              ("MP3", None, "MP3")])
def test_audio_containers_are_recognised(fmt, subtype, kind):
    assert sniff.audio_format(_encoded(fmt, subtype)[:16]) == kind


def test_text_and_token_streams_are_not_audio():
    header = b'{"soundtok":1,"type":"header","codec":{"name":"x"}}\n'
    for text in (header, b"\xef\xbb\xbf" + header, b"hello\n", b"", b'{"path": "a.wav"}\n'):
        assert sniff.audio_format(text[:16]) is None
    assert sniff.is_token_stream(header) and sniff.is_token_stream(b"\xef\xbb\xbf  " + header)
    assert not sniff.is_token_stream(b'{"path": "a.wav", "text": "soundtok"}\n')
    assert not sniff.is_token_stream(_encoded("WAV", "PCM_16"))


def _with_data_size(wav: bytes, size: int) -> bytes:
    i = wav.index(b"data")
    return wav[:i + 4] + struct.pack("<I", size) + wav[i + 8:]


def test_wav_truncation():
    wav = _encoded("WAV", "PCM_16")  # 0.2 s
    assert sniff.wav_truncation(wav, len(wav)) is None
    cut = wav[:len(wav) // 2]
    assert sniff.wav_truncation(cut, len(cut)) == "holds 0.10 s of the 0.20 s its header announces"
    # the sizes streaming writers put in a header they cannot go back to: nothing is announced
    for unknown in (0, 0xFFFFFFFF, 0x7FFFF000):
        w = _with_data_size(cut, unknown)
        assert sniff.wav_truncation(w, len(w)) is None
    assert sniff.wav_truncation(_encoded("FLAC")[:100], 100) is None


def test_truncated_wav_is_an_error_not_a_short_clip(tmp_path):
    wav = _encoded("WAV", "PCM_16")
    p = tmp_path / "cut.wav"
    p.write_bytes(wav[:len(wav) // 2])
    sf.read(p)  # libsndfile alone reads the half that is there, without a word
    for load in (lambda: read_audio(p, 16000), lambda: read_audio(p.read_bytes(), 16000),
                 lambda: AudioStream(p, 16000), lambda: AudioStream(io.BytesIO(p.read_bytes()), 16000)):
        with pytest.raises(AudioError, match="truncated WAV file: it holds 0.10 s of the 0.20 s"):
            load()
    whole = tmp_path / "whole.wav"
    whole.write_bytes(_with_data_size(wav[:len(wav) // 2], 0xFFFFFFFF))  # e.g. ffmpeg to a pipe
    assert read_audio(whole, 16000)[0].shape[0] > 0


def test_token_stream_given_as_audio(tmp_path):
    p = tmp_path / "clip.wav"
    p.write_bytes(b'{"soundtok":1,"type":"header"}\n{"type":"item"}\n')
    with pytest.raises(AudioError, match="this is a token stream, not audio"):
        read_audio(p, 16000)
    with pytest.raises(AudioError, match="this is a token stream, not audio"):
        AudioStream(p, 16000)


def test_audio_given_as_token_stream(tmp_path):
    from soundtok.errors import FormatError
    from soundtok.tokens import TokenReader, count_items

    for fmt, sub, kind in (("WAV", "PCM_16", "WAV"), ("FLAC", None, "FLAC"), ("OGG", "VORBIS", "OGG")):
        p = tmp_path / f"a.{fmt.lower()}"
        p.write_bytes(_encoded(fmt, sub))
        with pytest.raises(FormatError, match=rf"this is audio \({kind}\), not a token stream"):
            _ = TokenReader(p).header
        with pytest.raises(FormatError, match=rf"this is audio \({kind}\), not a token stream"):
            _ = TokenReader(io.BytesIO(p.read_bytes())).header
    s = tmp_path / "s.tok.jsonl"
    s.write_text('{"soundtok": 1}\n{"a": 1}\n\n{"b": 2}\n')
    assert count_items(s) == 2 and count_items("-") is None and count_items(tmp_path / "none") is None
