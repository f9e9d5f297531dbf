"""sicl eval on a random tiny-omni and tone clips: files and fields, resume, sweeps, leakage, bad input."""

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sicl.cli.main import main
from sicl.errors import SiclError
from sicl.eval.metrics import score_rows
from sicl.eval.runner import EvalConfig, evaluate
from sicl.testing import write_rows

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {"id", "audio", "task", "target", "prediction", "raw", "demos", "k", "prompt_audio_tokens",
          "prompt_text_tokens", "generated_tokens", "seconds"}


def cfg(data, out, **kw) -> EvalConfig:
    base = dict(data=str(data["queries"]), pool=str(data["pool"]), out=str(out), model=str(data["model"]),
                ks=[2], retriever="random", batch_size=4, max_new_tokens=6, cache_dir=str(out) + "-cache")
    base.update(kw)
    return EvalConfig(**base)


def rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_single_run_writes_predictions_metrics_and_run(data, tmp_path):
    out = evaluate(cfg(data, tmp_path / "run"))
    preds = rows(out / "predictions.jsonl")
    queries = [json.loads(line)["id"] for line in Path(data["queries"]).read_text().splitlines()]
    assert [r["id"] for r in preds] == queries  # manifest order
    for r in preds:
        assert FIELDS <= set(r) and r["k"] == 2 and len(r["demos"]) == 2
        assert r["prompt_audio_tokens"] > 0 and r["prompt_text_tokens"] > 0
    assert json.loads((out / "metrics.json").read_text()) == score_rows(preds)
    run = json.loads((out / "run.json").read_text())
    assert run["method"] == "vanilla-icl" and run["k"] == 2 and run["n"] == len(queries)
    assert run["eval_set"] == Path(data["queries"]).parent.name
    assert {"seconds_total", "seconds_per_query", "retrieval_seconds"} <= set(run["timing"])
    assert {"prompt_audio_tokens", "prompt_text_tokens", "prompt_tokens", "generated_tokens"} <= set(run["tokens"])
    assert run["memory"]["peak_rss_mb"] > 0 and run["versions"]["torch"]
    assert (out / "retrievals.jsonl").is_file()


def test_resume_after_a_torn_write_predicts_each_query_once(data, tmp_path):
    ref = evaluate(cfg(data, tmp_path / "ref", batch_size=2))
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    for name in ("metrics.json", "run.json"):
        (out / name).unlink()
    # as if killed while writing: two finished rows, then a torn line
    lines = (ref / "predictions.jsonl").read_text().splitlines(keepends=True)
    (out / "predictions.jsonl").write_text(lines[3] + lines[0] + lines[5][:40])
    with pytest.raises(SiclError, match="--resume"):
        evaluate(cfg(data, out, batch_size=2))
    evaluate(cfg(data, out, batch_size=2), resume=True)
    got = rows(out / "predictions.jsonl")
    assert sorted(r["id"] for r in got) == sorted({r["id"] for r in got}) and len(got) == len(lines)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in got]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in rows(ref / "predictions.jsonl")]
    assert (out / "metrics.json").read_text() == (ref / "metrics.json").read_text()


def test_resume_with_other_settings_is_refused(data, tmp_path):
    out = evaluate(cfg(data, tmp_path / "run", ks=[1]))
    with pytest.raises(SiclError, match="different settings"):
        evaluate(cfg(data, out, ks=[1], batch_size=3), resume=True)
    # one k writes OUT/predictions.jsonl, a sweep OUT/k=N/: neither can continue as the other
    with pytest.raises(SiclError, match=r"layout: 'one k' -> 'sweep'"):
        evaluate(cfg(data, out, ks=[0, 1]), resume=True)
    sweep = evaluate(cfg(data, tmp_path / "sweep", ks=[0, 1]))
    with pytest.raises(SiclError, match=r"layout: 'sweep' -> 'one k'"):
        evaluate(cfg(data, sweep, ks=[1]), resume=True)
    evaluate(cfg(data, sweep, ks=[0, 1, 2]), resume=True)  # a sweep grows by more k
    assert (sweep / "k=2" / "predictions.jsonl").is_file()
    # a folder an older version left holding both layouts is never continued either
    shutil.copy(out / "predictions.jsonl", sweep / "predictions.jsonl")
    with pytest.raises(SiclError, match=r"layout: 'sweep and one k' -> 'sweep'"):
        evaluate(cfg(data, sweep, ks=[0, 1, 2]), resume=True)


def test_batch_size_does_not_change_predictions(data, tmp_path):
    one = rows(evaluate(cfg(data, tmp_path / "b1", batch_size=1)) / "predictions.jsonl")
    many = rows(evaluate(cfg(data, tmp_path / "b4", batch_size=4)) / "predictions.jsonl")
    assert [r["raw"] for r in one] == [r["raw"] for r in many]


def test_sweep_writes_k_dirs_and_csv_and_never_uses_the_query(data, tmp_path):
    # the queries are their own pool: leave-one-out
    out = evaluate(cfg(data, tmp_path / "sweep", ks=[0, 1, 2], pool=str(data["queries"])))
    for k in (0, 1, 2):
        preds = rows(out / f"k={k}" / "predictions.jsonl")
        assert all(len(r["demos"]) == k and r["id"] not in r["demos"] for r in preds)
        run = json.loads((out / f"k={k}" / "run.json").read_text())
        assert run["method"] == ("zero-shot" if k == 0 else "vanilla-icl")
    k1 = rows(out / "k=1" / "predictions.jsonl")
    k2 = rows(out / "k=2" / "predictions.jsonl")
    for a, b in zip(k1, k2, strict=True):  # top-k prefixes of one list, nearest demo next to the query
        assert a["demos"][-1] == b["demos"][-1]
    with open(out / "sweep.csv") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["k", "task", "metric", "value", "seconds_per_query", "prompt_tokens", "peak_rss_mb"]
    assert {r["k"] for r in table} == {"0", "1", "2"} and {r["metric"] for r in table} >= {"wer", "cer"}
    top = json.loads((out / "run.json").read_text())
    assert top["ks"] == [0, 1, 2] and top["runs"]["1"] == "k=1"


def test_backbone_pseudo_labels_reuse_the_zero_shot_predictions(data, tmp_path):
    out = evaluate(cfg(data, tmp_path / "ticl", ks=[0, 1], retriever="ticl", pseudo_labeler="backbone"))
    meta = json.loads((out / "retrievals.jsonl.meta.json").read_text())
    assert meta["pseudo_labels_generated"] == 0  # every ASR query's label came from the k=0 run


def test_method_and_adapter_labels(data, tmp_path):
    out = evaluate(cfg(data, tmp_path / "m", ks=[0], method="my-method", eval_set="kids", pool=None))
    run = json.loads((out / "run.json").read_text())
    assert run["method"] == "my-method" and run["eval_set"] == "kids"


def test_loop_trim_shortens_only_looping_free_text_and_keeps_the_raw_generation():
    from sicl.data.manifest import Example
    from sicl.episodes.episode import Episode
    from sicl.eval.backends import Generation
    from sicl.eval.runner import _row

    loop = Generation(text="the lever works abtain abtain abtain abtain")
    asr = Episode(query=Example(id="q", audio="q.wav", task="asr", target="the lever works"))
    row = _row(asr, loop, "plain", 0.1, loop_trim=3)
    assert row["prediction"] == "the lever works abtain" and row["raw"] == loop.text
    assert _row(asr, loop, "plain", 0.1, loop_trim=0)["prediction"] == loop.text  # off
    qa = Episode(query=Example(id="c", audio="c.wav", task="sqa", target="two two two", question="n?",
                               choices=["two two two", "one"]))
    assert _row(qa, Generation(text="two two two"), "plain", 0.1, loop_trim=3)["prediction"] == "two two two"


def test_loop_trim_is_a_resume_setting_and_old_runs_read_as_off(data, tmp_path):
    from sicl.eval.runner import settings_changed

    out = evaluate(cfg(data, tmp_path / "run", ks=[0], pool=None, loop_trim=0, max_new_tokens=40))
    raw = rows(out / "predictions.jsonl")
    settings = json.loads((out / "settings.json").read_text())
    del settings["loop_trim"]  # as written before the setting existed: its predictions were never trimmed
    (out / "settings.json").write_text(json.dumps(settings))
    assert settings_changed(out, cfg(data, out, ks=[0], pool=None, max_new_tokens=40)) == {}  # default: off
    changed = cfg(data, out, ks=[0], pool=None, loop_trim=3, max_new_tokens=40)
    assert settings_changed(out, changed) == {"loop_trim": (0, 3)}
    with pytest.raises(SiclError, match="loop_trim: 0 -> 3"):
        evaluate(changed, resume=True)
    with pytest.raises(SiclError, match="loop_trim must be 0"):
        evaluate(cfg(data, tmp_path / "bad", ks=[0], pool=None, loop_trim=1))
    trimmed = rows(evaluate(cfg(data, tmp_path / "trim", ks=[0], pool=None, loop_trim=2, max_new_tokens=40))
                   / "predictions.jsonl")
    assert [r["raw"] for r in trimmed] == [r["raw"] for r in raw]  # the same generations
    from sicl.episodes.prompts import extract_answer, trim_loops

    assert [r["prediction"] for r in trimmed] == [trim_loops(extract_answer(r["raw"]), 2) for r in raw]
    assert any(t["prediction"] != r["prediction"] for t, r in zip(trimmed, raw, strict=True))  # the model loops


def test_bad_manifest_is_one_line_error_and_writes_nothing(data, tmp_path, capsys):
    bad = write_rows(tmp_path / "bad.jsonl", [{"id": "a", "audio": "x.wav", "task": "asr", "target": "t"},
                                              "{not json"])
    out = tmp_path / "out"
    code = main(["eval", "--data", str(bad), "--model", str(data["model"]), "--out", str(out)])
    assert code == 1 and "bad.jsonl:2" in capsys.readouterr().err
    assert not out.exists()
    code = main(["eval", "--data", str(data["queries"]), "--model", str(data["model"]), "--k", "2",
                 "--out", str(out)])
    assert code == 1 and "--pool" in capsys.readouterr().err and not out.exists()


def _cli(data, out, *extra):
    return [sys.executable, "-m", "sicl", "eval", "--data", str(data["queries"]), "--pool", str(data["pool"]),
            "--model", str(data["model"]), "--k", "2", "--retriever", "random", "--max-new-tokens", "40",
            "--cache-dir", str(out) + "-cache", "--out", str(out), *extra]


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_run(data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    ref = tmp_path / "ref"
    subprocess.run(_cli(data, ref, "--batch-size", "1"), cwd=ROOT, env=env, check=True, capture_output=True)
    out = tmp_path / "run"
    # batch 1 and 40 new tokens per query: slow enough for the kill to land mid-way
    proc = subprocess.Popen(_cli(data, out, "--batch-size", "1"), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pred = out / "predictions.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if pred.exists() and pred.read_text().count("\n") >= 2:
            proc.kill()  # SIGKILL
            break
        time.sleep(0.05)
    proc.wait()
    assert not (out / "metrics.json").exists(), "the run finished before it could be killed"
    done = subprocess.run(_cli(data, out, "--batch-size", "1", "--resume"), cwd=ROOT, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    got, want = rows(out / "predictions.jsonl"), rows(ref / "predictions.jsonl")
    assert [r["id"] for r in got] == [r["id"] for r in want]
    assert [r["raw"] for r in got] == [r["raw"] for r in want]
    assert (out / "metrics.json").read_text() == (ref / "metrics.json").read_text()


def test_scorer_is_named_in_metrics_and_rescoring_on_resume_keeps_predictions(data, tmp_path):
    """--scorer (issue 20): default official; a finished run resumed with another scorer is re-scored from the
    same predictions; an unknown scorer fails before anything is written."""
    out = evaluate(cfg(data, tmp_path / "run"))
    preds = (out / "predictions.jsonl").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert {m["scorer"] for m in metrics.values()} == {"official"}
    evaluate(cfg(data, out, scorer="lenient"), resume=True)
    assert (out / "predictions.jsonl").read_text() == preds
    assert json.loads((out / "metrics.json").read_text()) == score_rows(rows(out / "predictions.jsonl"), "lenient")
    assert json.loads((out / "settings.json").read_text())["scorer"] == "lenient"
    with pytest.raises(SiclError, match="unknown scorer 'nope'"):
        evaluate(cfg(data, tmp_path / "other", scorer="nope"))
    assert not (tmp_path / "other").exists()


def test_an_adapter_retrained_in_place_is_a_settings_change(data, tmp_path):
    from sicl.eval.runner import settings_changed
    from sicl.models.lora import apply_lora, save_adapter
    from sicl.models.tiny_omni import load_tiny_omni

    model, _ = load_tiny_omni(data["model"])
    adapter = save_adapter(apply_lora(model), tmp_path / "adapter")
    out = evaluate(cfg(data, tmp_path / "run", ks=[0], pool=None, adapter=str(adapter)))
    same = cfg(data, out, ks=[0], pool=None, adapter=str(adapter))
    assert settings_changed(out, same) == {}
    from safetensors.torch import load_file, save_file

    weights = adapter / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    save_file({k: v + 0.01 for k, v in tensors.items()}, str(weights))  # the same folder, other weights
    assert list(settings_changed(out, same)) == ["adapter weights"]
    with pytest.raises(SiclError, match="adapter weights"):
        evaluate(same, resume=True)
    settings = json.loads((out / "settings.json").read_text())
    del settings["adapter_weights_sha1"]  # a run saved before the key existed is not compared on it
    (out / "settings.json").write_text(json.dumps(settings))
    assert settings_changed(out, same) == {}


def _tree(data, root: Path) -> dict[str, Path]:
    """A folder holding everything a run reads but the model: the manifests with their clips (relative paths), an
    adapter, and the run folders (the zero-shot run's transcripts are the other run's pseudo-labels)."""
    from sicl.models.lora import apply_lora, save_adapter
    from sicl.models.tiny_omni import load_tiny_omni

    for name in ("queries", "pool"):
        src = Path(data[name])
        (root / "data").mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / "data" / src.name)
        shutil.copytree(src.parent / src.stem, root / "data" / src.stem)
    model, _ = load_tiny_omni(data["model"])
    save_adapter(apply_lora(model), root / "models" / "a")
    return {"queries": root / "data" / Path(data["queries"]).name, "pool": root / "data" / Path(data["pool"]).name,
            "adapter": root / "models" / "a", "zs": root / "eval" / "zs", "icl": root / "eval" / "icl"}


def _runs(data, t: dict[str, Path]) -> tuple[EvalConfig, EvalConfig]:
    files = {"queries": t["queries"], "pool": t["pool"], "model": data["model"]}
    zs = cfg(files, t["zs"], ks=[0], pool=None)
    icl = cfg(files, t["icl"], ks=[0, 1], adapter=str(t["adapter"]), retriever="ticl", embedder="char-tfidf",
              pseudo_labeler=f"file:{t['zs'] / 'predictions.jsonl'}")
    return zs, icl


def _predicted(out: Path) -> list[int]:
    return [json.loads(p.read_text())["timing"]["predicted_this_call"] for p in sorted(out.rglob("run.json"))
            if "timing" in json.loads(p.read_text())]


def test_a_moved_run_folder_resumes_without_predicting_again_and_a_changed_input_is_refused(data, tmp_path):
    """settings.json names files by absolute path; a folder moved with its inputs (data, pool, adapter, the
    pseudo-labels file: the same place relative to the run folder, the same SHA-1) resumes as the same run."""
    from sicl.eval.runner import settings_changed

    old = _tree(data, tmp_path / "old")
    for c in _runs(data, old):
        evaluate(c)
    saved = json.loads((old["icl"] / "settings.json").read_text())
    assert saved["data"] == str(old["queries"].resolve()) and saved["out"] == str(old["icl"].resolve())
    assert {"data_sha1", "pool_sha1", "pseudo_labels_sha1", "adapter_weights_sha1"} <= set(saved)
    preds = {name: sorted(p.read_text() for p in old[name].rglob("predictions.jsonl")) for name in ("zs", "icl")}
    shutil.move(tmp_path / "old", tmp_path / "new")
    new = {k: tmp_path / "new" / v.relative_to(tmp_path / "old") for k, v in old.items()}
    zs, icl = _runs(data, new)
    assert settings_changed(new["zs"], zs) == {} and settings_changed(new["icl"], icl) == {}
    for c in (zs, icl):
        evaluate(c, resume=True)
    assert _predicted(new["zs"]) == [0] and _predicted(new["icl"]) == [0, 0]  # nothing predicted again
    assert {name: sorted(p.read_text() for p in new[name].rglob("predictions.jsonl")) for name in preds} == preds
    assert json.loads((new["icl"] / "settings.json").read_text())["out_history"] == [
        str(old["icl"].resolve()), str(new["icl"].resolve())]
    # moved again, and copied: the saved rows still name the clips of the first folder
    shutil.copytree(tmp_path / "new", tmp_path / "copy")
    copy = {k: tmp_path / "copy" / v.relative_to(tmp_path / "new") for k, v in new.items()}
    for c in _runs(data, copy):
        evaluate(c, resume=True)
    assert _predicted(copy["icl"]) == [0, 0]
    # another manifest in the moved copy (one gold transcript edited): refused, not resumed
    rows_ = [json.loads(line) for line in copy["queries"].read_text().splitlines()]
    rows_[0]["target"] = "an edited transcript"
    copy["queries"].write_text("".join(json.dumps(r) + "\n" for r in rows_))
    shutil.copytree(tmp_path / "copy", tmp_path / "edited")
    shutil.rmtree(tmp_path / "copy" / "eval" / "zs")  # only the ICL run's checks: its inputs
    zs, icl = _runs(data, {k: tmp_path / "edited" / v.relative_to(tmp_path / "copy") for k, v in copy.items()})
    assert list(settings_changed(zs.out, zs)) == ["data content"]
    with pytest.raises(SiclError, match=r"different settings .*data content: '.*edited/data/q.jsonl \(SHA-1 "):
        evaluate(zs, resume=True)
    # another pool, or other pseudo-labels, in a moved copy: refused too (the adapter: its weights)
    pool = Path(icl.pool)
    pool.write_text("".join(pool.read_text().splitlines(keepends=True)[::-1]))
    (Path(icl.out).parent / "zs" / "predictions.jsonl").write_text("")
    assert set(settings_changed(icl.out, icl)) == {"data content", "pool content", "pseudo_labeler content"}
    # the same manifest (same bytes) at another place relative to the run folder: another input, as before
    shutil.copytree(new["queries"].parent, tmp_path / "other")
    elsewhere = cfg({"queries": tmp_path / "other" / new["queries"].name, "pool": new["pool"], "model": data["model"]},
                    new["zs"], ks=[0], pool=None)
    assert list(settings_changed(new["zs"], elsewhere)) == ["data"]


def test_a_settings_json_written_before_input_hashes_is_compared_by_path(data, tmp_path):
    """A run saved by an earlier sicl (no SHA-1s, no out_history): resumed in place as before; moved, its inputs'
    paths differ, and --resume says so (the study makes it again) rather than failing on its saved rows."""
    from sicl.eval.runner import settings_changed

    old = _tree(data, tmp_path / "old")
    zs, _ = _runs(data, old)
    evaluate(zs)
    settings = json.loads((old["zs"] / "settings.json").read_text())
    for key in ("data_sha1", "out_history"):
        del settings[key]
    settings["out"] = "eval/zs"  # as given on the command line, relative
    (old["zs"] / "settings.json").write_text(json.dumps(settings))
    assert settings_changed(old["zs"], zs) == {}
    evaluate(zs, resume=True)
    assert _predicted(old["zs"]) == [0]
    (old["zs"] / "settings.json").write_text(json.dumps(settings))
    shutil.move(tmp_path / "old", tmp_path / "new")
    zs, _ = _runs(data, {k: tmp_path / "new" / v.relative_to(tmp_path / "old") for k, v in old.items()})
    assert list(settings_changed(zs.out, zs)) == ["data"]
    with pytest.raises(SiclError, match="different settings"):
        evaluate(zs, resume=True)


def test_a_pool_or_pseudo_labels_edited_in_place_is_refused_on_resume(data, tmp_path):
    """A pool manifest (or pseudo-labels file) edited at the same path since the run: its saved neighbours were
    retrieved from the old transcripts, so --resume refuses, naming the content (it reused retrievals.jsonl)."""
    from sicl.eval.runner import settings_changed

    t = _tree(data, tmp_path / "t")
    zs, icl = _runs(data, t)
    evaluate(zs)
    evaluate(icl)
    assert settings_changed(icl.out, icl) == {}
    pool = Path(icl.pool)
    rows_ = [json.loads(line) for line in pool.read_text().splitlines()]
    rows_[0]["target"] = "a transcript edited in place"
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows_))
    assert list(settings_changed(icl.out, icl)) == ["pool content"]
    with pytest.raises(SiclError, match=r"different settings .*pool content: "):
        evaluate(icl, resume=True)
    labels = Path(icl.pseudo_labeler[len("file:"):])
    labels.write_text(labels.read_text().replace('"raw": "', '"raw": "x', 1))
    assert set(settings_changed(icl.out, icl)) == {"pool content", "pseudo_labeler content"}
    # the data file edited in place stays a row-by-row check (an added row is predicted, an edited one refused)
    assert settings_changed(zs.out, zs) == {}
