"""Corpus importers, end to end: a tiny copy of each corpus in its real layout -> `sicl prepare` -> manifest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sicl.cli.main import main
from sicl.data.importers import prepare
from sicl.data.importers.myst import clean_transcript
from sicl.data.manifest import read_manifest
from sicl.testing import write_tone

SEC = 0.3  # short clips keep the whole file fast

CV15_HEADER = ("client_id path sentence_id sentence sentence_domain up_votes down_votes age gender accents "
               "variant locale segment").split()


def tsv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["prepare", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def by_id(path: Path) -> dict:
    return {ex.id: ex for ex in read_manifest(path)}


# ------------------------------------------------------------------------------------------- Common Voice

def make_cv(root: Path) -> Path:
    lang = root / "fr"
    for i in (1, 2, 3):
        write_tone(lang / "clips" / f"common_voice_fr_{i}.mp3", SEC, 48_000, seed=i)
    tsv(lang / "validated.tsv", CV15_HEADER, [
        ["c1", "common_voice_fr_1.mp3", "s1", 'Il a dit "bonjour.', "general", "2", "0", "twenties", "male",
         "Français de France", "", "fr", ""],
        ["c2", "common_voice_fr_2.mp3", "s2", "C'est « ça » \"ok\"", "", "3", "0", "", "", "", "", "fr", ""],
        ["c1", "common_voice_fr_3.mp3", "s3", "Trois", "", "2", "1", "", "female", "", "", "fr", ""],
    ])
    # An older release: no sentence_id / sentence_domain / locale, 'accent' instead of 'accents'.
    tsv(lang / "test.tsv", "client_id path sentence up_votes down_votes age gender accent".split(), [
        ["c9", "common_voice_fr_2.mp3", "Oui", "2", "0", "thirties", "female", "belgium"],
    ])
    return lang


def test_commonvoice_validated(tmp_path, capsys):
    src = make_cv(tmp_path)
    out = tmp_path / "out" / "cv.jsonl"
    rc, stdout, err = run(capsys, "commonvoice", src, "--out", out)
    assert rc == 0, err
    assert stdout.strip() == f"wrote 3 rows to {out}"
    rows = by_id(out)
    assert list(rows) == ["common_voice_fr_1", "common_voice_fr_2", "common_voice_fr_3"]
    a = rows["common_voice_fr_1"]
    assert a.task == "asr" and a.target == 'Il a dit "bonjour.'  # quotes kept verbatim
    assert a.lang == "fr" and a.speaker == "c1"
    assert a.meta == {"age": "twenties", "gender": "male", "accents": "Français de France",
                      "sentence_domain": "general", "split": "validated"}
    assert rows["common_voice_fr_2"].target == "C'est « ça » \"ok\""
    assert rows["common_voice_fr_2"].meta == {"split": "validated"}  # empty columns are not kept
    assert a.duration == pytest.approx(SEC, abs=0.03)
    assert Path(a.audio).is_file()


def test_commonvoice_old_release_split(tmp_path, capsys):
    src = make_cv(tmp_path)
    (src / "test.tsv").rename(src / "dev.tsv")
    out = tmp_path / "dev.jsonl"
    rc, _, err = run(capsys, "commonvoice", src, "--out", out, "--split", "dev")
    assert rc == 0, err
    (ex,) = read_manifest(out)
    assert ex.target == "Oui" and ex.lang == "fr"  # no locale column: the folder name
    assert ex.meta == {"age": "thirties", "gender": "female", "accents": "belgium", "split": "dev"}


def test_bad_audio_is_skipped_with_one_warning(tmp_path, capsys):
    src = make_cv(tmp_path)
    (src / "clips" / "common_voice_fr_2.mp3").write_bytes(b"not audio at all" * 10)  # corrupt
    (src / "clips" / "common_voice_fr_3.mp3").unlink()  # missing
    out = tmp_path / "cv.jsonl"
    rc, stdout, err = run(capsys, "commonvoice", src, "--out", out)
    assert rc == 0
    assert [ex.id for ex in read_manifest(out)] == ["common_voice_fr_1"]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("sicl prepare: skipped 2 of 3 rows with bad audio: ")
    assert "common_voice_fr_2.mp3 (cannot decode audio" in lines[0]
    assert "common_voice_fr_3.mp3 (audio file not found)" in lines[0]
    assert stdout.strip() == f"wrote 1 rows to {out}"


def test_strict_fails_and_writes_nothing(tmp_path, capsys):
    src = make_cv(tmp_path)
    (src / "clips" / "common_voice_fr_3.mp3").unlink()
    out = tmp_path / "cv.jsonl"
    rc, stdout, err = run(capsys, "commonvoice", src, "--out", out, "--strict")
    assert rc == 1 and stdout == ""
    assert not out.exists() and not list(tmp_path.glob(".cv.jsonl.*"))
    line = err.strip()
    assert "\n" not in line and line.startswith("sicl prepare: error: ")
    assert f"{src / 'validated.tsv'}:4" in line and "common_voice_fr_3.mp3" in line


def test_too_long_clip_is_bad_audio(tmp_path, capsys):
    src = make_cv(tmp_path)
    write_tone(src / "clips" / "common_voice_fr_1.mp3", 1.0, 48_000)
    rc, _, err = run(capsys, "commonvoice", src, "--out", tmp_path / "o.jsonl", "--max-seconds", "0.5")
    assert rc == 0 and "skipped 1 of 3 rows with bad audio: common_voice_fr_1.mp3 (audio is" in err


def test_tsv_missing_required_column(tmp_path, capsys):
    src = make_cv(tmp_path)
    tsv(src / "validated.tsv", ["client_id", "path", "up_votes"], [["c", "common_voice_fr_1.mp3", "1"]])
    out = tmp_path / "cv.jsonl"
    rc, _, err = run(capsys, "commonvoice", src, "--out", out)
    assert rc == 1 and not out.exists()
    assert err.count("\n") == 1
    assert "validated.tsv:1: missing required column(s) sentence" in err


def test_no_usable_rows_is_an_error(tmp_path, capsys):
    src = make_cv(tmp_path)
    for p in (src / "clips").iterdir():
        p.unlink()
    rc, _, err = run(capsys, "commonvoice", src, "--out", tmp_path / "o.jsonl")
    assert rc == 1 and "no usable rows (3 with bad audio)" in err and not (tmp_path / "o.jsonl").exists()


# ---------------------------------------------------------------------------------------------- CoVoST 2

def test_covost2_split_files_in_a_folder(tmp_path, capsys):
    root = tmp_path / "covost"
    for i in (1, 2, 3):
        write_tone(root / "clips" / f"common_voice_de_{i}.mp3", SEC, 48_000, seed=i)
    head = ["path", "sentence", "translation", "client_id"]
    tsv(root / "covost_v2.de_en.test.tsv", head, [
        ["common_voice_de_1.mp3", 'Er sagte "Hallo.', 'He said "hello.', "spk1"],
        ["common_voice_de_2.mp3", "Guten Morgen", "Good morning", "spk2"]])
    tsv(root / "covost_v2.de_en.train.tsv", head, [["common_voice_de_3.mp3", "Drei", "Three", "spk3"]])
    out = tmp_path / "st.jsonl"
    rc, _, err = run(capsys, "covost2", root, "--out", out, "--split", "test")
    assert rc == 0, err
    rows = by_id(out)
    assert list(rows) == ["common_voice_de_1", "common_voice_de_2"]
    a = rows["common_voice_de_1"]
    assert (a.task, a.lang, a.target_lang, a.speaker) == ("st", "de", "en", "spk1")
    assert a.transcript == 'Er sagte "Hallo.' and a.target == 'He said "hello.'
    assert a.meta == {"split": "test"}
    # No --split: every split file of the pair.
    rc, _, _ = run(capsys, "covost2", root, "--out", out)
    assert rc == 0 and {ex.meta["split"] for ex in read_manifest(out)} == {"train", "test"}


def test_covost2_unsplit_release_with_separate_clips(tmp_path, capsys):
    cv = tmp_path / "cv" / "en"
    for i in (1, 2, 3):
        write_tone(cv / "clips" / f"common_voice_en_{i}.mp3", SEC, 48_000, seed=i)
    # The raw release lacks sentence/client_id: joined from Common Voice's validated.tsv.
    tsv(cv / "validated.tsv", ["client_id", "path", "sentence"], [
        ["u1", "common_voice_en_1.mp3", "one"], ["u2", "common_voice_en_2.mp3", "two"],
        ["u3", "common_voice_en_3.mp3", "three"]])
    tsv_path = tsv(tmp_path / "tr" / "covost_v2.en_zh-CN.tsv", ["path", "translation", "split"], [
        ["common_voice_en_1.mp3", "一", "train"], ["common_voice_en_2.mp3", "二", "train_covost"],
        ["common_voice_en_3.mp3", "三", "test"]])
    out = tmp_path / "train.jsonl"
    rc, _, err = run(capsys, "covost2", tsv_path, "--clips", cv / "clips", "--split", "train", "--out", out)
    assert rc == 0, err
    rows = by_id(out)
    assert list(rows) == ["common_voice_en_1", "common_voice_en_2"]  # train_covost belongs to train
    b = rows["common_voice_en_2"]
    assert (b.lang, b.target_lang, b.target, b.transcript, b.speaker) == ("en", "zh-CN", "二", "two", "u2")


def test_covost2_several_pairs_need_pair(tmp_path, capsys):
    root = tmp_path / "covost"
    write_tone(root / "clips" / "a.mp3", SEC, 48_000)
    for pair in ("fr_en", "de_en"):
        tsv(root / f"covost_v2.{pair}.test.tsv", ["path", "sentence", "translation", "client_id"],
            [["a.mp3", "x", "y", "z"]])
    rc, _, err = run(capsys, "covost2", root, "--out", tmp_path / "o.jsonl")
    assert rc == 1 and "several language pairs (de_en, fr_en)" in err
    rc, _, err = run(capsys, "covost2", root, "--pair", "fr_en", "--out", tmp_path / "o.jsonl")
    assert rc == 0 and read_manifest(tmp_path / "o.jsonl")[0].lang == "fr"


# ------------------------------------------------------------------------------------------------- MMSU

def mmsu_row(i: int, answer: str, audio: object) -> dict:
    return {"id": f"mmsu_{i}", "audio": audio, "question": f"Question {i}?", "choice_a": "happy",
            "choice_b": "sad", "choice_c": "angry", "choice_d": "", "answer_gt": answer,
            "task_name": "emotion_recognition", "category": "paralinguistics", "sub-category": "emotion"}


def test_mmsu_json_letter_and_text_answers(tmp_path, capsys):
    root = tmp_path / "MMSU"
    write_tone(root / "audio" / "a.wav", SEC, 44_100, channels=2)  # stereo 44.1 kHz
    write_tone(root / "audio" / "b.wav", SEC, 16_000)
    (root / "MMSU.json").write_text(json.dumps([mmsu_row(1, "sad", "audio/a.wav"),
                                                mmsu_row(2, "C", "./audio/b.wav")]))
    out = tmp_path / "mmsu.jsonl"
    rc, _, err = run(capsys, "mmsu", root, "--out", out)
    assert rc == 0, err
    a, b = read_manifest(out)
    assert a.task == "sqa" and a.choices == ["happy", "sad", "angry"]  # empty choice_d dropped
    assert a.target == "sad" and b.target == "angry"  # bare letter C -> third choice
    assert a.question == "Question 1?"
    assert a.meta == {"task_name": "emotion_recognition", "category": "paralinguistics",
                      "sub-category": "emotion", "benchmark": "mmsu"}  # the scorers pick MMSU's rule by it
    assert a.duration == pytest.approx(SEC, abs=0.02)


def test_mmsu_parquet_embedded_audio(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    clip = write_tone(tmp_path / "src.flac", SEC, 22_050).read_bytes()
    rows = [mmsu_row(1, "happy", {"bytes": clip, "path": "x1.flac"}),
            mmsu_row(2, "B", {"bytes": clip, "path": None})]
    (tmp_path / "mmsu" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "mmsu" / "data" / "test-00000.parquet")
    out = tmp_path / "out" / "mmsu.jsonl"
    rc, _, err = run(capsys, "mmsu", tmp_path / "mmsu", "--out", out)
    assert rc == 0, err
    a, b = read_manifest(out)
    assert Path(a.audio) == (tmp_path / "out" / "audio" / "mmsu_1.flac").resolve()
    assert Path(b.audio).parent == (tmp_path / "out" / "audio").resolve() and Path(b.audio).suffix == ".flac"
    assert (a.target, b.target) == ("happy", "sad")
    assert json.loads(out.read_text().splitlines()[0])["audio"] == "audio/mmsu_1.flac"  # relative to OUT


def test_mmsu_parquet_without_pyarrow(tmp_path, capsys, monkeypatch):
    (tmp_path / "m.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    rc, _, err = run(capsys, "mmsu", tmp_path / "m.parquet", "--out", tmp_path / "o.jsonl")
    assert rc == 1 and "needs pyarrow" in err and "sicl[parquet]" in err


def test_mmsu_bad_json_names_file_and_line(tmp_path, capsys):
    (tmp_path / "mmsu.jsonl").write_text(json.dumps(mmsu_row(1, "sad", "a.wav")) + "\n{oops\n")
    rc, _, err = run(capsys, "mmsu", tmp_path / "mmsu.jsonl", "--out", tmp_path / "o.jsonl")
    assert rc == 1 and f"{tmp_path / 'mmsu.jsonl'}:2: invalid JSON" in err


# ------------------------------------------------------------------------------------------- MMAU, MMAR

def test_mmau_test_mini(tmp_path, capsys):
    root = tmp_path / "mmau"
    items = []
    for i, (task, diff) in enumerate([("sound", "easy"), ("music", "hard"), ("speech", "medium")]):
        uid = f"0000000{i}-aaaa-bbbb-cccc-dddddddddddd"
        write_tone(root / "test-mini-audios" / f"{uid}.wav", SEC, 44_100 if i else 16_000, channels=1 + (i == 1))
        items.append({"id": uid, "audio_id": f"./test-mini-audios/{uid}.wav", "question": f"What {i}?",
                      "choices": ["Dog", "Cat", "Bird", "Cow"], "answer": ["Dog", "Cat", "Bird"][i],
                      "task": task, "category": "Counting", "sub-category": "Animals", "difficulty": diff,
                      "dataset": "clotho", "split": "test-mini"})
    items.append(dict(items[0], question="A repeated id"))  # ids are de-duplicated, not dropped
    (root / "mmau-test-mini.json").write_text(json.dumps(items, indent=2))
    out = tmp_path / "mmau.jsonl"
    rc, _, err = run(capsys, "mmau", root, "--out", out)
    assert rc == 0, err
    rows = read_manifest(out)
    assert [r.target for r in rows] == ["Dog", "Cat", "Bird", "Dog"]
    assert rows[3].id == rows[0].id + "~2" and "repeats renamed" in err
    r = rows[1]
    assert r.task == "aqa" and r.choices == ["Dog", "Cat", "Bird", "Cow"] and r.question == "What 1?"
    assert r.meta == {"task": "music", "category": "Counting", "sub-category": "Animals",
                      "difficulty": "hard", "dataset": "clotho", "split": "test-mini", "benchmark": "mmau"}


def test_mmau_answer_not_in_choices_skipped_or_strict(tmp_path, capsys):
    write_tone(tmp_path / "a.wav", SEC)
    items = [{"id": "q1", "audio_id": "a.wav", "question": "?", "choices": ["yes", "no"], "answer": "yes."},
             {"id": "q2", "audio_id": "a.wav", "question": "?", "choices": ["yes", "no"], "answer": "maybe"}]
    (tmp_path / "mmau.json").write_text(json.dumps(items))
    rc, _, err = run(capsys, "mmau", tmp_path / "mmau.json", "--out", tmp_path / "o.jsonl")
    assert rc == 0 and [r.target for r in read_manifest(tmp_path / "o.jsonl")] == ["yes"]
    assert "skipped 1 of 2 rows that do not fit the manifest" in err and "'maybe'" in err
    rc, _, err = run(capsys, "mmau", tmp_path / "mmau.json", "--out", tmp_path / "s.jsonl", "--strict")
    assert rc == 1 and "mmau.json item 1" in err and not (tmp_path / "s.jsonl").exists()


def test_mmar_json_and_jsonl(tmp_path, capsys):
    root = tmp_path / "MMAR"
    write_tone(root / "audio" / "x.wav", SEC, 48_000, channels=2)
    items = [{"id": "mmar-1", "audio_path": "./audio/x.wav", "question": "Which?", "choices": ["A1", "B1"],
              "answer": "B1", "modality": "sound-music", "category": "Semantic", "sub-category": "Emotion",
              "language": "en"}]
    (root / "MMAR-meta.json").write_text(json.dumps(items))
    out = tmp_path / "mmar.jsonl"
    rc, _, err = run(capsys, "mmar", root, "--out", out)
    assert rc == 0, err
    (r,) = read_manifest(out)
    assert (r.task, r.target, r.choices) == ("aqa", "B1", ["A1", "B1"])
    assert r.meta == {"modality": "sound-music", "category": "Semantic", "sub-category": "Emotion",
                      "language": "en", "benchmark": "mmar"}
    (root / "MMAR-meta.json").unlink()
    (root / "MMAR-meta.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n")
    assert prepare("mmar", root, out) == 1


def test_json_missing_field(tmp_path, capsys):
    (tmp_path / "MMAR-meta.json").write_text(json.dumps([{"id": "1", "question": "?", "choices": ["a", "b"],
                                                          "answer": "a"}]))
    rc, _, err = run(capsys, "mmar", tmp_path, "--out", tmp_path / "o.jsonl")
    assert rc == 1 and "MMAR-meta.json item 0: missing required field(s) audio_path" in err


# ------------------------------------------------------------------------------------------------- MyST

def test_clean_transcript():
    assert clean_transcript("<NOISE> um (*) the (( )) [laughs] water {laugh} +um+ goes* <SIDE_SPEECH> up") \
        == "um the water goes up"
    assert clean_transcript("  <NO_SIGNAL>  (*) ") == ""
    assert clean_transcript("it's (<NOISE>) a  magnet\n") == "it's a magnet"


def make_myst(root: Path) -> Path:
    utts = {
        ("test", "myst_002030", "myst_002030_2014-02-28_sess1"): {
            "u1": "<NOISE> the magnet (*) sticks to {laugh} the nail +um+",
            "u2": "<SIDE_SPEECH> (*)",
            "u3": "yes",
        },
        ("development", "myst_003001", "myst_003001_2015-01-01_sessA"): {"u4": "it is a circuit"},
        ("train", "myst_004001", "myst_004001_2015-01-02_sessB"): {"u5": "energy moves"},
    }
    for (split, student, session), items in utts.items():
        for utt, trn in items.items():
            folder = root / "data" / split / student / session
            write_tone(folder / f"{student}_{utt}.flac", SEC, 16_000)
            (folder / f"{student}_{utt}.trn").write_text(trn + "\n")
    return root


def test_myst(tmp_path, capsys):
    src = make_myst(tmp_path / "myst")
    out = tmp_path / "myst.jsonl"
    rc, _, err = run(capsys, "myst", src, "--split", "test", "--out", out)
    assert rc == 0, err
    rows = by_id(out)
    assert list(rows) == ["myst_002030_u1", "myst_002030_u3"]
    a = rows["myst_002030_u1"]
    assert a.target == "the magnet sticks to the nail" and a.task == "asr" and a.lang == "en"
    assert a.speaker == "myst_002030"
    assert a.meta == {"split": "test", "session": "myst_002030_2014-02-28_sess1"}
    assert "left out 1 rows on purpose: 1 empty after removing markup" in err
    # Common filters; 'dev' is an alias of 'development'.
    rc, _, err = run(capsys, "myst", src, "--split", "test", "--min-words", "3", "--out", out)
    assert rc == 0 and list(by_id(out)) == ["myst_002030_u1"] and "1 under 3 words" in err
    rc, _, err = run(capsys, "myst", src, "--split", "test", "--min-seconds", "0.5", "--out", out)
    assert rc == 1 and "no usable rows" in err
    rc, _, _ = run(capsys, "myst", src, "--split", "dev", "--out", out)
    assert rc == 0 and list(by_id(out)) == ["myst_003001_u4"]
    rc, _, _ = run(capsys, "myst", src, "--out", out)  # no --split: all splits
    assert rc == 0 and len(read_manifest(out)) == 4


# ------------------------------------------------------------------------------------------------ folder

def test_folder_csv_with_subfolders(tmp_path, capsys):
    root = tmp_path / "corpus"
    write_tone(root / "wavs" / "a.wav", SEC, 44_100, channels=2)
    write_tone(root / "other" / "a.ogg", SEC, 16_000)
    (root / "metadata.csv").write_text('file,text,speaker\nwavs/a.wav,"Hello, world",s1\nother/a.ogg,bye,\n')
    out = tmp_path / "f.jsonl"
    rc, _, err = run(capsys, "folder", root, "--out", out)
    assert rc == 0, err
    rows = by_id(out)
    assert list(rows) == ["wavs/a", "other/a"]
    assert rows["wavs/a"].target == "Hello, world" and rows["wavs/a"].speaker == "s1"
    assert rows["other/a"].speaker is None and rows["other/a"].lang == "en"


def test_folder_pipe_delimited_and_tsv(tmp_path, capsys):
    root = tmp_path / "c"
    write_tone(root / "x.flac", SEC)
    (root / "metadata.csv").write_text("file|text|lang\nx.flac|bonjour \"toi|fr\n")
    rc, _, err = run(capsys, "folder", root, "--out", tmp_path / "o.jsonl")
    assert rc == 0, err
    (r,) = read_manifest(tmp_path / "o.jsonl")
    assert (r.target, r.lang) == ('bonjour "toi', "fr")
    t = tsv(tmp_path / "t.tsv", ["file", "text"], [["x.flac", 'say "hi']])
    rc, _, _ = run(capsys, "folder", root, "--transcripts", t, "--lang", "de", "--out", tmp_path / "o.jsonl")
    (r,) = read_manifest(tmp_path / "o.jsonl")
    assert rc == 0 and (r.target, r.lang) == ('say "hi', "de")


def test_folder_header_required(tmp_path, capsys):
    write_tone(tmp_path / "x.wav", SEC)
    (tmp_path / "metadata.csv").write_text("x.wav,hello\n")
    rc, _, err = run(capsys, "folder", tmp_path, "--out", tmp_path / "o.jsonl")
    assert rc == 1 and "missing required column(s) file, text" in err and err.count("\n") == 1


def test_id_prefix(tmp_path, capsys):
    src = make_cv(tmp_path)
    rc, _, _ = run(capsys, "commonvoice", src, "--out", tmp_path / "o.jsonl", "--id-prefix", "cv-fr/")
    assert rc == 0 and read_manifest(tmp_path / "o.jsonl")[0].id == "cv-fr/common_voice_fr_1"


def test_mmsu_strict_failure_removes_extracted_audio(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    good = write_tone(tmp_path / "g.wav", SEC).read_bytes()
    rows = [mmsu_row(1, "happy", {"bytes": good, "path": "g.wav"}),
            mmsu_row(2, "sad", {"bytes": b"RIFF garbage", "path": "b.wav"})]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    out = tmp_path / "out" / "m.jsonl"
    rc, _, err = run(capsys, "mmsu", tmp_path / "m.parquet", "--out", out, "--strict")
    assert rc == 1 and "m.parquet row 1" in err and "mmsu_2.wav" in err
    assert not out.exists() and not (tmp_path / "out" / "audio").exists()
    rc, _, err = run(capsys, "mmsu", tmp_path / "m.parquet", "--out", out)  # lenient: bad clip not kept
    assert rc == 0 and [p.name for p in (tmp_path / "out" / "audio").iterdir()] == ["mmsu_1.wav"]


def test_split_is_refused_where_meaningless(tmp_path, capsys):
    (tmp_path / "mmau.json").write_text("[]")
    rc, _, err = run(capsys, "mmau", tmp_path / "mmau.json", "--split", "test", "--out", tmp_path / "o.jsonl")
    assert rc == 1 and "--split is not used by the mmau importer" in err


def test_one_record_jsonl_named_json(tmp_path, capsys):
    write_tone(tmp_path / "x.wav", SEC)
    rec = {"id": "m1", "audio_path": "x.wav", "question": "?", "choices": ["a", "b"], "answer": "b"}
    (tmp_path / "MMAR-meta.json").write_text(json.dumps(rec) + "\n")
    rc, _, err = run(capsys, "mmar", tmp_path, "--out", tmp_path / "o.jsonl")
    assert rc == 0, err
    assert read_manifest(tmp_path / "o.jsonl")[0].target == "b"
