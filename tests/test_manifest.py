import json
import os

import pytest

from sicl.data.manifest import Example, read_manifest, write_manifest
from sicl.errors import ManifestError
from sicl.testing import tiny_asr_manifest, write_rows


def test_roundtrip_keeps_every_field_and_relative_audio(tmp_path):
    ex = Example(id="q1", audio=str(tmp_path / "a" / "x.wav"), task="sqa", target="red",
                 question="Which colour?", choices=["red", "blue"], lang="en", transcript="a red car",
                 speaker="s1", duration=1.5, meta={"category": "colour", "difficulty": "easy"})
    path = write_manifest(tmp_path / "m.jsonl", [ex])
    row = json.loads(path.read_text().strip())
    assert row["audio"] == "a/x.wav"  # below the manifest folder -> written relative
    back = read_manifest(path)[0]
    assert back == Example(**{**ex.__dict__, "audio": str((tmp_path / "a" / "x.wav").resolve())})


def test_relative_audio_resolves_against_manifest_folder(tmp_path):
    sub = tmp_path / "sub"
    write_rows(sub / "m.jsonl", [{"id": "a", "audio": "clips/a.wav", "task": "asr"}])
    ex = read_manifest(sub / "m.jsonl")[0]
    assert ex.audio == str((sub / "clips" / "a.wav").resolve())
    assert ex.lang == "en"


@pytest.mark.parametrize("row, message", [
    ('{"id": "a", "audio": "x.wav"', "invalid JSON"),
    ('[1, 2]', "expected an object"),
    ({"audio": "x.wav", "task": "asr"}, "missing required field 'id'"),
    ({"id": "a", "task": "asr"}, "missing required field 'audio'"),
    ({"id": "a", "audio": "x.wav", "task": "dance"}, "unknown task 'dance'"),
    ({"id": 3, "audio": "x.wav", "task": "asr"}, "'id' must be a string"),
    ({"id": "a", "audio": "x.wav", "task": "aqa", "target": "c", "choices": ["a", "b"]},
     "not one of the choices"),
    ({"id": "a", "audio": "x.wav", "task": "aqa", "choices": "a,b"}, "list of strings"),
    ({"id": "a", "audio": "x.wav", "task": "asr", "duration": -1}, "non-negative"),
    ({"id": "a", "audio": "x.wav", "task": "asr", "meta": [1]}, "'meta' must be an object"),
    ({"id": "a", "audio": "x.wav", "task": "asr", "text": "hi"}, "unknown field"),
])
def test_bad_rows_raise_with_file_and_line(tmp_path, row, message):
    path = write_rows(tmp_path / "m.jsonl", [{"id": "ok", "audio": "x.wav", "task": "asr"}, row])
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert f"{path}:2:" in str(err.value)
    assert message in str(err.value)


def test_duplicate_ids_and_missing_target(tmp_path):
    path = write_rows(tmp_path / "m.jsonl", [{"id": "a", "audio": "x.wav", "task": "asr"}] * 2)
    with pytest.raises(ManifestError, match=r"m.jsonl:2: duplicate id 'a' \(first on line 1\)"):
        read_manifest(path)
    path = write_rows(tmp_path / "n.jsonl", [{"id": "a", "audio": "x.wav", "task": "asr"}])
    assert read_manifest(path)[0].target is None
    with pytest.raises(ManifestError, match="'target' is required"):
        read_manifest(path, require_target=True)


def test_empty_manifest_is_an_error(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(ManifestError, match="no rows"):
        read_manifest(tmp_path / "e.jsonl")


def test_write_is_atomic_and_leaves_no_partial_file(tmp_path):
    good = tiny_asr_manifest(tmp_path, n=2)
    before = good.read_bytes()

    def rows():
        yield Example(id="x", audio="a.wav", task="asr")
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        write_manifest(good, rows())
    assert good.read_bytes() == before  # the old manifest is intact
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []
    with pytest.raises(ManifestError, match="duplicate id"):
        write_manifest(tmp_path / "new.jsonl", [Example("x", "a.wav", "asr")] * 2)
    assert not (tmp_path / "new.jsonl").exists()


def test_unicode_is_kept(tmp_path):
    ex = Example(id="zh1", audio="a.wav", task="st", target="你好，世界", lang="en", target_lang="zh")
    path = write_manifest(tmp_path / "m.jsonl", [ex])
    assert "你好" in path.read_text(encoding="utf-8")
    assert read_manifest(path)[0].target == "你好，世界"
