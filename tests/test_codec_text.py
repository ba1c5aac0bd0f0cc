"""The codec's text head: transcripts as CTC targets for the tokens (training only)."""

from __future__ import annotations

import csv
import json

import pytest
import soundfile as sf
import torch
from conftest import TINY, cli, make_tiny_codec, synth


def test_transcripts_are_english_speech_only():
    from soundtok.train.text import encode_transcript, normalize_transcript, transcript_of

    assert normalize_transcript("Hello,  World! It’s me.") == "hello world it's me"
    assert normalize_transcript("1984 was a year") is None  # how digits are read is unknown
    assert normalize_transcript("?!") is None
    assert transcript_of("five", {"kind": "speech", "language": "en"}) == "five"
    assert transcript_of("five", {}) == "five"  # a plain manifest's text is a transcript
    assert transcript_of("a dog barks", {"kind": "sound"}) is None  # a caption
    assert transcript_of("a", {"kind": "speech", "language": "cs"}) is None
    assert transcript_of(None, {"kind": "speech"}) is None
    ids = encode_transcript("ab z")
    assert ids.tolist() == [3, 4, 1, 28] and ids.dtype == torch.long


def test_greedy_decoding_collapses_repeats_and_blanks():
    from soundtok.train.text import decode_greedy

    path = [0, 3, 3, 0, 3, 1, 1, 4, 0]  # "a", "a" (a blank between), " ", "b"
    lp = torch.full((1, len(path), 29), -9.0)
    lp[0, torch.arange(len(path)), torch.tensor(path)] = 0.0
    assert decode_greedy(lp) == ["aa b"]


def test_utterance_sampler_pads_whole_clips_and_concatenates_targets():
    from soundtok.train.data import Clip, UtteranceSampler

    clips = [Clip("a", torch.ones(1000), transcript="ab"), Clip("b", torch.ones(1700), transcript="c"),
             Clip("c", torch.ones(900)), Clip("long", torch.ones(9000), transcript="zz")]
    s = UtteranceSampler(clips, batch=5, max_samples=2000, align=640, seed=1)
    assert [i for i, _, _ in s.items] == ["a", "b"]  # no transcript, too long: left out
    u = next(s)
    assert u.wav.shape[0] == 5 and u.wav.shape[1] % 640 == 0
    assert u.wav.shape[1] == max({"a": 1280, "b": 1920}[i] for i in u.ids)
    want = {"a": ([3, 4], 2), "b": ([5], 3)}
    assert u.targets.tolist() == sum((want[i][0] for i in u.ids), [])
    assert u.target_lengths.tolist() == [len(want[i][0]) for i in u.ids]
    assert u.frames.tolist() == [want[i][1] for i in u.ids]
    with pytest.raises(ValueError, match="transcript"):
        UtteranceSampler(clips[2:3], batch=2, max_samples=2000, align=640)


def test_text_loss_trains_the_tokenizer_through_the_vq():
    from soundtok.train.codec_stages import TokenizerStage
    from soundtok.train.data import Clip, UtteranceSampler

    codec = make_tiny_codec(text_weight=1.0)
    assert codec.text_head is not None and make_tiny_codec().text_head is None
    clips = [Clip(str(i), torch.from_numpy(synth(0.6 + 0.2 * i, seed=i)), transcript="hi there")
             for i in range(3)]
    utt = next(UtteranceSampler(clips, 2, 16000, codec.cfg.token_hop))
    wav = torch.from_numpy(synth(0.64))[None].repeat(2, 1)
    stage = TokenizerStage(codec)
    codec.train()
    out = stage(wav, None, utt)
    assert torch.isfinite(out["text_ctc"]) and out["text_ctc"] > 0
    assert set(codec.text_head.parameters()) <= set(stage.trainable())
    out["text_ctc"].backward()
    assert codec.tokenizer.inp.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in codec.vae.parameters())  # the VAE stays frozen
    assert "text_ctc" not in stage(wav)  # validation crops carry no transcript


@pytest.fixture(scope="module")
def transcribed(tmp_path_factory):
    d = tmp_path_factory.mktemp("text_audio")
    rows = []
    for i, text in enumerate(["one two", "three", "Four, five!", "a dog barks"]):
        sf.write(d / f"c{i}.wav", synth(0.8 + 0.2 * i, seed=i), 16000)
        rows.append({"path": f"c{i}.wav", "text": text, "kind": "sound" if i == 3 else "speech"})
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "train.jsonl"


def test_text_head_run_through_the_cli(transcribed, tmp_path):
    from soundtok.codec.model import SoundCodec

    out = tmp_path / "run"
    cfg = json.dumps({**TINY, "text_weight": 1.0})
    r = cli("train-codec", transcribed, "-o", out, "--config", cfg, "--batch", "2", "--device", "cpu",
            "--stage", "tokenizer", "--steps", "2", "-v")
    assert r.returncode == 0, r.stderr
    assert "text head: 3 transcribed clips" in r.stderr.decode()  # the sound's caption is not one
    with open(out / "metrics.csv") as f:
        ctc = [float(row["value"]) for row in csv.DictReader(f) if row["metric"] == "text_ctc"]
    assert ctc and all(v > 0 for v in ctc)
    back = SoundCodec.from_pretrained(out / "final")
    assert back.cfg.text_weight == 1.0 and back.text_head is not None


def test_text_head_without_transcripts_is_one_usage_line(tmp_path):
    d = tmp_path / "a"
    d.mkdir()
    sf.write(d / "x.wav", synth(1.0), 16000)
    r = cli("train-codec", d, "-o", tmp_path / "run", "--config", json.dumps({**TINY, "text_weight": 1.0}),
            "--batch", "2", "--device", "cpu", "--stage", "tokenizer", "--steps", "1")
    assert r.returncode == 2, r.stderr
    err = r.stderr.decode()
    assert err.startswith("error: ") and "transcript" in err and err.count("\n") == 1, err
