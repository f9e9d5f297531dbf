"""sicl prepare hf / lhotse on data those libraries write on the fly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sicl.data.audio import load_audio
from sicl.data.manifest import read_manifest
from sicl.testing import write_tone

ROOT = Path(__file__).resolve().parent.parent


def _prepare(*args):
    return subprocess.run([sys.executable, "-m", "sicl", "prepare", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return [write_tone(d / f"{i}.wav", seconds=0.6 + 0.2 * i, freq=200 + 50 * i, seed=i) for i in range(4)]


def test_hf_save_to_disk_paths_bytes_splits_and_parquet(clips, tmp_path):
    pytest.importorskip("datasets")
    from datasets import Audio, Dataset, DatasetDict

    by_path = Dataset.from_dict({"audio": [str(c) for c in clips], "sentence": ["one two", "three", "", "four five"],
                                 "client_id": ["a", "b", "a", "c"]}).cast_column("audio", Audio(decode=False))
    by_path.save_to_disk(str(tmp_path / "ds"))
    res = _prepare("hf", tmp_path / "ds", "--out", tmp_path / "a.jsonl")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = read_manifest(tmp_path / "a.jsonl")
    assert [r.target for r in rows] == ["one two", "three", "four five"]  # the empty transcript is left out
    assert [r.speaker for r in rows] == ["a", "b", "c"] and "1 empty transcript" in res.stderr
    # save_to_disk embeds the files' bytes: they come back out under audio/, sample for sample
    np.testing.assert_allclose(load_audio(rows[2].audio), load_audio(clips[3]), atol=1e-4)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"audio": [str(c) for c in clips[:2]], "text": ["p q", "r"]}), tmp_path / "paths.parquet")
    res = _prepare("hf", tmp_path / "paths.parquet", "--out", tmp_path / "e.jsonl")
    assert res.returncode == 0, res.stderr[-2000:]
    assert [r.audio for r in read_manifest(tmp_path / "e.jsonl")] == [str(c.resolve()) for c in clips[:2]]

    embedded = Dataset.from_dict({"audio": [{"bytes": c.read_bytes(), "path": c.name} for c in clips[:2]],
                                  "transcription": ["x y", "z"], "id": ["u1", "u2"]}).cast_column("audio",
                                                                                                  Audio(decode=False))
    DatasetDict({"train": embedded, "test": embedded.select([1])}).save_to_disk(str(tmp_path / "dd"))
    res = _prepare("hf", tmp_path / "dd", "--out", tmp_path / "b.jsonl")
    assert res.returncode == 1 and "choose one with --split" in res.stderr and "Traceback" not in res.stderr
    res = _prepare("hf", tmp_path / "dd", "--split", "train", "--out", tmp_path / "out" / "b.jsonl")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = read_manifest(tmp_path / "out" / "b.jsonl")
    assert [r.id for r in rows] == ["u1", "u2"] and all(Path(r.audio).parent == tmp_path / "out" / "audio" for r in rows)
    np.testing.assert_allclose(load_audio(rows[1].audio), load_audio(clips[1]), atol=1e-4)

    embedded.to_parquet(str(tmp_path / "p.parquet"))
    res = _prepare("hf", tmp_path / "p.parquet", "--out", tmp_path / "c.jsonl", "--audio-dir", tmp_path / "aud")
    assert res.returncode == 0 and len(read_manifest(tmp_path / "c.jsonl")) == 2
    res = _prepare("hf", tmp_path / "p.parquet", "--out", tmp_path / "d.jsonl", "--text-column", "nope")
    assert res.returncode == 1 and "no text column 'nope'" in res.stderr and not (tmp_path / "d.jsonl").exists()


def test_lhotse_cuts_segments_and_recordings_with_supervisions(clips, tmp_path):
    pytest.importorskip("lhotse")
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    recs = RecordingSet.from_recordings([Recording.from_file(str(c), recording_id=f"r{i}") for i, c in enumerate(clips)])
    sups = SupervisionSet.from_segments(
        [SupervisionSegment(id="s0", recording_id="r0", start=0.0, duration=recs["r0"].duration, text="whole one",
                            speaker="k1", language="English"),
         SupervisionSegment(id="s1", recording_id="r2", start=0.2, duration=0.5, text="a part", speaker="k2"),
         SupervisionSegment(id="s2", recording_id="r3", start=0.0, duration=0.4, text="", speaker="k2")])
    recs.to_file(str(tmp_path / "recordings.jsonl.gz"))
    sups.to_file(str(tmp_path / "supervisions.jsonl.gz"))
    CutSet.from_manifests(recordings=recs, supervisions=sups).to_file(str(tmp_path / "cuts.jsonl.gz"))
    for src, extra in ((tmp_path / "cuts.jsonl.gz", []),
                       (tmp_path / "recordings.jsonl.gz", ["--supervisions", tmp_path / "supervisions.jsonl.gz"])):
        out = tmp_path / src.name.split(".")[0] / "m.jsonl"
        res = _prepare("lhotse", src, "--out", out, *extra)
        assert res.returncode == 0, res.stderr[-2000:]
        rows = {r.id: r for r in read_manifest(out)}
        assert set(rows) == {"s0", "s1"} and rows["s0"].lang == "en" and rows["s1"].speaker == "k2"
        assert rows["s0"].audio == str(clips[0].resolve())  # a whole recording is used where it is
        seg = load_audio(rows["s1"].audio)  # a segment is cut out
        assert abs(len(seg) / 16000 - 0.5) < 0.01 and rows["s1"].duration == pytest.approx(0.5, abs=0.01)
        np.testing.assert_allclose(seg, load_audio(clips[2])[3200:3200 + len(seg)], atol=2e-3)
    res = _prepare("lhotse", tmp_path / "recordings.jsonl.gz", "--out", tmp_path / "x.jsonl")
    assert res.returncode == 1 and "needs --supervisions" in res.stderr and "Traceback" not in res.stderr
