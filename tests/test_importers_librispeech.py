"""The LibriSpeech importer on a tiny copy of the OpenSLR layout: <subset>/<speaker>/<chapter>/*.flac + *.trans.txt,
SPEAKERS.TXT at the root."""

from __future__ import annotations

from pathlib import Path

from sicl.data.manifest import read_manifest
from sicl.testing import write_tone
from tests.test_importers import by_id, run

SEC = 0.3


def chapter(root: Path, subset: str, speaker: str, chap: str, lines: list[str], clips: list[str]) -> None:
    folder = root / subset / speaker / chap
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{speaker}-{chap}.trans.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for i, utt in enumerate(clips):
        write_tone(folder / f"{utt}.flac", SEC, 16_000, seed=i)


def make_librispeech(tmp: Path) -> Path:
    root = tmp / "extracted" / "LibriSpeech"
    root.mkdir(parents=True)
    (root / "SPEAKERS.TXT").write_text(
        "; ID      |SEX| SUBSET           |MINUTES| NAME\n"
        "1089      | M | test-clean       |  8.08 | Bill\n"
        "121       | F | test-clean       | 11.00 | Jane | with a bar\n", encoding="utf-8")
    chapter(root, "test-clean", "1089", "134686",
            ["1089-134686-0000 HE HOPED THERE WOULD BE STEW FOR DINNER",
             "1089-134686-0001 STUFF IT INTO YOU  HIS BELLY COUNSELLED HIM"],
            ["1089-134686-0000", "1089-134686-0001"])
    chapter(root, "test-clean", "121", "121726", ["121-121726-0000 ALSO A POPULAR CONTRIVANCE"],
            ["121-121726-0000"])
    chapter(root, "dev-clean", "84", "121123", ["84-121123-0000 GO DO YOU HEAR"], ["84-121123-0000"])
    return root


def test_librispeech_subset_fields_and_speaker_sex(tmp_path, capsys):
    root = make_librispeech(tmp_path)
    out = tmp_path / "ls.jsonl"
    # the extraction folder, the LibriSpeech root and the subset folder itself all work
    for src, extra in ((root.parent, ["--split", "test-clean"]), (root, ["--split", "test-clean"]),
                       (root / "test-clean", [])):
        rc, _, err = run(capsys, "librispeech", src, *extra, "--out", out)
        assert rc == 0, err
        rows = by_id(out)
        assert sorted(rows) == ["1089-134686-0000", "1089-134686-0001", "121-121726-0000"]
    a = rows["1089-134686-0001"]
    assert (a.target, a.speaker, a.lang) == ("STUFF IT INTO YOU HIS BELLY COUNSELLED HIM", "1089", "en")
    assert a.meta == {"split": "test-clean", "chapter": "134686", "gender": "m"}
    assert rows["121-121726-0000"].meta["gender"] == "f"
    assert Path(a.audio).name == "1089-134686-0001.flac" and a.duration > 0.2


def test_librispeech_every_subset_and_lowercase(tmp_path, capsys):
    root = make_librispeech(tmp_path)
    out = tmp_path / "all.jsonl"
    rc, _, err = run(capsys, "librispeech", root, "--lowercase", "--out", out)
    assert rc == 0, err
    rows = by_id(out)
    assert len(rows) == 4 and rows["84-121123-0000"].target == "go do you hear"
    assert rows["84-121123-0000"].meta["split"] == "dev-clean" and "gender" not in rows["84-121123-0000"].meta


def test_librispeech_missing_clip_and_foreign_id(tmp_path, capsys):
    root = make_librispeech(tmp_path)
    trans = root / "test-clean" / "121" / "121726" / "121-121726.trans.txt"
    trans.write_text("121-121726-0000 ALSO A POPULAR CONTRIVANCE\n121-121726-0009 NEVER RECORDED\n"
                     "999-1-0000 SOMEONE ELSE\n", encoding="utf-8")
    out = tmp_path / "o.jsonl"
    rc, _, err = run(capsys, "librispeech", root, "--split", "test-clean", "--out", out)
    assert rc == 0, err
    assert "121-121726-0009.flac (audio file not found)" in err
    assert f"{trans}:3" in err and "not of speaker 121" in err
    assert len(read_manifest(out)) == 3
    rc, _, err = run(capsys, "librispeech", root, "--split", "test-clean", "--strict", "--out", tmp_path / "s.jsonl")
    assert rc != 0 and not (tmp_path / "s.jsonl").exists()


def test_librispeech_wrong_split_names_what_is_there(tmp_path, capsys):
    root = make_librispeech(tmp_path)
    rc, _, err = run(capsys, "librispeech", root, "--split", "test-other", "--out", tmp_path / "x.jsonl")
    assert rc != 0 and "no subset folder 'test-other' (found: dev-clean, test-clean)" in err


def test_librispeech_line_without_transcript_is_malformed(tmp_path, capsys):
    root = make_librispeech(tmp_path)
    trans = root / "test-clean" / "121" / "121726" / "121-121726.trans.txt"
    trans.write_text("121-121726-0000 ALSO A POPULAR CONTRIVANCE\n121-121726-0001\n", encoding="utf-8")
    out = tmp_path / "o.jsonl"
    rc, stdout, err = run(capsys, "librispeech", root, "--split", "test-clean", "--out", out)
    assert rc == 1 and stdout == "" and "left out" not in err
    assert err.strip() == (f"sicl prepare: error: {trans}:2: utterance id '121-121726-0001' with no transcript "
                           "(a line is '<utterance id> <TRANSCRIPT>')")
    assert not out.exists()


def test_librispeech_out_may_not_be_a_transcript_file(tmp_path, capsys):
    root = make_librispeech(tmp_path)
    trans = root / "test-clean" / "121" / "121726" / "121-121726.trans.txt"
    before = trans.read_bytes()
    rc, _, err = run(capsys, "librispeech", root, "--split", "test-clean", "--out", trans)
    assert rc == 1 and f"--out {trans} is an input of this import (the index {trans})" in err
    assert trans.read_bytes() == before


def test_librispeech_speakers_file_with_a_bad_byte_costs_only_that_line(tmp_path, capsys):
    root = make_librispeech(tmp_path)
    speakers = root / "SPEAKERS.TXT"
    speakers.write_bytes(speakers.read_bytes().replace(b"Bill", b"B\xe9ll"))  # Latin-1 in a reader's name
    out = tmp_path / "ls.jsonl"
    rc, _, err = run(capsys, "librispeech", root, "--split", "test-clean", "--out", out)
    assert rc == 0, err
    rows = by_id(out)
    assert rows["1089-134686-0000"].meta["gender"] == "m" and rows["121-121726-0000"].meta["gender"] == "f"
