"""sicl eval refuses bad input before it writes or generates anything (found by a robustness audit): clips that do
not decode, a pool too small for k, a zero token budget, negative threads, a broken adapter, and a resumed run
whose manifest rows changed under the same ids."""

import json
import shutil
from pathlib import Path

import pytest

from sicl.cli.main import main
from sicl.testing import write_rows


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _eval(data, out, *extra, data_path=None, pool=None):
    return main(["eval", "--data", str(data_path or data["queries"]), "--model", str(data["model"]),
                 "--max-new-tokens", "4", "--batch-size", "4", "--cache-dir", str(out) + "-cache",
                 "--out", str(out), *(["--pool", str(pool)] if pool else []), *extra])


@pytest.mark.parametrize("kind", ["missing", "text", "empty", "folder"])
def test_a_clip_that_cannot_be_read_names_manifest_line_and_id_and_writes_nothing(data, tmp_path, capsys, kind):
    rows = _rows(Path(data["queries"]))
    for r in rows:
        r["audio"] = str((Path(data["queries"]).parent / r["audio"]).resolve())
    bad = tmp_path / "clip.wav"
    if kind == "text":
        bad.write_text("this is not audio")
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "folder":
        bad.mkdir()
    rows[2]["audio"] = str(bad)
    manifest = write_rows(tmp_path / "q.jsonl", rows)
    out = tmp_path / "out"
    assert _eval(data, out, "--k", "0", data_path=manifest) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{manifest}:3: id {rows[2]['id']!r}" in err and "clip.wav" in err
    assert not out.exists()


def test_k_larger_than_the_pool_fails_before_the_k0_run_of_a_sweep(data, tmp_path, capsys):
    small = write_rows(tmp_path / "pool.jsonl", [
        {**r, "audio": str((Path(data["pool"]).parent / r["audio"]).resolve())} for r in _rows(Path(data["pool"]))[:2]])
    out = tmp_path / "out"
    assert _eval(data, out, "--k", "0,1,5", "--retriever", "random", pool=small) == 1
    err = capsys.readouterr().err
    assert f"{small}: k=5 is larger than the 2 asr pool items" in err and not out.exists()


def test_zero_token_budget_and_negative_threads_are_refused(data, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", "--data", str(data["queries"]), "--model", str(data["model"]), "--max-new-tokens", "0",
                 "--out", str(out)])
    assert code == 1 and "--max-new-tokens must be >= 1" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit) as e:
        main(["eval", "--data", str(data["queries"]), "--threads", "-2", "--out", str(out)])
    assert e.value.code == 2 and "must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("broken", ["config", "weights"])
def test_a_broken_adapter_is_one_line_and_leaves_no_output(data, tmp_path, capsys, broken):
    from sicl.models.lora import apply_lora, save_adapter
    from sicl.models.tiny_omni import load_tiny_omni

    model, _ = load_tiny_omni(data["model"])
    adapter = save_adapter(apply_lora(model), tmp_path / "adapter")
    if broken == "config":
        f = adapter / "adapter_config.json"
        f.write_text(f.read_text()[:20])
    else:
        f = adapter / "adapter_model.safetensors"
        f.write_bytes(f.read_bytes()[:100])
    out = tmp_path / "out"
    capsys.readouterr()  # the model load's own progress bar
    assert _eval(data, out, "--k", "0", "--adapter", str(adapter)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f.name in err and "Traceback" not in err
    assert not out.exists()
    assert main(["export", "--adapter", str(adapter), "--out", str(tmp_path / "merged")]) == 1
    assert f.name in capsys.readouterr().err


def test_resume_refuses_predictions_made_for_an_edited_row(data, tmp_path, capsys):
    rows = _rows(Path(data["queries"]))
    for r in rows:
        r["audio"] = str((Path(data["queries"]).parent / r["audio"]).resolve())
    manifest = write_rows(tmp_path / "q.jsonl", rows)
    out = tmp_path / "out"
    assert _eval(data, out, "--k", "0", data_path=manifest) == 0
    for name in ("metrics.json", "run.json"):
        (out / name).unlink()
    kept = _rows(out / "predictions.jsonl")
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept[:3]))
    assert _eval(data, out, "--k", "0", "--resume", data_path=manifest) == 0  # unchanged rows: resumed
    assert [r["id"] for r in _rows(out / "predictions.jsonl")] == [r["id"] for r in rows]
    for name in ("metrics.json", "run.json"):
        (out / name).unlink()
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept[:3]))
    rows[1]["target"] = "an edited gold transcript"
    write_rows(manifest, rows)
    assert _eval(data, out, "--k", "0", "--resume", data_path=manifest) == 1
    err = capsys.readouterr().err
    assert f"saved prediction for {rows[1]['id']!r}" in err and "target changed" in err
    assert not (out / "metrics.json").exists()


def test_report_refuses_a_metric_that_is_not_a_number(tmp_path, capsys):
    run = tmp_path / "runs" / "zs"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"method": "zero-shot", "eval_set": "adult", "k": 0}))
    (run / "metrics.json").write_text(json.dumps({"asr": {"n": "four", "wer": "bad"}}))
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 1
    err = capsys.readouterr().err
    assert "metrics.json: asr." in err and "not a number" in err and not (tmp_path / "report").exists()
    shutil.rmtree(tmp_path / "runs")
