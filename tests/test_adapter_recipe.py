"""The default adapter's recipe (scripts/adapter_recipe/) on a tiny synthetic manifest, no
real data: captions and prompts per kind, FSDD-test / ESC-10-fold-4 never trained on, the
balance of the kinds, the training stream; and the evaluation's pure functions (what a
caption says is spoken and its WER, the kind it names, digits, confusion tables)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from adapter_recipe import captions as C  # noqa: E402
from adapter_recipe import data as D  # noqa: E402
from adapter_recipe import evaluation as E  # noqa: E402

from soundtok.tokens import Header, Item  # noqa: E402

DIGITS = C.DIGIT_WORDS


def sentence(i: int, voice: str = "piper-joe", gender: str | None = "male", split: str = "train", **kw) -> dict:
    return {"id": f"tts/{voice}/{i:05d}", "path": f"clips/{voice}/{i}.flac", "kind": "speech-tts",
            "source": voice.split("-")[0], "split": split, "content": "sentence",
            "text": f"The quick fox number {i} jumps over the lazy dog.", "voice": voice, "speaker": voice,
            "gender": gender, "accent": "American" if gender else None, "language": "en", **kw}


def tts_digit(i: int, voice: str = "piper-joe", split: str = "train") -> dict:
    d = i % 10
    return {"id": f"tts/{voice}/d{i:05d}", "path": "x.flac", "kind": "speech-tts", "source": "piper", "split": split,
            "content": "digit", "text": DIGITS[d], "label": str(d), "voice": voice, "speaker": voice,
            "gender": "female", "accent": "Scottish", "language": "en"}


def fsdd(d: int, speaker: str, index: int, split: str | None = None) -> dict:
    return {"id": f"fsdd/{d}_{speaker}_{index}", "path": f"clips/fsdd/{d}_{speaker}_{index}.flac", "kind": "speech",
            "source": "fsdd", "split": split or ("test" if index < 5 else "train"), "content": "digit",
            "text": DIGITS[d], "label": str(d), "speaker": f"fsdd-{speaker}", "gender": "male", "accent": "Greek",
            "language": "en"}


def esc(fold: int, n: int, label: str = "dog bark", split: str | None = None) -> dict:
    return {"id": f"esc10/{fold}-{1000 + n}-A", "path": f"clips/esc10/{fold}-{1000 + n}-A.flac", "kind": "sound",
            "source": "esc10", "split": split or ("train" if fold < 4 else "val"), "label": label,
            "category": label.split()[0], "fold": fold, "text": "a dog barks",
            "captions": ["a dog barks", "a dog barking loudly"]}


def music(n: int, piece: str = "bach", instruments=("piano",), split: str = "train") -> dict:
    return {"id": f"music/{piece}-{n}", "path": "m.flac", "kind": "music", "source": "music21", "split": split,
            "group": piece, "ensemble": "solo piano" if len(instruments) == 1 else "a string quartet",
            "instruments": list(instruments), "label": "a baroque chorale", "tempo": "fast", "bpm": 131,
            "title": "chorale BWV 28", "composer": "Johann Sebastian Bach",
            "text": "a baroque chorale by Johann Sebastian Bach played on piano",
            "captions": ["a baroque chorale by Johann Sebastian Bach played on piano",
                         "a solo piano playing a baroque chorale at 131 beats per minute",
                         '"chorale BWV 28" by Johann Sebastian Bach, solo piano',
                         "fast a baroque chorale on piano"]}


def sonicpi(name: str = "bd_zome", label: str = "bass drum") -> dict:
    return {"id": f"sonicpi/{name}", "path": "s.flac", "kind": "sound", "source": "sonicpi", "split": "train",
            "label": label, "name": name, "text": f"a {name.split('_')[1]} {label} hit",
            "captions": [f"a {name.split('_')[1]} {label} hit", f"{label}: {name.split('_')[1]}"]}


def klettres(letter: str = "l", lang: str = "it", split: str = "test") -> dict:
    return {"id": f"klettres/{lang}/alpha/{letter}", "path": "k.flac", "kind": "speech", "source": "klettres",
            "split": split, "content": "letter", "text": letter, "label": letter, "speaker": f"klettres-{lang}",
            "language": lang}


# --------------------------------------------------------------------------- captions and prompts

def test_speech_captions_say_speech_who_and_quote_the_text():
    row = sentence(3)
    caps, prompts = C.texts_for(row)
    assert caps[0] == f'a man says "{row["text"]}"'
    assert any("American accent" in c for c in caps) and any("English" in c for c in caps)
    for c in caps:
        assert E.caption_kind(c) == "speech"
        assert E.said_errors(c, row["text"]) == (0, 10)  # every phrasing quotes exactly what is said
        assert E.gender_named(c) in ("male", None)  # "speech in English: ..." does not say
    assert sum(E.gender_named(c) == "male" for c in caps) >= len(caps) - 1
    assert "someone says the quick fox number 3 jumps over the lazy dog" in prompts


def test_speech_without_gender_never_says_man_or_woman():
    row = sentence(1, voice="espeak-x", gender=None, captions=['a man says "x"', "speech: " + "y"])
    caps, _ = C.texts_for(row)
    assert caps and all(E.gender_named(c) is None for c in caps)
    assert caps[0].startswith('someone says "') and not any("accent" in c for c in caps)


def test_digit_letter_and_language_captions():
    caps, prompts = C.texts_for(tts_digit(7))
    assert "a woman says the digit 7" in caps and all(E.digits_said(c) == "7" for c in caps)
    assert {"spoken digit seven", "spoken digit 7", "someone says seven"} <= set(prompts)
    digits = {**tts_digit(0), "content": "digits", "text": "one, three, nine", "label": "139"}
    caps, _ = C.texts_for(digits)
    assert all(E.digits_said(c) == "139" for c in caps) and "spoken digits: 1 3 9" in caps
    letters = {**tts_digit(0), "content": "letters", "text": "K, G.", "label": "KG"}
    assert all(E.letters_said(c) == "KG" for c in C.texts_for(letters)[0])
    caps, _ = C.texts_for(klettres("l", "it"))
    assert "someone says the Italian letter l" in caps and all(E.caption_kind(c) == "speech" for c in caps)


def test_music_names_instruments_and_style_never_title_or_tempo_number():
    caps, prompts = C.texts_for(music(0))
    assert caps[0] == "music: a baroque chorale played on piano"
    assert not any('"' in c or "131" in c or "BWV" in c for c in caps)
    assert "fast a baroque chorale on piano" not in caps
    assert all(E.caption_kind(c) == "music" and E.instrument_named(c, music(0))[1] for c in caps)
    assert "a piano melody" in prompts
    caps, prompts = C.texts_for(music(1, instruments=("violin", "viola", "cello")))
    assert "music: a baroque chorale played on violin, viola and cello" in caps
    assert "a melody played on violin, viola and cello" in prompts


def test_sound_captions_name_the_class_not_the_sample():
    caps, prompts = C.texts_for(esc(1, 0))
    assert "a dog barking" in prompts and all(E.esc_class(c) == "dog bark" for c in caps)
    assert not any("loudly" in c for c in caps)  # the manifest's unsupported adverb is not kept
    caps, _ = C.texts_for(sonicpi())
    assert caps[0] == "a bass drum hit" and not any("zome" in c for c in caps)
    assert all(E.caption_kind(c) == "sound" for c in caps)


def test_augmented_copy_says_what_was_added():
    row = {**sentence(2), "augment": {"of": "tts/piper-joe/00002", "noise": "esc10/1-9-A", "noise_label": "rain",
                                      "snr_db": 9.0, "reverb": 50, "eq": "telephone"}}
    caps, _ = C.texts_for(row)
    tail = [c for c in caps if "background" in c]
    assert tail == [f'a man says "{row["text"]}", with rain falling in the background, in a reverberant room, '
                    f'over a telephone line']
    assert E.said_text(tail[0]) == row["text"] and E.esc_class("a dog barking, with rain falling in the background") \
        == "dog bark"


# --------------------------------------------------------------------------- held out

def test_fsdd_test_and_esc_fold4_never_reach_training(tmp_path):
    rows = [fsdd(3, "theo", 7), fsdd(3, "theo", 2, split="train"),  # mislabelled: index 2 is FSDD test
            esc(2, 1), esc(4, 2, split="train"),  # mislabelled fold 4
            {**esc(3, 3), "fold": None, "id": "esc10/4-77-B"},  # fold only in the name
            {**sentence(5), "augment": {"of": "tts/piper-joe/00005", "noise": "esc10/4-1002-A"}},
            {**fsdd(4, "george", 9), "id": "aug/00001", "path": "clips/aug/00001.flac",
             "augment": {"of": "fsdd/4_george_1"}},
            {**sentence(6), "augment": {"of": "tts/slt/00001"}},  # copy of a test-split clip
            sentence(7), sentence(8, split="test")]
    everything = rows + [{**sentence(1, voice="slt"), "id": "tts/slt/00001", "split": "test"}]
    kept, dropped = D.training_rows(rows, all_rows=everything)
    assert [r["id"] for r in kept] == ["fsdd/3_theo_7", "esc10/2-1001-A", "tts/piper-joe/00007"]
    assert dropped == Counter({"FSDD test split": 1, "ESC-10 fold 4": 2, "test split": 1,
                               "augmented from a held-out clip (ESC-10 fold 4)": 1,
                               "augmented from a held-out clip (FSDD test split)": 1,
                               "augmented from a held-out clip (test split)": 1})
    D.assert_no_leak(kept)
    with pytest.raises(SystemExit):
        D.assert_no_leak(kept + [fsdd(1, "jackson", 0, split="train")])
    # the shared data's own lists (file stems) catch renamed copies too
    (tmp_path / "fsdd").mkdir()
    (tmp_path / "fsdd" / "labels.csv").write_text("path,digit,speaker,index,official_split\n"
                                                  "recordings/1_lucas_3.wav,1,lucas,3,test\n"
                                                  "recordings/1_lucas_9.wav,1,lucas,9,train\n")
    (tmp_path / "esc10").mkdir()
    (tmp_path / "esc10" / "labels.csv").write_text("path,fold\nDog/4-5-A.ogg,4\nDog/1-6-A.ogg,1\n")
    stems = D.shared_held_out(tmp_path)
    assert stems == {"1_lucas_3", "4-5-A"}
    odd = {**sentence(9), "id": "mine/1_lucas_3", "path": "elsewhere/1_lucas_3.wav"}
    assert D.held_out_reason(odd, stems) == "FSDD test split"
    assert D.held_out_reason({**sentence(9), "path": "x/4-5-A.wav"}, stems) == "ESC-10 fold 4"


def test_missing_sources_come_from_the_shared_data():
    assert D.missing_sources([sentence(1), esc(1, 1)]) == ("fsdd",)
    assert D.missing_sources([fsdd(1, "theo", 9), esc(1, 1)]) == ()


# --------------------------------------------------------------------------- balance

def _pool() -> list[dict]:
    rows = [sentence(i) for i in range(1800)]  # one dominant voice
    rows += [sentence(i, voice=f"espeak-v{v}") for v in range(2) for i in range(100)]
    rows += [esc(1 + i % 3, i, label=C.ESC_LABELS[i % 10]) for i in range(30)]
    rows += [music(i, piece=f"p{i % 3}") for i in range(10)]
    return rows


def test_quotas_balance_the_kinds_and_the_voices():
    rows = _pool()
    plan = D.plan_epoch(rows, 0, seed=0)
    present = [g for g in D.QUOTAS if any(D.group_of(r) == g for r in rows)]
    assert sorted(present) == ["esc10", "music", "tts-sentences"]
    want = {g: sum(D.QUOTAS[g]) for g in present}
    got = Counter(D.group_of(r) for r, _, _ in plan)
    assert got == Counter(want)  # exact quotas: caption + generation per group
    share = D.share_by_kind(plan)
    assert share["speech-tts"] == pytest.approx(1500 / 3360, abs=1e-3)  # was 2000/2040 of the clips
    assert share["sound"] == pytest.approx(960 / 3360, abs=1e-3)
    # the dominant voice fills less of the sentences than of the pool (1/sqrt weighting)
    tts = [r for r, _, _ in plan if D.group_of(r) == "tts-sentences"]
    joe = sum(r["speaker"] == "piper-joe" for r in tts) / len(tts)
    assert joe < 0.85 < 1800 / 2000
    # small groups repeat (32 uses of each of the 30 ESC clips), big ones are subsampled
    esc_uses = Counter(r["id"] for r, _, _ in plan if D.group_of(r) == "esc10")
    assert set(esc_uses.values()) == {32}
    assert max(rep for r, _, rep in plan if D.group_of(r) == "esc10") == 23  # 720 captions / 30 clips - 1
    # deterministic; another epoch draws other sentences
    assert [r["id"] for r, _, _ in D.plan_epoch(rows, 0, seed=0)] == [r["id"] for r, _, _ in plan]
    other = {r["id"] for r, _, _ in D.plan_epoch(rows, 1, seed=0) if D.group_of(r) == "tts-sentences"}
    assert other != {r["id"] for r in tts}


def test_training_records_one_task_each_with_crops_for_repeated_sounds():
    header = Header(codec={"name": "tiny", "sha256": "ab" * 32}, sample_rate=16000, hop_lengths=[640],
                    codebook_sizes=[32])
    items = []
    for r in [sentence(0), sentence(1), esc(1, 0), music(0)]:
        frames = {"speech-tts": 50, "sound": 125, "music": 250}[r["kind"]]
        meta = {k: v for k, v in r.items() if k not in ("id", "text", "label")}
        items.append(Item(id=r["id"], num_samples=frames * 640, codes=[[i % 32 for i in range(frames)]],
                          source=r["path"], text=r.get("text"), label=r.get("label"), meta=meta))
    quotas = {"tts-sentences": (2, 1), "esc10": (3, 1), "music": (1, 1)}
    recs = D.build_records(items, header, 2, seed=0, quotas=quotas)
    assert len(recs) == 2 * (3 + 4 + 2) and len({r.id for r in recs}) == len(recs)
    assert all(len(r.meta["tasks"]) == 1 for r in recs)
    esc_caps = [r for r in recs if r.id.startswith("esc10") and r.meta["tasks"] == ["caption"]]
    assert [len(r.codes[0]) for r in esc_caps][:3] == [125, 88, 88]  # repeats: 70 % random crops
    assert all(len(r.codes[0]) == 150 for r in recs if r.id.startswith("music"))  # music: 6 s windows
    assert all(len(r.codes[0]) == 50 for r in recs if r.id.startswith("tts"))  # speech: never cut
    crop = next(r for r in recs if r.meta.get("crop"))
    assert crop.num_samples == len(crop.codes[0]) * 640
    first = next(r for r in recs if r.id.startswith(sentence(0)["id"] + "#"))
    assert first.meta["captions"] == C.texts_for(sentence(0))[0] and first.text == sentence(0)["text"]


# --------------------------------------------------------------------------- evaluation functions

def test_said_text_and_its_word_error_rate():
    assert E.said_text('a man says "The cat sat."') == "The cat sat."
    assert E.said_text("spoken digits: 1 3 9, with rain falling in the background") == "1 3 9"
    assert E.said_text("a woman says the digits 4 0 7") == "4 0 7"
    assert E.said_text("someone says the Italian letter l") == "l"
    assert E.said_text("a dog barking") is None
    assert E.said_errors('a man says "the cat sat"', "The cat sat.") == (0, 3)
    assert E.said_errors('a man says "the dog sat down"', "The cat sat.") == (2, 3)  # 1 sub + 1 insertion
    assert E.said_errors("a dog barking", "The cat sat.") == (3, 3)  # nothing quoted: all deleted
    assert E.said_errors("spoken digits: 1 3 9", "one, three, nine") == (0, 3)
    assert E.digits_said('a man says "seven"') == "7" and E.digits_said("a dog") == ""


def test_caption_kind_and_labels():
    assert E.caption_kind("a man says hello") == "speech"
    assert E.caption_kind('"quoted words"') == "speech"
    assert E.caption_kind("a string quartet playing a baroque chorale") == "music"
    assert E.caption_kind("a person sneezes") == "sound"
    assert E.caption_kind("a dog barks") == "sound"
    assert E.esc_class("the crackling of a fire") == "fire crackling"
    assert E.esc_class("a rooster crowing") == "rooster" and E.esc_class("speech") is None
    assert E.gender_named('a woman says "the man left"') == "female"
    assert E.instrument_named("music played on alto saxophone", {"instruments": ["alto saxophone"]}) == (True, True)
    assert E.instrument_named("music on a tenor saxophone", {"instruments": ["alto saxophone"]}) == (False, True)
    assert E.instrument_named("a piano melody", {"instruments": ["violin"]}) == (False, False)
    assert E.whisper_digit(" Seven.") == "7" and E.whisper_digit("to", lenient=True) == "2"
    assert E.whisper_digit("to") is None


def test_score_and_summarize_a_set():
    rows = [(sentence(0), 'a man says "The quick fox number 0 jumps over the lazy dog."'),
            (sentence(1), "a dog barks"),
            (tts_digit(3), "a man says the digit 3"),
            (tts_digit(4), "a woman says the digit 5")]
    scored = [E.score_row(r, c) for r, c in rows]
    s = E.summarize(scored)
    assert s["items"] == 4 and s["kind_rate"] == 0.75
    assert s["wer"] == pytest.approx((0 + 10 + 0 + 1) / 22, abs=1e-4)
    assert s["digit_accuracy"] == 0.5 and s["gender_accuracy"] == 0.5
    m = E.summarize([E.score_row(music(0), "music: a baroque chorale played on piano"),
                     E.score_row(music(1), "a dog barks")])
    assert m["kind_rate"] == 0.5 and m["instrument_named"] == 0.5 and m["style_named"] == 0.5
    e = E.summarize([E.score_row(esc(4, 1, "rain"), "rain falling"), E.score_row(esc(4, 2), "a rooster")])
    assert e["class_accuracy"] == 0.5


def test_confusion_table_counts_and_markdown():
    t = E.confusion([("speech", "speech"), ("speech", "music"), ("music", "music"), ("sound", None)],
                    ["speech", "music", "sound"])
    assert t["columns"] == ["speech", "music", "sound", "(none)"]
    assert t["counts"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    md = E.confusion_markdown(t)
    assert md.splitlines()[2] == "| speech | **1** | 1 | 0 | 0 |"
    t = E.confusion([("a", "a"), ("b", "a")], ["a", "b"])
    assert t["columns"] == ["a", "b"] and t["counts"] == [[1, 0], [1, 0]]  # no "(none)" column when unused


def test_held_out_sets_and_report():
    assert E.eval_set_of(fsdd(3, "theo", 2)) == "fsdd_test"
    assert E.eval_set_of(fsdd(3, "theo", 9)) is None
    assert E.eval_set_of(esc(4, 1)) == "esc10_fold4" and E.eval_set_of(esc(2, 1)) is None
    assert E.eval_set_of(sentence(1, split="test")) == "voices_sentences"
    assert E.eval_set_of(tts_digit(1, split="test")) == "voices_digits"
    assert E.eval_set_of(klettres()) == "klettres_test"
    assert E.eval_set_of(music(1, split="test")) == "music_test"
    assert E.spread(list(range(10)), 3) == [0, 3, 6]
    md = E.results_markdown({"adapter": "x", "captions": {"fsdd_test": {"items": 2, "kind_rate": 1.0,
                                                                       "digit_accuracy": 0.5}},
                             "kind_confusion": E.confusion([("speech", "speech")], ["speech"]),
                             "generation": {"digits": {"title": "spoken digits", "items": 10,
                                                       "measures": {"Whisper base: right digit": 0.8}}}})
    assert "| FSDD test split (5 speakers, recordings 0-4): spoken digits | 2 | 1.000 | 0.500 |" in md
    assert "| spoken digits | 10 | Whisper base: right digit | 0.800 |" in md
