"""sicl eval refuses bad input before it writes or generates anything (found by a robustness audit): clips that do
not decode, a pool too small for k, a zero token budget, negative threads, a broken adapter, and a resumed run
whose manifest rows changed under the same ids."""

import json
import shutil
from pathlib import Path

import pytest

from sicl.cli.main import main
from sicl.errors import SiclError
from sicl.testing import write_rows


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _eval(data, out, *extra, data_path=None, pool=None):
    return main(["eval", "--data", str(data_path or data["queries"]), "--model", str(data["model"]),
                 "--max-new-tokens", "4", "--batch-size", "4", "--cache-dir", str(out) + "-cache",
                 "--out", str(out), *(["--pool", str(pool)] if pool else []), *extra])


@pytest.mark.parametrize("kind", ["missing", "text", "empty", "folder", "10ms"])
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
    elif kind == "10ms":  # decodes, but too short for the audio tower: refused up front, not mid-run
        import numpy as np
        import soundfile as sf

        sf.write(bad, np.zeros(160, np.float32), 16_000)
    rows[2]["audio"] = str(bad)
    manifest = write_rows(tmp_path / "q.jsonl", rows)
    out = tmp_path / "out"
    assert _eval(data, out, "--k", "0", data_path=manifest) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{manifest}:3: id {rows[2]['id']!r}" in err and "clip.wav" in err
    assert kind != "10ms" or "audio is 10 ms, too short" in err
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


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if ln.startswith("sicl eval")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


@pytest.mark.parametrize("text", ["{bad", "", "[1, 2]"])
def test_resume_names_a_corrupt_settings_json_and_changes_nothing(data, tmp_path, capsys, text):
    out = tmp_path / "out"
    out.mkdir()
    (out / "settings.json").write_text(text)
    (out / "predictions.jsonl").write_text('{"id": "q-0", "prediction": "x"}\n')
    assert _eval(data, out, "--k", "0", "--resume") == 1
    line = _one_line(capsys)
    assert f"{out / 'settings.json'}: " in line and f"delete {out} to start over" in line
    assert ("not a JSON object" if text.startswith("[") else "not valid JSON") in line
    assert sorted(p.name for p in out.iterdir()) == ["predictions.jsonl", "settings.json"]
    assert (out / "settings.json").read_text() == text


def test_resume_retrieves_again_when_the_saved_retrievals_meta_is_corrupt(data, tmp_path):
    out = tmp_path / "out"
    args = ("--k", "1", "--retriever", "random", "--limit", "2")
    assert _eval(data, out, *args, pool=data["pool"]) == 0
    first = (out / "retrievals.jsonl").read_text()
    for name in ("metrics.json", "run.json"):
        (out / name).unlink()
    rows = _rows(out / "predictions.jsonl")
    (out / "predictions.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (out / "retrievals.jsonl.meta.json").write_text("{bad")
    assert _eval(data, out, *args, "--resume", pool=data["pool"]) == 0
    assert json.loads((out / "retrievals.jsonl.meta.json").read_text())["settings"]["k"] == 1  # rewritten
    assert (out / "retrievals.jsonl").read_text() == first
    assert [(r["id"], r["raw"]) for r in _rows(out / "predictions.jsonl")] == [(r["id"], r["raw"]) for r in rows]


def test_an_unknown_or_missing_device_is_one_line_and_writes_nothing(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert _eval(data, out, "--k", "0", "--device", "bogus") == 1
    assert "unknown device 'bogus' (expected auto, cpu, cuda or cuda:N)" in _one_line(capsys) and not out.exists()
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _eval(data, out, "--k", "0", "--device", "cuda") == 1
    assert "device 'cuda' requested, but torch sees no CUDA device" in _one_line(capsys) and not out.exists()


@pytest.mark.parametrize("case", ["missing", "corrupt", "lacks_a_query", "unknown", "tfidf_dim", "no_embedder"])
def test_bad_retrieval_text_options_fail_before_anything_is_written(data, tmp_path, capsys, case):
    labels = tmp_path / "labels.jsonl"
    if case == "corrupt":
        labels.write_text("{bad\n")
    elif case == "lacks_a_query":
        labels.write_text(json.dumps({"id": "q-0", "prediction": "alpha"}) + "\n")
    labeler = {"unknown": "whisper", "tfidf_dim": "gold", "no_embedder": "gold"}.get(case, f"file:{labels}")
    extra = {"tfidf_dim": ["--embedder", "char-tfidf:0"],
             "no_embedder": ["--embedder", str(tmp_path / "no-such-embedder")]}.get(case, [])
    out = tmp_path / "out"
    assert _eval(data, out, "--k", "1", "--pseudo-labeler", labeler, "--limit", "2", *extra, pool=data["pool"]) == 1
    expected = {"missing": f"{labels}: cannot read pseudo-labels", "corrupt": f"{labels}:1: not valid JSON",
                "lacks_a_query": f"{labels}: no pseudo-label for 1 query id(s), e.g. 'q-1'",
                "unknown": "unknown pseudo-labeler 'whisper'",
                "tfidf_dim": "char-tfidf: dimension must be >= 16, got 0",
                "no_embedder": "no-such-embedder': no such folder"}[case]
    assert expected in _one_line(capsys) and not out.exists()


def test_an_id_naming_two_clips_in_data_and_pool_fails_before_anything_is_written(data, tmp_path, capsys):
    pool = [{**r, "audio": str((Path(data["pool"]).parent / r["audio"]).resolve())} for r in _rows(Path(data["pool"]))]
    pool[1]["id"] = "q-0"  # the query q-0's id, with a pool clip
    pool_path = write_rows(tmp_path / "pool.jsonl", pool)
    out = tmp_path / "out"
    assert _eval(data, out, "--k", "1", "--retriever", "random", "--limit", "2", pool=pool_path) == 1
    line = _one_line(capsys)
    assert f"{pool_path}:2: id 'q-0' names {pool[1]['audio']}" in line and f"{data['queries']}:1" in line
    assert not out.exists()


def test_a_clip_over_the_models_limit_fails_before_anything_is_written(data, tmp_path, capsys):
    from sicl.testing import write_tone

    rows = [{**r, "audio": str((Path(data["queries"]).parent / r["audio"]).resolve())}
            for r in _rows(Path(data["queries"]))[:2]]
    rows[1]["audio"] = str(write_tone(tmp_path / "long.wav", seconds=31.0))
    manifest = write_rows(tmp_path / "q.jsonl", rows)
    out = tmp_path / "out"
    assert _eval(data, out, "--k", "0", data_path=manifest) == 1
    line = _one_line(capsys)
    assert f"{manifest}:2: id {rows[1]['id']!r}" in line and "31.00 s, longer than the 30 s limit" in line
    assert not out.exists()


def test_a_failed_fresh_run_leaves_nothing_but_keeps_saved_predictions(data, tmp_path, capsys, monkeypatch):
    import sicl.retrieval.retrievers as retrievers

    def fails(*args, **kwargs):  # an error met while running, after settings.json is written
        raise SiclError("the pool became unreadable")

    monkeypatch.setattr(retrievers, "retrieve", fails)
    out = tmp_path / "out"
    args = ("--pseudo-labeler", "gold", "--limit", "2")
    assert _eval(data, out, "--k", "1", *args, pool=data["pool"]) == 1
    assert "unreadable" in _one_line(capsys) and not out.exists()
    assert _eval(data, out, "--k", "0,1", *args, pool=data["pool"]) == 1  # k=0 predicted first: kept for --resume
    assert "unreadable" in _one_line(capsys)
    assert len(_rows(out / "k=0" / "predictions.jsonl")) == 2 and (out / "settings.json").is_file()


def test_a_prompt_longer_than_the_models_positions_is_refused(data, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(data["model"], model)
    config = json.loads((model / "config.json").read_text())
    config["text_config"]["max_position_embeddings"] = 40
    (model / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    code = main(["eval", "--data", str(data["queries"]), "--pool", str(data["pool"]), "--model", str(model),
                 "--k", "2", "--retriever", "random", "--max-new-tokens", "2", "--limit", "2", "--out", str(out)])
    assert code == 1
    line = _one_line(capsys)
    assert "query 'q-" in line and "2 demonstrations), more than the model's 40 positions" in line
    assert "use a smaller --k" in line and not out.exists()
