"""Importers on corpora in their real published layouts: CoVoST 2 escapes and splits, MyST markup,
encodings and file names, folder ids and encodings."""

from __future__ import annotations

import json
from pathlib import Path

from sicl.data.importers.myst import clean_transcript
from sicl.data.manifest import read_manifest
from sicl.testing import write_tone
from tests.test_importers import by_id, run

SEC = 0.3


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


# ---------------------------------------------------------------------------------------------- CoVoST 2

def clips(folder: Path, n: int) -> Path:
    for i in range(1, n + 1):
        write_tone(folder / f"common_voice_fr_{i}.mp3", SEC, 48_000, seed=i)
    return folder


def test_covost2_split_file_backslash_escapes_are_undone(tmp_path, capsys):
    # As written by get_covost_splits.py: pandas to_csv(sep='\t', quoting=QUOTE_NONE, escapechar='\\').
    clip_dir = clips(tmp_path / "cv" / "clips", 2)
    t = write_lines(tmp_path / "covost" / "covost_v2.fr_en.train.tsv", [
        "path\tsentence\ttranslation\tclient_id",
        'common_voice_fr_1.mp3\tIl a dit \\"oui\\".\tHe said \\"yes\\".\tc1',
        "common_voice_fr_2.mp3\tA\\\\B\\\tC\tone\\\ttwo\tc2",
    ])
    out = tmp_path / "co.jsonl"
    rc, _, err = run(capsys, "covost2", t, "--clips", clip_dir, "--out", out)
    assert rc == 0, err
    rows = by_id(out)
    a, b = rows["common_voice_fr_1"], rows["common_voice_fr_2"]
    assert (a.target, a.transcript, a.speaker) == ('He said "yes".', 'Il a dit "oui".', "c1")
    assert (b.target, b.transcript, b.speaker) == ("one\ttwo", "A\\B\tC", "c2")  # escaped tab stays in field


def test_covost2_release_file_keeps_literal_backslash(tmp_path, capsys):
    clip_dir = clips(tmp_path / "cv" / "clips", 2)
    t = write_lines(tmp_path / "covost_v2.fr_en.tsv", [
        "path\ttranslation\tsplit",
        'common_voice_fr_1.mp3\tHe said "yes".\ttrain',
        "common_voice_fr_2.mp3\tC:\\dir and \\\\ and \\\"\ttrain",
    ])
    out = tmp_path / "co.jsonl"
    rc, _, err = run(capsys, "covost2", t, "--clips", clip_dir, "--split", "train", "--out", out)
    assert rc == 0, err
    rows = by_id(out)
    assert rows["common_voice_fr_1"].target == 'He said "yes".'
    assert rows["common_voice_fr_2"].target == 'C:\\dir and \\ and "'


def test_covost2_release_split_column_follows_get_v2_split(tmp_path, capsys):
    clip_dir = clips(tmp_path / "cv" / "clips", 7)
    values = ["train", "train_covost", "dev", "dev_covost", "test", "test_covost", ""]
    t = write_lines(tmp_path / "covost_v2.fr_en.tsv", ["path\ttranslation\tsplit"] + [
        f"common_voice_fr_{i}.mp3\tt{i}\t{v}" for i, v in enumerate(values, start=1)])
    out = tmp_path / "co.jsonl"
    rc, _, err = run(capsys, "covost2", t, "--clips", clip_dir, "--split", "dev", "--out", out)
    assert rc == 0, err
    assert list(by_id(out)) == ["common_voice_fr_3"]  # dev_covost is not dev
    assert "1 with split 'dev_covost' (in no CoVoST 2 split)" in err
    assert "1 with split 'test_covost'" in err and "1 with an empty split" in err
    rc, _, err = run(capsys, "covost2", t, "--clips", clip_dir, "--split", "test", "--out", out)
    assert rc == 0 and list(by_id(out)) == ["common_voice_fr_5"]
    rc, _, err = run(capsys, "covost2", t, "--clips", clip_dir, "--split", "train", "--out", out)
    rows = by_id(out)
    assert rc == 0 and list(rows) == ["common_voice_fr_1", "common_voice_fr_2"]
    assert {r.meta["split"] for r in rows.values()} == {"train"}
    rc, _, err = run(capsys, "covost2", t, "--clips", clip_dir, "--out", out)  # no --split: the three splits
    assert rc == 0 and [r.meta["split"] for r in read_manifest(out)] == ["train", "train", "dev", "test"]


# ------------------------------------------------------------------------------------------------- MyST

def test_myst_filler_tokens_are_removed_one_by_one():
    assert clean_transcript("+um the magnet +uh sticks") == "the magnet sticks"
    assert clean_transcript("+um+ yes +uh+") == "yes"


def myst_utt(root: Path, name: str, trn: bytes, suffix: str = ".flac") -> Path:
    folder = root / "myst_child_conv_speech" / "data" / "test" / "002032" / "myst_002032_sess"
    write_tone(folder / f"{name}{suffix}", SEC, 16_000)
    (folder / f"{name}.trn").write_bytes(trn)
    return folder


def test_myst_trn_encodings_and_uppercase_flac(tmp_path, capsys):
    myst_utt(tmp_path, "u1", "\ufeffthe magnet sticks\n".encode())
    myst_utt(tmp_path, "u2", "it\u2019s a magnet\n".encode("cp1252"))  # b"it\x92s a magnet"
    myst_utt(tmp_path, "u3", b"ctrl\x01char\x7f here\n")
    myst_utt(tmp_path, "u4", b"upper case suffix\n", suffix=".FLAC")
    out = tmp_path / "m.jsonl"
    rc, _, err = run(capsys, "myst", tmp_path / "myst_child_conv_speech", "--out", out)
    assert rc == 0, err
    rows = by_id(out)
    assert rows["u1"].target == "the magnet sticks"
    assert rows["u2"].target == "it\u2019s a magnet"
    assert rows["u3"].target == "ctrl char here"
    assert rows["u4"].target == "upper case suffix" and rows["u4"].audio.endswith("u4.FLAC")
    assert "bad audio" not in err and "without a .trn" not in err


def test_myst_src_is_the_corpus_folder_or_its_data_or_the_ldc_root(tmp_path, capsys):
    myst_utt(tmp_path, "u1", b"hello there\n")
    out = tmp_path / "m.jsonl"
    for src in (tmp_path / "myst_child_conv_speech", tmp_path / "myst_child_conv_speech" / "data", tmp_path):
        rc, _, err = run(capsys, "myst", src, "--out", out)
        assert rc == 0, err
        assert list(by_id(out)) == ["u1"]
    rc, _, err = run(capsys, "myst", tmp_path / "myst_child_conv_speech" / "data" / "test", "--out", out)
    assert rc == 1 and "myst_child_conv_speech" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ folder

def test_folder_ids_for_absolute_and_dotdot_paths(tmp_path, capsys):
    root = tmp_path / "my corpus"
    write_tone(root / "wavs" / "a.wav", SEC)
    write_tone(tmp_path / "elsewhere" / "x.wav", SEC)
    write_lines(root / "metadata.csv", [
        "file,text",
        f"{root / 'wavs' / 'b.wav'},absolute inside",
        "./wavs/a.wav,dot",
        "../elsewhere/x.wav,outside",
        f"{tmp_path / 'elsewhere' / 'y.wav'},absolute outside",
    ])
    write_tone(root / "wavs" / "b.wav", SEC)
    write_tone(tmp_path / "elsewhere" / "y.wav", SEC)
    out = tmp_path / "f.jsonl"
    rc, _, err = run(capsys, "folder", root, "--out", out)
    assert rc == 0, err
    rows = by_id(out)
    assert list(rows) == ["wavs/b", "wavs/a", "x", "y"]
    assert Path(rows["x"].audio).name == "x.wav"


def test_folder_invalid_utf8_in_header_names_file_and_line(tmp_path, capsys):
    root = tmp_path / "c"
    write_tone(root / "a.wav", SEC)
    (root / "metadata.csv").write_bytes(b"file,t\xe9xt\na.wav,hi\n")
    out = tmp_path / "f.jsonl"
    rc, _, err = run(capsys, "folder", root, "--out", out)
    assert rc == 1 and not out.exists()
    assert f"{root / 'metadata.csv'}:1: not valid UTF-8" in err and "Traceback" not in err
    (root / "metadata.csv").write_bytes(b"file,text\na.wav,hi\na.wav,caf\xe9\n")
    rc, _, err = run(capsys, "folder", root, "--out", out)
    assert rc == 1 and f"{root / 'metadata.csv'}:3: not valid UTF-8" in err and not out.exists()


# ------------------------------------------------------------------------ MMAU / MMAR / MMSU as published

def _mmau_item(i: int, choices: list[str], answer: str, **extra: str) -> dict:
    """One item as in Sakshi113/MMAU mmau-test-mini.json."""
    uid = f"00000000-0000-0000-0000-00000000000{i}"
    return {"id": uid, "audio_id": f"./test-mini-audios/{uid}.wav", "question": "How many syllables?",
            "choices": choices, "answer": answer, "dataset": "voxceleb", "task": "speech", "split": "test-mini",
            "category": "Reasoning", "sub-category": "Phonemic Stress Pattern Analysis", "difficulty": "easy",
            **extra}


def test_mmau_repo_folder_reads_test_mini_and_keeps_a_repeated_choice_once(tmp_path, capsys):
    # mmau-test-mini.json lists an option twice in 27 of its 1000 items (e.g. four, nine, fourteen, fourteen);
    # the repository also holds mmau-test.json, the test split without answers.
    root = tmp_path / "MMAU"
    items = [_mmau_item(1, ["four", "nine", "fourteen", "fourteen"], "nine"),
             _mmau_item(2, [" First speaker's plan.", " a walk."], " First speaker's plan."),
             _mmau_item(3, ["one", "six", "four", "four"], "four")]
    for it in items:
        write_tone(root / it["audio_id"], SEC)
    (root / "mmau-test-mini.json").write_text(json.dumps(items, indent=2))
    (root / "mmau-test.json").write_text(json.dumps([{k: v for k, v in it.items() if k != "answer"} for it in items]))
    out = tmp_path / "mmau.jsonl"
    rc, stdout, err = run(capsys, "mmau", root, "--out", out)
    assert rc == 0, err
    assert stdout.strip() == f"wrote 3 rows to {out}"
    assert "note: 2 rows list an option more than once (kept once)" in err
    rows = list(by_id(out).values())
    assert [(r.choices, r.target) for r in rows] == [(["four", "nine", "fourteen"], "nine"),
                                                     (["First speaker's plan.", "a walk."], "First speaker's plan."),
                                                     (["one", "six", "four"], "four")]
    assert rows[0].meta == {"task": "speech", "category": "Reasoning",
                            "sub-category": "Phonemic Stress Pattern Analysis", "difficulty": "easy",
                            "dataset": "voxceleb", "split": "test-mini", "benchmark": "mmau"}
    rc, _, err = run(capsys, "mmau", root / "mmau-test.json", "--out", tmp_path / "t.jsonl")
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "no 'answer' field" in err
    assert "mmau-test.json item 0" in err and not (tmp_path / "t.jsonl").exists()


def test_mmsu_letter_answer_indexes_the_choices_as_published(tmp_path, capsys):
    write_tone(tmp_path / "a.wav", SEC)
    row = {"id": "m1", "audio": "a.wav", "question": "Q?", "choice_a": "yes", "choice_b": "yes",
           "choice_c": "no", "choice_d": "maybe", "answer_gt": "C"}
    (tmp_path / "MMSU.jsonl").write_text(json.dumps(row) + "\n")
    rc, _, err = run(capsys, "mmsu", tmp_path / "MMSU.jsonl", "--out", tmp_path / "o.jsonl")
    assert rc == 0, err
    (r,) = read_manifest(tmp_path / "o.jsonl")
    assert (r.choices, r.target) == (["yes", "no", "maybe"], "no")


def test_mmsu_hub_release_keeps_every_taxonomy_level(tmp_path, capsys):
    # ddwang2000/MMSU features: id, task_name, audio, question, choice_a..d, answer_gt, category, sub-category,
    # sub-sub-category, linguistics_sub_discipline (the leaderboard reports by these).
    write_tone(tmp_path / "a.wav", SEC)
    row = {"id": "stress_0002", "task_name": "stress_detection", "audio": "a.wav", "question": "Which word?",
           "choice_a": "I", "choice_b": "never", "choice_c": "said", "choice_d": "that", "answer_gt": "never",
           "category": "reasoning", "sub-category": "linguistics", "sub-sub-category": "phonology",
           "linguistics_sub_discipline": "prosody"}
    (tmp_path / "MMSU.jsonl").write_text(json.dumps(row) + "\n")
    rc, _, err = run(capsys, "mmsu", tmp_path / "MMSU.jsonl", "--out", tmp_path / "o.jsonl")
    assert rc == 0, err
    assert read_manifest(tmp_path / "o.jsonl")[0].meta == {
        "task_name": "stress_detection", "category": "reasoning", "sub-category": "linguistics",
        "sub-sub-category": "phonology", "linguistics_sub_discipline": "prosody", "benchmark": "mmsu"}


def test_mmar_jsonl_language_lists_become_mul(tmp_path, capsys):
    # MMAR-meta.jsonl (ddlBoJack/MMAR): language is null, one code, or several joined by '|' ("zh|en").
    root = tmp_path / "MMAR"
    lines = []
    for i, lang in enumerate(["zh|en", None, "ja"]):
        write_tone(root / "audio" / f"clip{i}.wav", SEC)
        lines.append({"id": f"clip{i}", "audio_path": f"./audio/clip{i}.wav", "question": "Where?",
                      "choices": ["Open Grassland", "City Streets"], "answer": "Open Grassland",
                      "modality": "mix-sound-speech", "category": "Cultural Layer",
                      "sub-category": "Professional Knowledge and Reasoning", "language": lang, "source": "youtube",
                      "url": "https://example.org/v", "timestamp": "00:01:32,00:02:02"})
    (root / "MMAR-meta.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    rc, _, err = run(capsys, "mmar", root, "--out", tmp_path / "o.jsonl")
    assert rc == 0, err
    rows = read_manifest(tmp_path / "o.jsonl")
    assert [(r.lang, r.meta.get("language")) for r in rows] == [("mul", "zh|en"), ("en", None), ("ja", "ja")]


# ------------------------------------------------------------------------------------------ Common Voice

def test_commonvoice_sentence_of_quote_marks_only_is_left_out(tmp_path, capsys):
    # cv-corpus-5-2020-06-22/en/test.tsv holds a sentence '""' (CorporaCreator issue 108); raw, unbalanced
    # quotes elsewhere are the sentence's own (cv-corpus-11.0 ja).
    lang = tmp_path / "en"
    for i in (1, 2):
        write_tone(lang / "clips" / f"common_voice_en_1675901{i}.mp3", SEC, 48_000, seed=i)
    write_lines(lang / "test.tsv", [
        "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\tlocale\tsegment",
        'c1\tcommon_voice_en_16759011.mp3\t"""Good-bye,"" said the boy.\t2\t0\t\t\t\ten\t',
        'c2\tcommon_voice_en_16759012.mp3\t""\t2\t0\tthirties\tmale\tus\ten\t',
    ])
    out = tmp_path / "cv.jsonl"
    rc, _, err = run(capsys, "commonvoice", lang, "--split", "test", "--out", out)
    assert rc == 0, err
    assert "left out 1 rows on purpose: 1 with a sentence of punctuation only" in err
    assert [r.target for r in read_manifest(out)] == ['"""Good-bye,"" said the boy.']
