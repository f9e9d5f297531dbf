"""sicl prepare on bad input: re-imports that fail keep the earlier run's audio, one-line errors, split handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sicl.data.importers import prepare
from sicl.data.manifest import read_manifest
from sicl.errors import SiclError
from sicl.testing import write_tone
from tests.test_importers import make_cv, make_myst, mmsu_row, run, tsv

SEC = 0.3


def mmsu_parquet(path: Path, clips: list[bytes | None], question: str = "Q?") -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"id": f"q_{i}", "audio": {"bytes": b or b"RIFF garbage", "path": f"c{i}.wav"}, "question": question,
             "choice_a": "yes", "choice_b": "no", "answer_gt": "A"} for i, b in enumerate(clips)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def qa_json(root: Path, name: str, audio_key: str, rows: list[dict]) -> Path:
    write_tone(root / "a.wav", SEC)
    items = [{"id": f"r{i}", audio_key: "a.wav", "question": "Which?", "choices": ["x", "y"], "answer": "x", **r}
             for i, r in enumerate(rows)]
    (root / name).write_text(json.dumps(items))
    return root / name


# ---------------------------------------------------------------------------------------------- fix 1

def test_failed_reimport_keeps_previous_audio(tmp_path, capsys):
    good = write_tone(tmp_path / "g.wav", SEC).read_bytes()
    other = write_tone(tmp_path / "h.wav", SEC, freq=600).read_bytes()
    out = tmp_path / "o" / "m.jsonl"
    rc, _, err = run(capsys, "mmsu", mmsu_parquet(tmp_path / "a.parquet", [good, None]), "--out", out)
    assert rc == 0, err
    old = {p.name: p.read_bytes() for p in (tmp_path / "o" / "audio").iterdir()}
    assert list(old) == ["q_0.wav"]
    # the same ids, new content, one bad clip: --strict fails, and the earlier run's files stay as they were
    rc, _, err = run(capsys, "mmsu", mmsu_parquet(tmp_path / "b.parquet", [other, None]), "--out", out, "--strict")
    assert rc == 1 and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "o" / "audio").iterdir()} == old
    assert [Path(r.audio).exists() for r in read_manifest(out)] == [True]
    # a successful re-import replaces the clip
    rc, _, err = run(capsys, "mmsu", mmsu_parquet(tmp_path / "c.parquet", [other]), "--out", out)
    assert rc == 0 and (tmp_path / "o" / "audio" / "q_0.wav").read_bytes() == other
    assert sorted(p.name for p in (tmp_path / "o" / "audio").iterdir()) == ["q_0.wav"]


# ---------------------------------------------------------------------------------------------- fix 2

@pytest.mark.parametrize("kind", ["folder", "below_a_file"])
def test_unwritable_out_is_one_line_before_decoding(tmp_path, capsys, kind):
    src = mmsu_parquet(tmp_path / "a.parquet", [write_tone(tmp_path / "g.wav", SEC).read_bytes()])
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    out = tmp_path / "d" if kind == "folder" else tmp_path / "f" / "m.jsonl"
    rc, _, err = run(capsys, "mmsu", src, "--out", out)
    assert rc == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1 and str(out) in err
    assert not (tmp_path / "audio").exists() and list((tmp_path / "d").iterdir()) == []


# ---------------------------------------------------------------------------------------------- fix 3

def test_no_usable_rows_names_the_first_problem(tmp_path, capsys):
    src = qa_json(tmp_path, "mmau.json", "audio_id", [{"answer": "z"}])
    rc, _, err = run(capsys, "mmau", src, "--out", tmp_path / "o.jsonl")
    assert rc == 1 and "no usable rows" in err and "mmau.json item 0" in err and "'z' is none of the choices" in err


# ---------------------------------------------------------------------------------------------- fix 4

@pytest.mark.parametrize("line", [2, 400])
def test_tsv_invalid_utf8_names_the_line(tmp_path, capsys, line):
    lang = tmp_path / "fr"
    write_tone(lang / "clips" / "c.mp3", SEC)
    rows = [b"client_id\tpath\tsentence"] + [b"c\tc.mp3\tbonjour tout le monde"] * 500
    rows[line - 1] = b"c\tc.mp3\tbonjour \xff"
    (lang / "validated.tsv").write_bytes(b"\n".join(rows) + b"\n")
    rc, _, err = run(capsys, "commonvoice", lang, "--out", tmp_path / "o.jsonl")
    assert rc == 1 and "Traceback" not in err and f"validated.tsv:{line}: not valid UTF-8" in err
    assert not (tmp_path / "o.jsonl").exists()


# ---------------------------------------------------------------------------------------------- fix 5

def _hub(root: Path, clips: list[Path]) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    root.mkdir(parents=True)
    for split, sl in (("train", clips[:2]), ("test", clips[2:])):
        pq.write_table(pa.table({"audio": [str(c) for c in sl], "text": [f"{split} {c.stem}" for c in sl]}),
                       root / f"{split}-00000-of-00001.parquet")
    return root


def test_hf_split_of_a_hub_folder(tmp_path, capsys):
    clips = [write_tone(tmp_path / f"{i}.wav", SEC, seed=i) for i in range(3)]
    src = _hub(tmp_path / "hub", clips)
    rc, _, err = run(capsys, "hf", src, "--split", "test", "--out", tmp_path / "t.jsonl")
    assert rc == 0, err
    assert [r.target for r in read_manifest(tmp_path / "t.jsonl")] == ["test 2"]
    rc, _, err = run(capsys, "hf", src, "--split", "dev", "--out", tmp_path / "d.jsonl")
    assert rc == 1 and "no files of split 'dev'" in err and not (tmp_path / "d.jsonl").exists()
    rc, _, err = run(capsys, "hf", src / "test-00000-of-00001.parquet", "--split", "test", "--out", tmp_path / "x.jsonl")
    assert rc == 1 and "--split" in err and "single file" in err


def test_hf_row_without_text_extracts_no_audio(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    wav = np.sin(np.arange(4800) / 9.0).astype(np.float32) * 0.3
    arr = [{"array": wav.tolist(), "sampling_rate": 16000}] * 2
    pq.write_table(pa.table({"audio": arr, "text": ["hello", ""], "id": ["u1", "u2"]}), tmp_path / "p.parquet")
    rc, _, err = run(capsys, "hf", tmp_path / "p.parquet", "--out", tmp_path / "o" / "m.jsonl")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "o" / "audio").iterdir()) == ["u1.flac"]


# ---------------------------------------------------------------------------------------------- fix 6

@pytest.mark.parametrize("corpus,name,key", [("mmau", "mmau.json", "audio_id"), ("mmar", "MMAR-meta.json", "audio_path")])
def test_null_question_is_a_bad_row(tmp_path, capsys, corpus, name, key):
    src = qa_json(tmp_path, name, key, [{}, {"question": None}, {"question": " "}])
    rc, _, err = run(capsys, corpus, src, "--out", tmp_path / "o.jsonl")
    assert rc == 0 and "skipped 2 of 3 rows that do not fit the manifest" in err and "'question' is null" in err
    assert [r.id for r in read_manifest(tmp_path / "o.jsonl")] == ["r0"]
    rc, _, err = run(capsys, corpus, src, "--out", tmp_path / "s.jsonl", "--strict")
    assert rc == 1 and f"{name} item 1" in err and not (tmp_path / "s.jsonl").exists()


def test_mmar_language_sets_lang(tmp_path, capsys):
    src = qa_json(tmp_path, "MMAR-meta.json", "audio_path", [{"language": "zh"}, {}])
    rc, _, err = run(capsys, "mmar", src, "--out", tmp_path / "o.jsonl")
    assert rc == 0, err
    assert [r.lang for r in read_manifest(tmp_path / "o.jsonl")] == ["zh", "en"]


# ---------------------------------------------------------------------------------------------- fix 7

def test_split_refusal_reads_once(tmp_path, capsys):
    src = qa_json(tmp_path, "MMAR-meta.json", "audio_path", [{}])
    rc, _, err = run(capsys, "mmar", src, "--split", "test", "--out", tmp_path / "o.jsonl")
    assert rc == 1 and "--split is not used by the mmar importer (MMAR has a single set)" in err
    assert "not used (" not in err and "))" not in err


def test_json_type_names_in_messages(tmp_path, capsys):
    (tmp_path / "MMAR-meta.json").write_text("[1]")
    rc, _, err = run(capsys, "mmar", tmp_path, "--out", tmp_path / "o.jsonl")
    assert rc == 1 and "expected a JSON object, got number" in err


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_max_seconds_must_be_positive_and_finite(tmp_path, capsys, value):
    src = qa_json(tmp_path, "MMAR-meta.json", "audio_path", [{}])
    rc, _, err = run(capsys, "mmar", src, f"--max-seconds={value}", "--out", tmp_path / "o.jsonl")
    assert rc == 1 and "--max-seconds must be a positive" in err and not (tmp_path / "o.jsonl").exists()
    with pytest.raises(SiclError, match="--max-seconds"):
        prepare("mmar", src, tmp_path / "p.jsonl", max_seconds=float(value))


def test_lhotse_missing_audio_is_bad_audio(tmp_path, capsys):
    pytest.importorskip("lhotse")
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    clip = write_tone(tmp_path / "long.wav", 1.0)
    recs = RecordingSet.from_recordings([Recording.from_file(str(clip), recording_id="r")])
    sups = SupervisionSet.from_segments([SupervisionSegment(id="s0", recording_id="r", start=0.1, duration=0.3,
                                                            text="a part"),
                                         SupervisionSegment(id="s1", recording_id="r", start=0.5, duration=0.3,
                                                            text="b part")])
    CutSet.from_manifests(recordings=recs, supervisions=sups).to_file(str(tmp_path / "cuts.jsonl.gz"))
    clip.rename(tmp_path / "gone.wav")
    rc, _, err = run(capsys, "lhotse", tmp_path / "cuts.jsonl.gz", "--out", tmp_path / "o.jsonl")
    assert rc == 1 and "2 with bad audio" in err and "long.wav: no such file" in err
    assert "do not fit the manifest" not in err and "Details:)" not in err


# ------------------------------------------------------------------ --out may not be a file the import reads

def _corpus(kind: str, root: Path) -> tuple[list[str], Path]:
    """(argv before --out, the index file) of a tiny corpus of each kind."""
    if kind == "commonvoice":
        lang = make_cv(root)
        return ["commonvoice", str(lang), "--split", "test"], lang / "test.tsv"
    if kind == "folder":
        write_tone(root / "c" / "a.wav", SEC)
        (root / "c" / "metadata.csv").write_text("file,text\na.wav,hello\n")
        return ["folder", str(root / "c")], root / "c" / "metadata.csv"
    if kind == "covost2":
        write_tone(root / "cov" / "clips" / "a.mp3", SEC)
        index = tsv(root / "cov" / "covost_v2.fr_en.test.tsv", ["path", "sentence", "translation", "client_id"],
                    [["a.mp3", "salut", "hi", "c1"]])
        return ["covost2", str(root / "cov")], index
    if kind == "mmsu":
        write_tone(root / "a.wav", SEC)
        (root / "MMSU.jsonl").write_text(json.dumps(mmsu_row(1, "sad", "a.wav")) + "\n")
        return ["mmsu", str(root / "MMSU.jsonl")], root / "MMSU.jsonl"
    if kind == "myst":
        src = make_myst(root / "myst")
        trn = next((src / "data" / "development").rglob("*.trn"))
        return ["myst", str(src), "--split", "dev"], trn
    return [kind, str(qa_json(root, "mmau.json", "audio_id", [{}]))], root / "mmau.json"


@pytest.mark.parametrize("kind", ["commonvoice", "folder", "covost2", "mmsu", "mmau", "myst"])
@pytest.mark.parametrize("how", ["same", "symlink"])
def test_out_that_is_an_input_is_refused(tmp_path, capsys, kind, how):
    argv, index = _corpus(kind, tmp_path)
    before = index.read_bytes()
    out = index
    if how == "symlink":  # --out resolves to the index only after symlinks
        out = tmp_path / "link.jsonl"
        out.symlink_to(index)
    rc, stdout, err = run(capsys, *argv, "--out", out)
    assert rc == 1 and stdout == "" and "Traceback" not in err
    assert err.strip() == (f"sicl prepare: error: --out {out} is an input of this import (the index {index}); "
                           "choose another path")
    assert index.read_bytes() == before and index.is_file() and not index.is_symlink()


def test_out_that_is_a_clip_is_refused(tmp_path, capsys):
    lang = make_cv(tmp_path)
    clip = lang / "clips" / "common_voice_fr_2.mp3"
    before = clip.read_bytes()
    rc, _, err = run(capsys, "commonvoice", lang, "--out", clip)
    assert rc == 1 and f"--out {clip} is an input of this import (the audio of {lang / 'validated.tsv'}:3)" in err
    assert clip.read_bytes() == before


# ------------------------------------------------------------- wrong-typed fields and duplicate choices

def test_mmsu_wrong_typed_fields_are_bad_rows_never_reprs(tmp_path, capsys):
    write_tone(tmp_path / "a.wav", SEC)
    rows = [mmsu_row(0, "sad", "a.wav"),
            {**mmsu_row(1, "sad", "a.wav"), "question": ["list"]},
            {**mmsu_row(2, "sad", "a.wav"), "choice_c": {"x": 1}},
            {**mmsu_row(3, "sad", "a.wav"), "answer_gt": True},
            {**mmsu_row(4, "sad", "a.wav"), "id": [4]},
            {**mmsu_row(5, "sad", "a.wav"), "audio": ["a.wav"]},
            {**mmsu_row(6, "happy", "a.wav"), "choice_b": "happy"},  # an option listed twice: kept once
            {**mmsu_row(7, "A", "a.wav"), "id": 7, "choice_a": 1, "choice_b": 2, "choice_c": ""}]  # numbers: text
    src = tmp_path / "MMSU.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o.jsonl"
    rc, _, err = run(capsys, "mmsu", src, "--out", out)
    assert rc == 0, err
    assert "skipped 5 of 8 rows that do not fit the manifest" in err
    assert "note: 1 rows list an option more than once (kept once)" in err
    assert f"{src}:2 (id 'mmsu_1': 'question' must be text, got array)" in err
    kept = read_manifest(out)
    assert [(r.id, r.choices, r.target) for r in kept] == [("mmsu_0", ["happy", "sad", "angry"], "sad"),
                                                           ("mmsu_6", ["happy", "angry"], "happy"),
                                                           ("7", ["1", "2"], "1")]
    assert "[" not in out.read_text().replace('"choices": [', "")  # no Python repr anywhere
    for line, problem in ((3, "'choice_c' must be text, got object"), (4, "'answer_gt' must be text, got true"),
                          (5, "'id' must be text, got array"), (6, "'audio' must be a path")):
        src.write_text(json.dumps(rows[line - 1]) + "\n")
        rc, _, err = run(capsys, "mmsu", src, "--strict", "--out", tmp_path / "s.jsonl")
        assert rc == 1 and len(err.strip().splitlines()) == 1 and f"{src}:1: " in err and problem in err, err
        assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.parametrize("corpus,name,key", [("mmau", "mmau.json", "audio_id"), ("mmar", "MMAR-meta.json", "audio_path")])
def test_qa_wrong_types_are_bad_rows_repeated_choices_kept_once(tmp_path, capsys, corpus, name, key):
    src = qa_json(tmp_path, name, key, [{}, {"question": ["q"]}, {"choices": ["x", "x", "y"]},
                                        {"answer": ["x"]}, {key: {"p": "a.wav"}}, {"choices": ["x", True]}])
    rc, _, err = run(capsys, corpus, src, "--out", tmp_path / "o.jsonl")
    assert rc == 0 and "skipped 4 of 6 rows that do not fit the manifest" in err
    assert "'question' must be text, got array" in err and "note: 1 rows list an option more than once" in err
    rows = read_manifest(tmp_path / "o.jsonl")
    assert [(r.id, r.choices) for r in rows] == [("r0", ["x", "y"]), ("r2", ["x", "y"])]


# ---------------------------------------------------------------------- truncated lines are malformed

@pytest.mark.parametrize("kind", ["folder", "commonvoice", "covost2"])
def test_line_with_fewer_fields_than_the_header_is_malformed(tmp_path, capsys, kind):
    argv, index = _corpus(kind, tmp_path)
    with open(index, "a", encoding="utf-8") as fh:  # a truncated line: the first two fields only
        fh.write({"folder": "a.wav\n", "commonvoice": "c9\tcommon_voice_fr_2.mp3\n",
                  "covost2": "a.mp3\tsalut\n"}[kind])
    lines = index.read_text().splitlines()
    header = len(lines[0].split("," if kind == "folder" else "\t"))
    out = tmp_path / "o.jsonl"
    rc, stdout, err = run(capsys, *argv, "--out", out)
    fields = "fields" if kind == "folder" else "tab-separated fields"
    assert rc == 1 and stdout == "" and "left out" not in err
    assert err.strip() == (f"sicl prepare: error: {index}:{len(lines)}: {1 if kind == 'folder' else 2} {fields}, "
                           f"the header has {header}")
    assert not out.exists()


def test_a_covost_line_lacking_only_optional_trailing_columns_is_read(tmp_path, capsys):
    argv, index = _corpus("covost2", tmp_path)
    index.write_text(index.read_text().replace("\tc1\n", "\n"))  # client_id (optional) stripped by a tool
    rc, _, err = run(capsys, *argv, "--out", tmp_path / "o.jsonl")
    assert rc == 0, err
    assert [(r.target, r.transcript) for r in read_manifest(tmp_path / "o.jsonl")] \
        == [("hi", "salut")]


# ------------------------------------------------------------------------------------ smaller fixes

def test_several_tables_point_to_transcripts_option(tmp_path, capsys):
    argv, index = _corpus("folder", tmp_path)
    (index.parent / "other.csv").write_text(index.read_text())
    rc, _, err = run(capsys, *argv, "--out", tmp_path / "o.jsonl")
    assert rc == 1 and err.strip().endswith("pass the one to read with --transcripts FILE")
    rc, _, err = run(capsys, *argv, "--transcripts", index, "--out", tmp_path / "o.jsonl")
    assert rc == 0, err


@pytest.mark.parametrize("jobs", ["0", "-3"])
def test_jobs_below_one_is_refused(tmp_path, capsys, jobs):
    argv, _ = _corpus("mmau", tmp_path)
    rc, _, err = run(capsys, *argv, f"--jobs={jobs}", "--out", tmp_path / "o.jsonl")
    assert rc == 1 and err.strip() == f"sicl prepare: error: --jobs must be at least 1 (clips decoded at a time), not {jobs}"
    assert not (tmp_path / "o.jsonl").exists()


def test_covost_missing_clips_names_the_folder_once(tmp_path, capsys):
    argv, index = _corpus("covost2", tmp_path)
    (index.parent / "clips" / "a.mp3").unlink()
    (index.parent / "clips").rmdir()
    rc, _, err = run(capsys, *argv, "--out", tmp_path / "o.jsonl")
    assert rc == 1 and f"no clips folder at {index.parent / 'clips'}; pass --clips DIR" in err and " or " not in err


def test_text_file_named_mp3_says_it_is_not_audio(tmp_path, capsys):
    lang = make_cv(tmp_path)
    (lang / "clips" / "common_voice_fr_2.mp3").write_text("this is not audio\n")
    rc, _, err = run(capsys, "commonvoice", lang, "--out", tmp_path / "o.jsonl")
    assert rc == 0 and "common_voice_fr_2.mp3 (cannot decode audio (not a recognised audio format))" in err


def test_mmsu_failure_after_staging_leaves_no_staging_folder(tmp_path, capsys):
    good = write_tone(tmp_path / "g.wav", SEC).read_bytes()
    mmsu_parquet(tmp_path / "src" / "a.parquet", [good])  # its audio is staged first
    (tmp_path / "src" / "b.parquet").write_bytes(b"not parquet")
    out = tmp_path / "o" / "m.jsonl"
    rc, _, err = run(capsys, "mmsu", tmp_path / "src", "--out", out)
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "b.parquet: cannot read parquet" in err
    assert not (tmp_path / "o").exists()  # neither .sicl-staging-* nor the folders created for it


def test_hf_list_valued_text_column_is_no_python_repr(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    clip = write_tone(tmp_path / "a.wav", SEC)
    pq.write_table(pa.table({"audio": [str(clip)], "text": [["hello", "world"]], "id": [7]}), tmp_path / "p.parquet")
    out = tmp_path / "o.jsonl"
    rc, _, err = run(capsys, "hf", tmp_path / "p.parquet", "--out", out)
    assert rc == 1 and "no usable rows" in err and "p.parquet row 0: 'text' must be text, got array" in err
    assert not out.exists()
