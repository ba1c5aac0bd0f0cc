"""Streams written by an earlier soundtok still tokenize and decode exactly the same.

``tests/fixtures/compat/`` was generated once (``python tests/test_compat.py
--write``) from commit a3a3e6d, before the codec interface, the input path and
the training code were reorganised: two synthetic clips (int16 ``.npy``), the
token streams that commit wrote for them and the sha256 of every WAV file it
decoded from those streams.  Tokenizing the clips must give the same streams
byte for byte (only ``created_by`` may differ) and decoding the stored streams
the same WAV bytes.

torch runs on one thread here (several threads may sum in another order and
move a sample by one LSB), and the built-in codec runs in bf16 on CPUs with
AMX/AVX512-BF16: the fixture records which, and the exact checks skip on a
machine of the other kind (the codes and samples legitimately differ there).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import default_llm_codec_missing

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "compat"
CLIPS = {"a": (2.5, 3), "b": (0.7, 4)}  # id: (seconds, synth seed)

# (case, stream file, tokenize options, detokenize options)
FM_CASES = [
    ("fm", "fm.tok.jsonl", {}, {}),
    ("fm-chunked", "fm-chunked.tok.jsonl", {"chunk_seconds": 1.0}, {"chunk_seconds": 1.0}),
    ("fm-mse", None, None, {"decoder": "mse"}),
    ("fm-steps", None, None, {"steps": 3, "seed": 7}),
]


def _bf16() -> bool:
    from soundtok.codec.model import bf16_fast

    return bf16_fast("cpu")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_clips(folder: Path) -> list[str]:
    names = []
    for cid in CLIPS:
        x = np.load(FIXTURE / f"clip-{cid}.npy")
        sf.write(folder / f"{cid}.wav", x, 16000, subtype="PCM_16")
        names.append(f"{cid}.wav")
    return names


def _strip_created_by(stream: bytes) -> list[dict]:
    rows = [json.loads(line) for line in stream.decode("utf-8").splitlines()]
    rows[0].pop("created_by", None)
    return rows


def _decoded(folder: Path) -> dict[str, str]:
    return {p.stem: _sha(p.read_bytes()) for p in sorted(folder.glob("*.wav"))}


def produce_fm(work: Path, streams_from: Path | None = None
               ) -> tuple[dict[str, bytes], dict[str, dict[str, str]]]:
    """Streams the built-in codec writes for the clips (in ``work``, the current
    folder) and the hashes of the WAV files it decodes from the streams in
    ``streams_from`` (default: the ones just written)."""
    import soundtok

    inputs = _write_clips(work)
    streams, decoded = {}, {}
    for _case, stream, tok_opts, _ in FM_CASES:
        if stream is not None:
            soundtok.tokenize(inputs, f"new-{stream}", **tok_opts)
            streams[stream] = Path(f"new-{stream}").read_bytes()
    for case, stream, _, detok_opts in FM_CASES:
        src = (streams_from or work) / (stream or "fm.tok.jsonl")
        if streams_from is None:
            src.write_bytes(streams[src.name])
        out = work / f"out-{case}"
        soundtok.detokenize(str(src), f"{out}/", **detok_opts)
        decoded[case] = _decoded(out)
    return streams, decoded


def _load_llm_codec():
    """The shipped LLM-Codec and its LLM ``(model, tokenizer)``, loaded once."""
    from soundtok.llm.loader import load_llm
    from soundtok.registry import load_codec

    pair = load_llm("gemma3-270m", device="cpu", dtype="float32")
    return load_codec("llm-codec", llm=pair), pair


def produce_llm(work: Path, codec, pair, streams_from: Path | None = None
                ) -> tuple[dict[str, bytes], dict[str, dict[str, str]]]:
    """The shipped LLM-Codec's stream and ``--as-text`` lines for the clips, and
    the hashes of the WAV files it decodes (see :func:`produce_fm`)."""
    import soundtok

    inputs = _write_clips(work)
    soundtok.tokenize(inputs, "new-llm.tok.jsonl", codec=codec)
    soundtok.tokenize(inputs, "new-llm.words.tsv", codec=codec, as_text=True, llm=pair)
    streams = {n: Path(f"new-{n}").read_bytes() for n in ("llm.tok.jsonl", "llm.words.tsv")}
    src = (streams_from or work) / "llm.tok.jsonl"
    if streams_from is None:
        src.write_bytes(streams[src.name])
    soundtok.detokenize(str(src), f"{work / 'out-llm'}/", codec=codec)
    return streams, {"llm": _decoded(work / "out-llm")}


@pytest.fixture
def one_thread(tmp_path, monkeypatch):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # items record their source path: keep it "a.wav"
    yield tmp_path
    torch.set_num_threads(threads)


def _expected() -> dict:
    return json.loads((FIXTURE / "expected.json").read_text())


def _check(streams: dict[str, bytes], decoded: dict, expected: dict) -> None:
    for name, data in streams.items():
        want = (FIXTURE / name).read_bytes()
        if name.endswith(".jsonl"):
            assert _strip_created_by(data) == _strip_created_by(want), name
        else:
            assert data == want, name
    for case, hashes in decoded.items():
        assert hashes == expected["decoded"][case], case


def test_builtin_codec_streams_and_audio_unchanged(one_thread):
    expected = _expected()
    if expected["bf16"] != _bf16():
        pytest.skip("the fixture was made on a CPU with the other bf16 support "
                    f"(bf16 there: {expected['bf16']})")
    streams, decoded = produce_fm(one_thread, streams_from=FIXTURE)
    _check(streams, decoded, expected)


@pytest.mark.slow
@pytest.mark.skipif(default_llm_codec_missing() is not None, reason=str(default_llm_codec_missing()))
def test_llm_codec_streams_and_audio_unchanged(one_thread):
    expected = _expected()
    codec, pair = _load_llm_codec()
    streams, decoded = produce_llm(one_thread, codec, pair, streams_from=FIXTURE)
    _check(streams, decoded, expected)


def _write_fixture() -> None:
    """Regenerate the fixture (only ever from the code it is meant to pin)."""
    import tempfile

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import synth

    torch.set_num_threads(1)
    FIXTURE.mkdir(parents=True, exist_ok=True)
    for cid, (seconds, seed) in CLIPS.items():
        x = np.round(synth(seconds, seed=seed) * 32767).astype(np.int16)
        np.save(FIXTURE / f"clip-{cid}.npy", x)
    expected: dict = {"bf16": _bf16(), "decoded": {}}
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            streams, decoded = produce_fm(Path(tmp))
            expected["decoded"].update(decoded)
            if default_llm_codec_missing() is None:
                codec, pair = _load_llm_codec()
                more, dec = produce_llm(Path(tmp), codec, pair)
                streams.update(more)
                expected["decoded"].update(dec)
        finally:
            os.chdir(here)
    for name, data in streams.items():
        (FIXTURE / name).write_bytes(data)
    (FIXTURE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    _write_fixture()
