import numpy as np
import pytest
import soundfile as sf

from sicl.cli.main import main
from sicl.data.validate import validate_manifest
from sicl.errors import SiclError
from sicl.testing import tiny_asr_manifest, write_rows, write_tone


def test_valid_manifest_with_unusual_audio_passes(tmp_path, capsys):
    write_tone(tmp_path / "st.mp3", seconds=1.0, sample_rate=44_100, channels=2)
    write_tone(tmp_path / "hi.flac", seconds=1.0, sample_rate=48_000)
    write_tone(tmp_path / "o.ogg", seconds=1.0, sample_rate=22_050, channels=2)
    rows = [
        {"id": "a", "audio": "st.mp3", "task": "asr", "target": "hello"},
        {"id": "b", "audio": "hi.flac", "task": "aqa", "question": "Pitch?", "choices": ["high", "low"],
         "target": "low", "meta": {"category": "pitch"}},
        {"id": "c", "audio": str(tmp_path / "o.ogg"), "task": "st", "target": "hallo", "target_lang": "de",
         "transcript": "hello", "duration": 1.0},
    ]
    path = write_rows(tmp_path / "m.jsonl", rows)
    assert main(["validate", str(path)]) == 0
    assert "OK, 3 rows" in capsys.readouterr().out


def test_every_kind_of_bad_row_is_reported_once_per_line(tmp_path, capsys):
    write_tone(tmp_path / "ok.wav", seconds=0.5)
    write_tone(tmp_path / "long.wav", seconds=3.0)
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, dtype=np.float32), 16_000)
    nan = np.zeros(800, dtype=np.float32)
    nan[3] = np.inf
    sf.write(str(tmp_path / "inf.wav"), nan, 16_000, subtype="FLOAT")
    (tmp_path / "corrupt.wav").write_bytes(b"\x00" * 100)
    rows = [
        {"id": "good", "audio": "ok.wav", "task": "asr", "target": "fine"},     # 1
        '{"id": "broken json", ',                                                # 2
        {"audio": "ok.wav", "task": "asr"},                                      # 3 missing id
        {"id": "t", "audio": "ok.wav", "task": "translate"},                     # 4 unknown task
        {"id": "good", "audio": "ok.wav", "task": "asr"},                        # 5 duplicate id
        {"id": "ch", "audio": "ok.wav", "task": "aqa", "choices": ["x", "y"], "target": "z"},  # 6
        {"id": "miss", "audio": "nope.wav", "task": "asr"},                      # 7
        {"id": "empty", "audio": "empty.wav", "task": "asr"},                    # 8
        {"id": "inf", "audio": "inf.wav", "task": "asr"},                        # 9
        {"id": "corrupt", "audio": "corrupt.wav", "task": "asr"},                # 10
        {"id": "long", "audio": "long.wav", "task": "asr"},                      # 11
        {"id": "typ", "audio": "ok.wav", "task": "asr", "choices": [1, 2]},      # 12
    ]
    path = write_rows(tmp_path / "m.jsonl", rows)
    assert main(["validate", str(path), "--max-seconds", "2"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    problems = [line for line in out[:-1]]
    assert "Traceback" not in "\n".join(out)
    expected = {2: "invalid JSON", 3: "missing required field 'id'", 4: "unknown task 'translate'",
                5: "duplicate id", 6: "not one of the choices", 7: "audio file not found",
                8: "audio is empty", 9: "NaN or infinite", 10: "cannot decode audio",
                11: "longer than the 2 s limit", 12: "list of strings"}
    for line_no, message in expected.items():
        hits = [p for p in problems if f":line {line_no}:" in p]
        assert len(hits) == 1 and message in hits[0], (line_no, hits)
    assert not [p for p in problems if ":line 1:" in p]
    assert out[-1].endswith(f"{len(expected)} problem(s) on {len(expected)} of 12 rows")


def test_require_target_and_missing_file(tmp_path, capsys):
    path = tiny_asr_manifest(tmp_path, n=2)
    assert main(["validate", str(path), "--require-target"]) == 0
    write_rows(tmp_path / "nt.jsonl", [{"id": "a", "audio": "audio/utt0.wav", "task": "asr"}])
    assert main(["validate", str(tmp_path / "nt.jsonl"), "--require-target"]) == 1
    assert "missing 'target'" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "absent.jsonl")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "absent.jsonl: cannot open manifest" in err[0]


def test_duration_mismatch_is_reported(tmp_path, capsys):
    write_tone(tmp_path / "a.wav", seconds=1.0)
    path = write_rows(tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav", "task": "asr", "duration": 5.0}])
    assert main(["validate", str(path)]) == 1
    assert "'duration' is 5 s but the audio is 1.00 s" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1"])
def test_max_seconds_must_be_positive_and_finite(tmp_path, capsys, value):
    write_tone(tmp_path / "long.wav", seconds=3.0)
    path = write_rows(tmp_path / "m.jsonl", [{"id": "a", "audio": "long.wav", "task": "asr"}])
    assert main(["validate", str(path), f"--max-seconds={value}"]) == 1
    cap = capsys.readouterr()
    assert cap.out == "" and "Traceback" not in cap.err
    assert cap.err.strip() == ("sicl validate: error: --max-seconds must be a positive number of seconds, "
                               f"not {float(value)!r}")
    with pytest.raises(SiclError, match="--max-seconds must be a positive number"):
        validate_manifest(path, max_seconds=float(value))


def test_duplicate_choices_and_text_named_mp3(tmp_path, capsys):
    write_tone(tmp_path / "ok.wav", seconds=0.5)
    (tmp_path / "text.mp3").write_text("not audio at all\n")
    rows = [{"id": "d", "audio": "ok.wav", "task": "aqa", "question": "Q?", "choices": ["x", "x"], "target": "x"},
            {"id": "t", "audio": "text.mp3", "task": "asr"}]
    path = write_rows(tmp_path / "m.jsonl", rows)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "line 1: id 'd': field 'choices' holds 'x' more than once (the answer would be ambiguous)" in out
    assert "line 2: id 't':" in out and "text.mp3: cannot decode audio (not a recognised audio format)" in out
