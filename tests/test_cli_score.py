"""`sicl score` through the CLI entry point and as a subprocess."""

import json
import subprocess
import sys

from sicl.cli.main import main
from sicl.eval.metrics import score_file

ROWS = [
    {"id": "u1", "audio": "a.wav", "task": "asr", "target": "the cat sat", "lang": "en", "prediction": "the cat sat"},
    {"id": "u2", "audio": "b.wav", "task": "asr", "target": "a dog", "lang": "en", "prediction": "a frog",
     "demos": ["u1"]},
    {"id": "q1", "audio": "c.wav", "task": "aqa", "target": "violin", "choices": ["piano", "violin"],
     "meta": {"category": "music"}, "prediction": "B"},
]


def write(path, rows, extra=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + extra, encoding="utf-8")
    return path


def test_score_prints_the_metrics_json(tmp_path, capsys):
    p = write(tmp_path / "predictions.jsonl", ROWS)
    assert main(["score", str(p)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == score_file(p)
    assert out["asr"]["n"] == 2 and out["asr"]["wer"] == 0.2 and out["asr"]["wer_utterance_capped"] == 0.25
    # the default scorer is official: MMAU's string match on the output "B" (no token of "violin") is wrong
    assert out["aqa"] == {"n": 1, "accuracy": 0.0, "correct": 0, "empty_predictions": 0,
                          "by_category": {"music": {"n": 1, "accuracy": 0.0}},
                          "scorer": "official", "rule": "mmau-string-match"}
    assert out["asr"]["scorer"] == "official" and out["asr"]["rule"] == "whisper-corpus-wer"


def test_scorer_flag_picks_the_rule(tmp_path, capsys):
    p = write(tmp_path / "predictions.jsonl", ROWS)
    assert main(["score", str(p), "--scorer", "lenient"]) == 0  # sicl's development rule maps "B" to "violin"
    out = json.loads(capsys.readouterr().out)
    assert out["aqa"]["accuracy"] == 1.0 and out["aqa"]["scorer"] == "lenient"
    assert out["asr"]["wer"] == 0.2  # lenient's ASR rule is the official one
    assert main(["score", str(p), "--scorer", "mimo-eval"]) == 0
    out = json.loads(capsys.readouterr().out)
    # MiMo-Audio-Eval: mean of utterance WERs (0 and 1/2), no capped/corpus variants; "B" extracted, still wrong
    assert out["asr"]["wer"] == 0.25 and "wer_utterance_capped" not in out["asr"]
    assert out["aqa"]["accuracy"] == 0.0 and out["aqa"]["rule"] == "mimo-extract+mmau-string-match"


def test_unknown_scorer_is_one_line(tmp_path):
    p = write(tmp_path / "predictions.jsonl", ROWS)
    r = subprocess.run([sys.executable, "-m", "sicl", "score", str(p), "--scorer", "fancy"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "invalid choice: 'fancy'" in r.stderr and "Traceback" not in r.stderr


def test_task_filter_and_pooled_files(tmp_path, capsys):
    a = write(tmp_path / "a.jsonl", ROWS[:2])
    b = write(tmp_path / "b.jsonl", ROWS[2:])
    assert main(["score", str(a), str(b), "--task", "aqa"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == ["aqa"]
    assert main(["score", str(a), str(b)]) == 0
    assert list(json.loads(capsys.readouterr().out)) == ["asr", "aqa"]


def test_same_id_in_two_files_is_an_error(tmp_path, capsys):
    a = write(tmp_path / "a.jsonl", ROWS[:2])
    b = write(tmp_path / "b.jsonl", [ROWS[2], ROWS[0]])
    assert main(["score", str(a), str(b)]) == 1
    err = capsys.readouterr().err
    assert "b.jsonl:2: id 'u1' is also in " in err and "a.jsonl:1 (files are pooled" in err and err.count("\n") == 1


def test_nothing_to_score_is_an_error(tmp_path, capsys):
    p = write(tmp_path / "p.jsonl", ROWS[:2])
    assert main(["score", str(p), "--task", "st"]) == 1
    assert "no prediction rows of task st" in capsys.readouterr().err


def test_bad_line_is_one_line_naming_file_and_line(tmp_path):
    p = write(tmp_path / "predictions.jsonl", ROWS[:1], extra='{"id": "u9", "task": "asr", "tar\n')
    out = subprocess.run([sys.executable, "-m", "sicl", "score", str(p)], capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("sicl score: error: ") and f"{p}:2: invalid JSON" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_missing_prediction_field_names_the_line(tmp_path, capsys):
    bad = dict(ROWS[1])
    del bad["prediction"]
    p = write(tmp_path / "p.jsonl", [ROWS[0], bad])
    assert main(["score", str(p)]) == 1
    assert f"{p}:2: missing field 'prediction'" in capsys.readouterr().err
