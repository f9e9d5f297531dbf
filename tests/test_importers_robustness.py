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
from tests.test_importers import run

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
