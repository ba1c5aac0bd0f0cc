"""Tests for soundtok.tokens: token stream format v1 and the LLM text rendering."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soundtok.errors import FormatError, SoundtokError
from soundtok.tokens import (
    AUDIO_BEGIN,
    AUDIO_END,
    Header,
    Item,
    TokenReader,
    TokenWriter,
    all_code_tokens,
    code_token,
    codes_to_text,
    open_token_writer,
    text_to_codes,
)

SHA = "0123456789abcdef" * 4
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_header(hops=(320, 640), sizes=(16, 8), sr=16000, **kw) -> Header:
    return Header(codec={"name": "testcodec", "sha256": SHA, "arch": "toy"}, sample_rate=sr,
                  hop_lengths=list(hops), codebook_sizes=list(sizes), **kw)


def make_item(header: Header, item_id: str = "utt1", num_samples: int = 1000, **kw) -> Item:
    codes = [[(j * 7 + k) % size for j in range(n)]
             for k, (n, size) in enumerate(zip(header.num_frames(num_samples),
                                               header.codebook_sizes))]
    return Item(id=item_id, num_samples=num_samples, codes=codes, **kw)


def stream_bytes(header: Header, items: list[Item]) -> bytes:
    buf = io.BytesIO()
    w = TokenWriter(buf, header)
    for it in items:
        w.write(it)
    return buf.getvalue()


def read_all(data: bytes, **kw) -> tuple[Header, list[Item]]:
    r = TokenReader(io.BytesIO(data), **kw)
    return r.header, list(r)


@pytest.fixture
def header() -> Header:
    return make_header()


@pytest.fixture
def valid(header: Header) -> bytes:
    return stream_bytes(header, [make_item(header, "a", 1000, text="héllo", label="x"),
                                 make_item(header, "b", 640, source="b.wav", meta={"k": [1]}),
                                 make_item(header, "c", 1)])


# --------------------------------------------------------------------------- round trip

def test_round_trip_bytes(header: Header, valid: bytes) -> None:
    h, items = read_all(valid)
    assert h == header
    assert [i.id for i in items] == ["a", "b", "c"]
    a = items[0]
    assert a.text == "héllo" and a.label == "x" and a.duration == pytest.approx(1000 / 16000)
    assert [len(r) for r in a.codes] == [4, 2]  # ceil(1000/320), ceil(1000/640)
    assert items[1].meta == {"k": [1]} and items[1].source == "b.wav"
    assert items[2].codes == [[0], [1]]
    lines = valid.decode().splitlines()
    head = json.loads(lines[0])
    assert head["soundtok"] == 1 and head["frame_rates"] == [50.0, 25.0]
    assert head["created_by"].startswith("soundtok ")
    assert all(json.loads(x)["type"] == "item" for x in lines[1:])


def test_text_stream_and_extra(header: Header) -> None:
    h = make_header(extra={"note": "x"})
    buf = io.StringIO()
    TokenWriter(buf, h).write(make_item(h))
    buf.seek(0)
    r = TokenReader(buf)
    assert r.header.extra == {"note": "x"} and len(list(r)) == 1


def test_file_round_trip_and_atomic(tmp_path: Path, header: Header) -> None:
    out = tmp_path / "t.jsonl"
    with open_token_writer(out, header) as w:
        w.write(make_item(header, "x"))
    with TokenReader(out, expect_codec_sha256=SHA, expect_codec_name="testcodec") as r:
        assert [i.id for i in r] == ["x"]
    # an exception mid-write leaves the old file untouched and no temp file behind
    with pytest.raises(RuntimeError):
        with open_token_writer(out, header) as w:
            w.write(make_item(header, "y"))
            raise RuntimeError("boom")
    assert [i.id for i in TokenReader(out)] == ["x"]
    assert os.listdir(tmp_path) == ["t.jsonl"]


def test_stdout_and_stdin(capsysbinary: pytest.CaptureFixture[bytes], header: Header,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    with open_token_writer("-", header) as w:
        w.write(make_item(header))
    data = capsysbinary.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    r = TokenReader("-")
    assert r.name == "<stdin>" and [i.id for i in r] == ["utt1"]


def test_codes_tensor(header: Header) -> None:
    h = make_header(hops=(320, 320))
    t = make_item(h, num_samples=1000).codes_tensor()
    assert tuple(t.shape) == (2, 4) and str(t.dtype) == "torch.int64"
    assert tuple(make_item(h, num_samples=0).codes_tensor().shape) == (2, 0)
    with pytest.raises(FormatError, match="different lengths"):
        make_item(header).codes_tensor()


def test_import_does_not_load_torch() -> None:
    code = "import sys, soundtok.tokens; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parent.parent)


def test_writer_validates(header: Header) -> None:
    w = TokenWriter(io.BytesIO(), header)
    with pytest.raises(FormatError, match="out of range"):
        w.write(Item("x", 320, [[16], [0]]))
    with pytest.raises(FormatError, match="not an integer"):
        w.write(Item("x", 320, [[True], [0]]))
    with pytest.raises(FormatError, match="has 2 codes, expected 1"):
        w.write(Item("x", 320, [[1, 2], [0]]))
    with pytest.raises(FormatError, match="duration"):
        w.write(Item("x", 320, [[1], [0]], duration=1.0))
    with pytest.raises(FormatError, match="cannot be written as JSON"):
        w.write(Item("x", 320, [[1], [0]], meta={"v": float("nan")}))
    assert w.count == 0


def test_header_validation() -> None:
    with pytest.raises(FormatError, match="hop_lengths"):
        make_header(hops=(0, 320))
    with pytest.raises(FormatError, match="differ in length"):
        make_header(hops=(320,), sizes=(4, 4))
    with pytest.raises(FormatError, match="codec"):
        Header(codec={"name": "x"}, sample_rate=16000, hop_lengths=[1], codebook_sizes=[2])


# --------------------------------------------------------------------------- rejections

def _replace_line(data: bytes, lineno: int, obj: object) -> bytes:
    lines = data.split(b"\n")
    lines[lineno - 1] = json.dumps(obj).encode()
    return b"\n".join(lines)


def _mutate_item(data: bytes, lineno: int, **changes: object) -> bytes:
    obj = json.loads(data.split(b"\n")[lineno - 1])
    obj.update(changes)
    return _replace_line(data, lineno, obj)


def _mutate_header(data: bytes, **changes: object) -> bytes:
    return _mutate_item(data, 1, **changes)


REJECTIONS = {
    "empty": (lambda v: b"", "no header: empty token stream"),
    "blank only": (lambda v: b"\n\n", "no header: empty token stream"),
    "not header": (lambda v: v.split(b"\n", 1)[1], "line 1: first line is not a soundtok"),
    "version": (lambda v: _mutate_header(v, soundtok=7),
                "token stream version 7 is not supported by this soundtok (supports 1); "
                "upgrade soundtok"),
    "version type": (lambda v: _mutate_header(v, soundtok="1"), "invalid token stream version"),
    "frame rates": (lambda v: _mutate_header(v, frame_rates=[50.0, 50.0]), "frame_rates"),
    "out of range": (lambda v: _mutate_item(v, 2, codes=[[0, 1, 16, 2], [0, 1]]),
                     "line 2: item 'a': codebook 0 position 2: code 16 out of range "
                     "(codebook size 16)"),
    "negative": (lambda v: _mutate_item(v, 3, codes=[[0, 1], [-1]]), "code -1 out of range"),
    "float code": (lambda v: _mutate_item(v, 3, codes=[[0, 1.0], [1]]), "is not an integer"),
    "bool code": (lambda v: _mutate_item(v, 3, codes=[[0, True], [1]]), "is not an integer"),
    "codebooks": (lambda v: _mutate_item(v, 3, codes=[[0, 1]]), "has 1 codebooks, header has 2"),
    "length": (lambda v: _mutate_item(v, 3, codes=[[0, 1, 2], [1]]),
               "line 3: item 'b': codebook 0 has 3 codes, expected 2"),
    "num_samples": (lambda v: _mutate_item(v, 3, num_samples=640.0), "num_samples"),
    "duration": (lambda v: _mutate_item(v, 3, duration=0.5), "duration 0.5 s does not match"),
    "no id": (lambda v: _mutate_item(v, 3, id=3), '"id" must be a non-empty string'),
    "text type": (lambda v: _mutate_item(v, 3, text=1), '"text" must be a string'),
    "truncated": (lambda v: v[:-10], "truncated token stream: line 4 is incomplete"),
    "no newline": (lambda v: v[:-1], "truncated token stream: line 4 is incomplete"),
    "garbled": (lambda v: v.replace(b'{"type":"item","id":"b"', b'{"type":item"id":"b"'),
                "line 3: garbled line (invalid JSON)"),
    "not object": (lambda v: _replace_line(v, 3, [1, 2]), "line 3: garbled line (not a JSON"),
    "nan": (lambda v: v.replace(b'"duration":0.04', b'"duration":NaN'), "line 3: garbled"),
    "dup header": (lambda v: v + v.split(b"\n")[0] + b"\n", "line 5: duplicate header"),
    "unknown type": (lambda v: v + b'{"type":"foo"}\n', "line 5: unknown record type 'foo'"),
    "utf8": (lambda v: v + b'{"type":"item","id":"\xff"}\n', "line 5 is not valid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_rejections(case: str, valid: bytes) -> None:
    mutate, message = REJECTIONS[case]
    with pytest.raises(FormatError) as exc:
        read_all(mutate(valid))
    msg = str(exc.value)
    assert message in msg and "\n" not in msg
    assert msg.startswith("<stream>: ")


def test_codec_mismatch(valid: bytes) -> None:
    with pytest.raises(FormatError, match=r"codec mismatch: stream was made with 'testcodec' "
                       r"\(sha256 0123456789ab\) but the codec in use is 'other' \(sha256 ffff"):
        read_all(valid, expect_codec_sha256="f" * 64, expect_codec_name="other")
    with pytest.raises(FormatError, match="codec mismatch"):
        read_all(valid, expect_codec_name="other")
    assert len(read_all(valid, expect_codec_sha256=SHA)[1]) == 3


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SoundtokError, match="no such file"):
        TokenReader(tmp_path / "nope.jsonl")


def test_tolerated_variations(valid: bytes) -> None:
    crlf = valid.replace(b"\n", b"\r\n")
    assert len(read_all(crlf)[1]) == 3
    assert len(read_all(b"\xef\xbb\xbf" + valid.replace(b"\n", b"\n\n"))[1]) == 3
    extra_key = _mutate_item(valid, 2, future_key=1)
    assert read_all(extra_key)[1][0].id == "a"


# --------------------------------------------------------------------------- fuzzing

def _must_parse_or_format_error(data: bytes) -> list[Item] | None:
    try:
        return read_all(data)[1]
    except FormatError as e:
        assert "\n" not in str(e)
        return None


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    _must_parse_or_format_error(data)


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_after_header(data: bytes) -> None:
    head = make_header().to_json().encode() + b"\n"
    _must_parse_or_format_error(head + data)


@FUZZ
@given(st.data())
def test_fuzz_truncation(data: st.DataObject) -> None:
    h = make_header()
    valid = stream_bytes(h, [make_item(h, "a", 1000), make_item(h, "b", 1280)])
    cut = data.draw(st.integers(0, len(valid)))
    items = _must_parse_or_format_error(valid[:cut])
    at_line_end = cut > 0 and valid[cut - 1:cut] == b"\n"
    assert (items is not None) == at_line_end
    if items is not None:
        assert [i.id for i in items] == ["a", "b"][: valid[:cut].count(b"\n") - 1]


@FUZZ
@given(st.data())
def test_fuzz_mutations(data: st.DataObject) -> None:
    h = make_header()
    lines = stream_bytes(h, [make_item(h, f"i{n}", 500 + 97 * n) for n in range(4)]).split(b"\n")
    kind = data.draw(st.sampled_from(["swap", "flip", "code", "delete", "insert"]))
    if kind == "swap":
        i, j = data.draw(st.integers(0, 4)), data.draw(st.integers(0, 4))
        lines[i], lines[j] = lines[j], lines[i]
        blob = b"\n".join(lines)
        ok = i == j or (i > 0 and j > 0)  # swapping items keeps a valid stream
    elif kind == "code":
        i = data.draw(st.integers(1, 4))
        obj = json.loads(lines[i])
        k = data.draw(st.integers(0, 1))
        obj["codes"][k][data.draw(st.integers(0, len(obj["codes"][k]) - 1))] = data.draw(
            st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.booleans(), st.none()))
        lines[i] = json.dumps(obj).encode()
        blob = b"\n".join(lines)
        ok = None
    else:
        blob = b"\n".join(lines)
        pos = data.draw(st.integers(0, len(blob) - 1))
        byte = bytes([data.draw(st.integers(0, 255))])
        blob = {"flip": blob[:pos] + byte + blob[pos + 1:], "delete": blob[:pos] + blob[pos + 1:],
                "insert": blob[:pos] + byte + blob[pos:]}[kind]
        ok = None
    items = _must_parse_or_format_error(blob)
    if ok is True:
        assert items is not None and len(items) == 4


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 3000), st.text(max_size=5)), max_size=4),
       st.sampled_from([(320,), (320, 640), (300, 480, 1280), (1, 7)]))
def test_fuzz_valid_streams_parse(specs: list[tuple[int, str]], hops: tuple[int, ...]) -> None:
    h = make_header(hops=hops, sizes=[5 + k for k in range(len(hops))])
    items = [make_item(h, f"id{n}", num, text=text) for n, (num, text) in enumerate(specs)]
    got = read_all(stream_bytes(h, items))[1]
    assert [(i.id, i.codes, i.text) for i in got] == [(i.id, i.codes, i.text) for i in items]


# --------------------------------------------------------------------------- LLM text

def test_text_rendering_order() -> None:
    h = make_header(hops=(2, 4), sizes=(10, 10))
    item = Item("x", 5, [[1, 2, 3], [7, 8]])
    text = codes_to_text(item, h)
    # frames start at samples 0,2,4 (codebook 0) and 0,4 (codebook 1)
    assert text == "<audio><a0_1><a1_7><a0_2><a0_3><a1_8></audio>"
    assert text_to_codes(text, h, num_samples=5) == item.codes
    spaced = " <audio>\n<a0_1> <a1_7>\t<a0_2><a0_3>  <a1_8> </audio>\n"
    assert text_to_codes(spaced, h) == item.codes
    assert text_to_codes("<a0_1><a1_7>", h) == [[1], [7]]


def test_vocabulary() -> None:
    h = make_header(hops=(320, 640), sizes=(3, 2))
    assert all_code_tokens(h) == ["<a0_0>", "<a0_1>", "<a0_2>", "<a1_0>", "<a1_1>"]
    assert code_token(1, 5) == "<a1_5>" and AUDIO_BEGIN == "<audio>" and AUDIO_END == "</audio>"


@pytest.mark.parametrize("text,message", [
    ("<audio><a0_1>hello</audio>", "unknown token 'hello'"),
    ("<audio><a0_01></audio>", "unknown token '<a0_01>'"),
    ("<audio><a2_1></audio>", "outside the codec's vocabulary"),
    ("<audio><a1_8></audio>", "outside the codec's vocabulary"),
    ("<audio><a0_1>", "without a matching </audio>"),
    ("<a0_1></audio>", "without a matching <audio>"),
    ("<audio><audio><a0_1></audio>", "unknown token '<audio>'"),
    ("<audio><a0_" + "9" * 5000 + "></audio>", "unknown token"),
])
def test_text_rejections(text: str, message: str) -> None:
    h = make_header(hops=(320, 640), sizes=(16, 8))
    with pytest.raises(FormatError, match=message.replace("(", r"\(")):
        text_to_codes(text, h)


def test_text_length_check() -> None:
    h = make_header(hops=(320, 640), sizes=(16, 8))
    with pytest.raises(FormatError, match="expected 4 for 1000 samples"):
        text_to_codes("<audio><a0_1><a1_1></audio>", h, num_samples=1000)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_text_round_trip(data: st.DataObject) -> None:
    hops = data.draw(st.lists(st.integers(1, 9), min_size=1, max_size=4))
    sizes = data.draw(st.lists(st.integers(1, 2000), min_size=len(hops), max_size=len(hops)))
    h = make_header(hops=hops, sizes=sizes, sr=8000)
    n = data.draw(st.integers(0, 60))
    codes = [data.draw(st.lists(st.integers(0, size - 1), min_size=want, max_size=want))
             for size, want in zip(sizes, h.num_frames(n))]
    item = Item("x", n, codes)
    text = codes_to_text(item, h)
    assert text.startswith(AUDIO_BEGIN) and text.endswith(AUDIO_END)
    assert text.count("_") == sum(len(r) for r in codes)
    assert text_to_codes(text, h, num_samples=n) == codes
    assert set(text[len(AUDIO_BEGIN):-len(AUDIO_END)].replace(">", "> ").split()) <= set(
        all_code_tokens(h))
