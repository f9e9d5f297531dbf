"""The demo study's targets name what the study has (its eval sets, methods, baselines), checked while study.yaml
loads: a target naming anything else could never be checked and would only be missing from the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sicl.cli.main import main
from sicl.errors import ConfigError
from sicl.study import DEFAULT_CONFIG, Study, load_study

SETS = "child-science, child-reading, adult, names, translate, aqa"
METHODS = "zero-shot, vanilla-icl, sicl-at1, sicl-at2, sicl-at3, direct-ft"
AQA_K3 = '{label: "sicl-at2 improves aqa (k=3)", eval_set: aqa, metric: accuracy, method: sicl-at2'


def _study_file(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "study.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "problem"), [
    (AQA_K3, AQA_K3.replace("eval_set: aqa", "eval_set: aqa2"),
     f"eval_set 'aqa2' is not one of the study's eval sets ({SETS})"),
    (AQA_K3, AQA_K3.replace("method: sicl-at2", "method: sicl-at9"),
     f"method 'sicl-at9' is not one of the study's methods ({METHODS})"),
    (AQA_K3, AQA_K3.replace("method: sicl-at2", "method: 'sicl-ft*'"),
     f"method 'sicl-ft*' matches none of the study's methods ({METHODS})"),
    (AQA_K3 + ", baseline: zero-shot", AQA_K3 + ", baseline: zero-shoot",
     f"baseline 'zero-shoot' is not one of the study's methods ({METHODS})"),
])
def test_a_target_naming_what_the_study_lacks_is_one_line_naming_file_entry_and_names(tmp_path, old, new, problem):
    path = _study_file(tmp_path, old, new)
    with pytest.raises(ConfigError) as e:
        load_study(path)
    assert str(e.value) == f"{path}: targets[7] ('sicl-at2 improves aqa (k=3)'): {problem}"


def test_a_target_naming_an_unknown_eval_set_stops_sicl_demo_before_anything_is_built(tmp_path, capsys):
    path = _study_file(tmp_path, AQA_K3, AQA_K3.replace("eval_set: aqa", "eval_set: aqa2"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--config", str(path), "--size", "small"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [f"sicl demo: error: {path}: targets[7] ('sicl-at2 improves aqa (k=3)'): eval_set 'aqa2' is not one "
                   f"of the study's eval sets ({SETS})"]
    assert not (out / "data").exists()


def test_targets_given_on_the_command_line_are_checked_against_the_study_as_it_runs():
    target = "targets=[{eval_set: adult, metric: wer, method: sicl-at1, baseline: zero-shot}]"
    sets = "eval_sets=[{name: aqa, data: aqa/test.jsonl, pool: aqa/pool.jsonl}]"
    assert load_study(None, [target]).targets[0].eval_set == "adult"
    with pytest.raises(ConfigError) as e:
        load_study(None, [sets, "sweep_sets=[]", target])
    assert str(e.value) == f"override {target}: targets[0]: eval_set 'adult' is not one of the study's eval sets (aqa)"


def test_a_quoted_factor_in_study_yaml_is_an_error_naming_the_file_and_entry(tmp_path):
    path = _study_file(tmp_path, "baseline: zero-shot, factor: 0.6}", 'baseline: zero-shot, factor: "0.6"}')
    with pytest.raises(ConfigError) as e:
        load_study(path)
    assert str(e.value) == (f"{path}: targets[0].factor must be a number (float), got the string '0.6'; a quoted "
                            "value is text: write it without quotes")
    assert load_study(None, ["targets=[{eval_set: aqa, metric: accuracy, method: sicl-at2, baseline: zero-shot, "
                             "factor: 5e-1}]"]).targets[0].factor == 0.5  # unquoted: the number


def _write(out: Path, method: str, eval_set: str, k: int, metrics: dict) -> None:
    d = out / "eval" / method / eval_set
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.json").write_text(json.dumps(metrics))
    (d / "run.json").write_text(json.dumps({"method": method, "eval_set": eval_set, "k": k}))


def test_a_study_reduced_on_the_command_line_runs_and_says_which_targets_it_leaves_unchecked(tmp_path):
    """`sicl demo eval_sets=[...] adapters=[...]` (the file's targets name the file's sets and methods): the
    targets on what the run leaves out are not checked, and the log says so for each (it used to say nothing)."""
    reduced = ["eval_sets=[{name: aqa, data: aqa/test.jsonl, pool: aqa/pool.jsonl}]", "sweep_sets=[]",
               "adapters=[{method: sicl-at2, config: configs/demo/sicl-at2.yaml}]"]
    logs: list[str] = []
    study = Study(load_study(None, reduced), tmp_path, log=logs.append)
    _write(tmp_path, "zero-shot", "aqa", 0, {"aqa": {"n": 10, "accuracy": 0.5}})
    _write(tmp_path, "sicl-at2", "aqa", 3, {"aqa": {"n": 10, "accuracy": 0.6}})
    checks = study.check_targets()
    assert [c["target"] for c in checks] == ["sicl-at2 improves aqa (k=3)"] and checks[0]["met"] is True
    unchecked = [line for line in logs if "not checked" in line]
    assert len(unchecked) == 6  # the six child-set targets
    assert unchecked[0] == ("      target '<= 0.6 x zero-shot' not checked: this study leaves out its eval set "
                            "'child-science' (eval sets: aqa; methods: zero-shot, vanilla-icl, sicl-at2)")
    assert unchecked[2] == ("      target 'below direct-ft' not checked: this study leaves out its eval set "
                            "'child-science' and baseline 'direct-ft' (eval sets: aqa; methods: zero-shot, vanilla-icl, "
                            "sicl-at2)")
    # the aqa target at k=0 names what the study has; its number is missing: said, with what the runs have
    assert logs[-1].startswith("      target 'sicl-at2 improves aqa (k=0)' not evaluated: no accuracy for sicl-at2 on "
                               "aqa")
