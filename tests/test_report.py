"""sicl report: runs written as data (the report only reads files), CSV rows, tables, plots, errors."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest

from sicl.cli.main import main
from sicl.report import ReportError, Results, Target, build_report, check_target, collect_results, reading
from sicl.report.collect import collect_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_run(d: Path, method: str, eval_set: str, k: int, metrics: dict, *, seconds_per_query=0.1,
              audio=50.0, text=20.0, rss=900.0, gpu=None, adapter=None, **extra) -> Path:
    """A run folder with the key names sicl eval's runner writes (``gpu``: CUDA peak MB; null is left out)."""
    d.mkdir(parents=True, exist_ok=True)
    cost = {"timing": {"seconds_total": seconds_per_query * 10, "seconds_per_query": seconds_per_query},
            "tokens": {"prompt_audio_tokens": audio, "prompt_text_tokens": text,
                       "prompt_tokens": audio + text, "generated_tokens": 7.0},
            "memory": {"peak_rss_mb": rss, "cuda_max_memory_allocated_mb": gpu}}
    info = {"method": method, "eval_set": eval_set, "k": k, "model": "tiny-omni", "adapter": adapter, "n": 10,
            "extra_key": {"ignored": True}, **cost, **extra}
    (d / "run.json").write_text(json.dumps(info))
    (d / "metrics.json").write_text(json.dumps(metrics))
    (d / "predictions.jsonl").write_text("")
    return d


def write_sweep(d: Path, method: str, eval_set: str, values: dict[int, dict], adapter=None) -> Path:
    """A sweep folder as sicl eval writes it; the k=0 child is labelled by its own method (zero-shot)."""
    d.mkdir(parents=True, exist_ok=True)
    ks = sorted(values)
    (d / "run.json").write_text(json.dumps({"method": method, "eval_set": eval_set, "ks": ks, "n": 10}))
    for k in ks:
        child = "zero-shot" if (k == 0 and adapter is None) else method
        write_run(d / f"k={k}", child, eval_set, k, values[k], seconds_per_query=0.1 * (k + 1),
                  audio=50.0 * (k + 1), text=20.0 * (k + 1), rss=900.0 + 10 * k, adapter=adapter)
    rows = ["k,task,metric,value,seconds_per_query,prompt_tokens,peak_rss_mb"]
    rows += [f"{k},asr,wer,{values[k]['asr']['wer']},0.1,70,900" for k in ks if "asr" in values[k]]
    (d / "sweep.csv").write_text("\n".join(rows) + "\n")
    return d


def asr(wer: float, n: int = 10) -> dict:
    """An asr metrics object as sicl eval writes it: quality metrics, counts and the ``primary`` name."""
    return {"asr": {"n": n, "wer": wer, "wer_utterance_capped": wer + 0.01, "cer": wer / 2, "primary": "wer",
                    "ref_words": 40, "substitutions": 3, "deletions": 2, "insertions": 1,
                    "skipped_empty_reference": 0, "empty_predictions": 0}}


QUALITY = {"wer", "wer_utterance_capped", "cer", "bleu", "accuracy"}
COUNTS = {"n", "ref_words", "substitutions", "deletions", "insertions", "skipped_empty_reference",
          "empty_predictions", "correct"}


def make_study(tmp_path: Path) -> Path:
    """A small study: zero-shot, vanilla-icl sweep, sicl-at2 at k=3, direct-ft at k=0, on 3 eval sets."""
    ev = tmp_path / "eval"
    for e, zs in (("child-science", 0.75), ("child-reading", 0.70)):
        write_run(ev / "zero-shot" / e, "zero-shot", e, 0, asr(zs))
        write_run(ev / "direct-ft" / e, "direct-ft", e, 0, asr(0.50 if e == "child-science" else 0.30),
                  adapter="models/direct-ft")
    write_sweep(ev / "vanilla-icl" / "child-science", "vanilla-icl", "child-science",
                {0: asr(0.75), 1: asr(0.62), 2: asr(0.55), 3: asr(0.51), 4: asr(0.52)})
    write_run(ev / "vanilla-icl" / "child-reading", "vanilla-icl", "child-reading", 3, asr(0.60))
    write_run(ev / "sicl-at2" / "child-science", "sicl-at2", "child-science", 3, asr(0.41), adapter="m/at2")
    write_run(ev / "sicl-at2" / "child-reading", "sicl-at2", "child-reading", 3, asr(0.45), adapter="m/at2")
    aqa = {"aqa": {"n": 20, "accuracy": 0.55, "correct": 11, "empty_predictions": 0,
                   "by_category": {"music": {"n": 10, "accuracy": 0.6}, "sound": {"n": 10, "accuracy": 0.5}}}}
    write_run(ev / "zero-shot" / "aqa", "zero-shot", "aqa", 0, aqa)
    write_run(ev / "sicl-at2" / "aqa", "sicl-at2", "aqa", 3, {"aqa": {"n": 20, "accuracy": 0.62}})
    write_run(ev / "zero-shot" / "translate", "zero-shot", "translate", 0, {"st": {"n": 8, "bleu": 12.5}})
    # a training run.json (no metrics.json next to it) is not a run
    (tmp_path / "models" / "sicl-at2").mkdir(parents=True)
    (tmp_path / "models" / "sicl-at2" / "run.json").write_text("{not json")
    return tmp_path


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    return make_study(tmp_path)


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def value(rows: list[dict], method: str, eval_set: str, k: int, metric: str) -> float:
    hits = [r for r in rows if (r["method"], r["eval_set"], r["k"], r["metric"]) == (method, eval_set, str(k),
                                                                                     metric)]
    assert len(hits) == 1, (method, eval_set, k, metric, hits)
    return float(hits[0]["value"])


def test_collect_results_rows_values_and_sweep_labels(study: Path):
    rows = collect_results([study])
    methods = []
    for r in rows:
        if not methods or methods[-1] != r.method:
            methods.append(r.method)
    assert methods == ["zero-shot", "vanilla-icl", "sicl-at2", "direct-ft"]  # METHOD_ORDER, grouped
    got = {(r.method, r.eval_set, r.k, r.metric): r.value for r in rows}
    # the sweep's k=0 child says zero-shot, but belongs to the vanilla-icl line of its sweep
    assert got[("vanilla-icl", "child-science", 0, "wer")] == 0.75
    assert [k for (m, e, k, x) in got if m == "vanilla-icl" and e == "child-science" and x == "wer"] == [0, 1, 2, 3, 4]
    assert got[("sicl-at2", "child-science", 3, "wer")] == 0.41
    assert got[("sicl-at2", "child-science", 3, "cer")] == pytest.approx(0.205)
    assert got[("zero-shot", "translate", 0, "bleu")] == 12.5
    assert got[("zero-shot", "aqa", 0, "accuracy[category=music]")] == 0.6
    assert got[("zero-shot", "aqa", 0, "n")] == 20
    # cost rows from run.json
    assert got[("vanilla-icl", "child-science", 2, "seconds_per_query")] == pytest.approx(0.3)
    assert got[("vanilla-icl", "child-science", 2, "prompt_tokens")] == pytest.approx(210.0)
    assert got[("vanilla-icl", "child-science", 4, "peak_rss_mb")] == 940.0
    assert ("zero-shot", "aqa", 0, "peak_gpu_mb") not in got  # null is left out
    kinds = {r.metric: r.kind for r in rows}
    assert kinds["wer"] == "quality" and kinds["n"] == "count" and kinds["seconds_per_query"] == "cost"
    # counts stay in results.csv, as kind count; only metrics with a direction are quality
    assert {m for m, kind in kinds.items() if kind == "quality"} == QUALITY
    assert {m for m, kind in kinds.items() if kind == "count"} == COUNTS
    assert "primary" not in kinds  # a string, not a number


def test_report_files_csv_tables_and_plots(study: Path):
    out = study / "report"
    written = build_report([study / "eval"], out, title="Demo report", notes=["a note from the caller"])
    assert written["report"] == out / "report.md" and written["results"] == out / "results.csv"
    rows = read_csv(out / "results.csv")
    assert list(rows[0]) == ["method", "eval_set", "k", "metric", "value"]
    assert value(rows, "sicl-at2", "child-science", 3, "wer") == 0.41
    assert value(rows, "vanilla-icl", "child-science", 4, "wer") == 0.52
    assert value(rows, "direct-ft", "child-reading", 0, "wer") == 0.30
    assert value(rows, "zero-shot", "translate", 0, "bleu") == 12.5
    assert value(rows, "vanilla-icl", "child-science", 0, "prompt_tokens") == 70.0
    sweep_ks = [int(r["k"]) for r in rows if r["method"] == "vanilla-icl" and r["eval_set"] == "child-science"
                and r["metric"] == "wer"]
    assert sweep_ks == [0, 1, 2, 3, 4]

    md = (out / "report.md").read_text()
    assert md.startswith("# Demo report\n")
    assert "a note from the caller" in md
    assert "### WER (lower is better)" in md and "### BLEU (higher is better)" in md
    assert "### accuracy (higher is better)" in md
    # comparison table: rows = methods in order, columns = eval sets, values at the headline k
    table = md.split("### WER (lower is better)")[1].split("###")[0]
    lines = [ln for ln in table.splitlines() if ln.startswith("| ")]
    assert lines[0] == "| method | k | child-science | child-reading |"
    assert lines[1] == "| zero-shot | 0 | 0.750 | 0.700 |"
    assert lines[2] == "| vanilla-icl | 3 | 0.510 | 0.600 |"
    assert lines[3] == "| sicl-at2 | 3 | **0.410** | 0.450 |"  # the best of each column in bold
    assert lines[4] == "| direct-ft | 0 | 0.500 | **0.300** |"
    # the answer first: sections in this order, settings last
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads == ["## What this is", "## Results", "## Notes", "## Plots", "## Reading", "## k-sweep", "## Cost",
                     "## More metrics", "## Breakdowns", "## Settings"]
    intro = md.split("## What this is")[1].split("##")[0]
    assert "4 methods (zero-shot, vanilla-icl, sicl-at2 and direct-ft)" in intro and "tiny-omni" in intro
    assert "child-science and child-reading (WER, lower is better)" in intro and "k=3" in intro
    assert "- a note from the caller" in md.split("## Notes")[1].split("##")[0]
    # no table or plot of a count; secondary quality metrics (capped WER, CER) under More metrics
    tables = [ln[4:] for ln in md.splitlines() if ln.startswith("### ")]
    assert not [t for t in tables if t.split(" ")[0].split(":")[0] in COUNTS or "ref_words" in t]
    more = md.split("## More metrics")[1].split("## Breakdowns")[0]
    assert "### CER (lower is better)" in more and "### WER (utterance mean, capped at 1)" in more
    # settings: one compact row per method
    settings = md.split("## Settings")[1]
    srows = [ln for ln in settings.splitlines() if ln.startswith("| ")]
    assert srows[0] == ("| method | adapter | eval sets | k values | n queries per set | "
                        "retriever / pseudo-labeler |")
    assert len(srows) - 1 == 4 == len({r.method for r in collect_results([study / "eval"])})
    assert "| vanilla-icl | — | child-science, child-reading | 0 (child-science), 1 (child-science), " \
           "2 (child-science), 3, 4 (child-science) | 10 |" in settings
    assert "| sicl-at2 | m/at2 | child-science, child-reading, aqa | 3 | 10 | " in settings
    # k-sweep table
    sweep = md.split("### child-science: WER (lower is better)")[1].split("###")[0]
    assert "| method | k=0 | k=1 | k=2 | k=3 | k=4 |" in sweep
    assert "| vanilla-icl | 0.750 | 0.620 | 0.550 | 0.510 | 0.520 |" in sweep
    assert "| sicl-at2 | — | — | — | 0.410 | — |" in sweep
    # cost table: mean over eval sets at each k
    cost = md.split("### seconds / query")[1].split("###")[0]
    # cost: mean over the eval sets swept at the most k (child-reading, run at k=3 only, is left out)
    assert "| vanilla-icl | 0.1 | 0.2 | 0.3 | 0.4 | 0.5 | child-science |" in cost
    assert "| sicl-at2 | — | — | — | 0.1 | — | child-science, child-reading, aqa |" in cost
    assert "## Breakdowns" in md and "| zero-shot | 0 | 0.600 | 0.500 |" in md
    # plots: embedded with relative paths, every one a real PNG
    pngs = sorted((out / "plots").glob("*.png"))
    names = {p.name for p in pngs}
    assert names == {"methods_wer.png", "methods_bleu.png", "methods_accuracy.png", "wer_vs_k_child-science.png",
                     "cost_vs_k.png"}
    for name in names:  # quality metrics only: no plot of a count
        assert name.removeprefix("methods_").split("_vs_k")[0].removesuffix(".png") in QUALITY | {"cost"}
    assert sorted(written["plots"]) == pngs
    for p in pngs:
        data = p.read_bytes()
        assert len(data) > 1000 and data[:8] == PNG_MAGIC
        assert f"](plots/{p.name})" in md
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_reading_sentences_are_computed_from_the_numbers(study: Path):
    res = Results(collect_results([study]))
    text = reading(res)
    assert ("On child-science, WER against zero-shot (0.750) and vanilla-icl at k=3 (0.510): sicl-at2 at k=3 has "
            "0.410 (0.55x zero-shot, 0.80x vanilla-icl).") in text
    assert "On child-science, the best WER (lower is better) is sicl-at2 at k=3 with 0.410." in text
    assert "On child-reading, the best WER (lower is better) is direct-ft with 0.300." in text
    assert "On aqa, accuracy against zero-shot (0.550): sicl-at2 at k=3 has 0.620 (+0.070 vs zero-shot)." in text
    # short: per eval set one sentence for the best and one for the SICL-AT methods; nothing else
    assert len(text) == 2 * 4 - 1  # translate has no SICL-AT run to compare
    assert not [s for s in text if s.startswith("Cost of") or " at k=0, " in s]


def test_targets_met_missed_and_not_evaluated(study: Path):
    res = Results(collect_results([study]))
    r = check_target(res, Target("child-science", "wer", "sicl-at*", baseline="zero-shot", factor=0.6))
    assert r.met is True
    assert r.sentence == ("met: on child-science, best sicl-at* (sicl-at2 at k=3) has WER 0.410, <= 0.6 x zero-shot "
                          "(0.6 x 0.750 = 0.450).")
    r = check_target(res, Target("child-science", "wer", "sicl-at*", baseline="vanilla-icl", factor=0.8))
    assert r.met is False and "NOT met" in r.sentence and "not <=" in r.sentence  # 0.41 > 0.8 x 0.51 = 0.408
    r = check_target(res, Target("child-reading", "wer", "sicl-at*", baseline="direct-ft", relation="<",
                                 label="below direct-ft"))
    assert r.met is False and r.sentence.startswith("below direct-ft: NOT met")
    r = check_target(res, Target("aqa", "accuracy", "sicl-at2", baseline="zero-shot", relation=">"))
    assert r.met is True and "0.620, > zero-shot (0.550)" in r.sentence
    r = check_target(res, Target("adult", "wer", "sicl-at*", baseline="zero-shot"))
    assert r.met is None and "not evaluated" in r.sentence
    r = check_target(res, Target("child-science", "wer", "zero-shot", value=0.5))
    assert r.met is False
    # targets as plain dicts go into the report's reading section
    out = study / "r"
    build_report([study], out, targets=[{"eval_set": "child-science", "metric": "wer", "method": "sicl-at*",
                                         "baseline": "zero-shot", "factor": 0.6}])
    assert "- met: on child-science, best sicl-at\\* (sicl-at2 at k=3)" in (out / "report.md").read_text()
    with pytest.raises(ReportError, match="exactly one of"):
        Target.from_dict({"eval_set": "a", "metric": "wer", "method": "x"})
    with pytest.raises(ReportError, match="unknown key"):
        Target.from_dict({"eval_set": "a", "metric": "wer", "method": "x", "value": 1, "bogus": 2})


def test_ties_are_named_as_ties(tmp_path: Path):
    ev = tmp_path / "eval"
    for m, k, wer in (("zero-shot", 0, 0.9), ("vanilla-icl", 3, 0.5), ("sicl-at1", 3, 0.5), ("sicl-at2", 3, 0.5),
                      ("sicl-at3", 3, 0.4)):
        write_run(ev / m / "child-science", m, "child-science", k, asr(wer))
    for m in ("zero-shot", "vanilla-icl", "sicl-at1"):
        write_run(ev / m / "adult", m, "adult", 0 if m == "zero-shot" else 3, asr(0.7))
    text = reading(Results(collect_results([ev])))
    assert "On child-science, the best WER (lower is better) is sicl-at3 at k=3 with 0.400." in text
    assert ("On child-science, WER against zero-shot (0.900) and vanilla-icl at k=3 (0.500): sicl-at1 and sicl-at2 "
            "at k=3 all have 0.500 (0.56x zero-shot, 1.00x vanilla-icl); sicl-at3 at k=3 has 0.400 (0.44x "
            "zero-shot, 0.80x vanilla-icl).") in text
    assert ("On adult, all 3 methods tie on WER (lower is better) at 0.700 (zero-shot, vanilla-icl at k=3 and "
            "sicl-at1 at k=3): no best method.") in text
    assert not [s for s in text if s.startswith("On adult, the best")]
    md = build_report([ev], tmp_path / "out")["report"].read_text()
    table = md.split("### WER (lower is better)")[1].split("##")[0]
    assert "| zero-shot | 0 | 0.900 | **0.700** |" in table and "| sicl-at1 | 3 | 0.500 | **0.700** |" in table
    # a column where two of three methods tie for the best
    ev2 = tmp_path / "eval2"
    for m, wer in (("zero-shot", 0.9), ("sicl-at1", 0.5), ("sicl-at2", 0.5)):
        write_run(ev2 / m, m, "kids", 0 if m == "zero-shot" else 3, asr(wer))
    text = reading(Results(collect_results([ev2])))
    assert "On kids, 2 methods tie for the best WER (lower is better) at 0.500: sicl-at1 and sicl-at2 at k=3." in text


def test_primary_metric_from_metrics_json_headlines_cer(tmp_path: Path):
    ev = tmp_path / "eval"
    for m, k, en, zh in (("zero-shot", 0, 0.8, 0.6), ("sicl-at1", 3, 0.5, 0.3)):
        write_run(ev / m / "adult", m, "adult", k, asr(en))
        zh_metrics = asr(0.95)
        zh_metrics["asr"].update(cer=zh, primary="cer")  # zh: WER is meaningless without spaces
        write_run(ev / m / "zh", m, "zh", k, zh_metrics)
    written = build_report([ev], tmp_path / "out")
    md = written["report"].read_text()
    table = md.split("### WER / CER (lower is better)")[1].split("##")[0]
    assert "| method | k | adult (WER) | zh (CER) |" in table
    assert "| sicl-at1 | 3 | **0.500** | **0.300** |" in table
    assert "On zh, the best CER (lower is better) is sicl-at1 at k=3 with 0.300." in md
    assert "(0.50x zero-shot)" in md  # zh CER 0.3 vs 0.6
    more = md.split("## More metrics")[1].split("## Settings")[0]
    assert "| zero-shot | 0 | — |" not in more and "zh" in more.split("### WER (lower is better)")[1]
    assert {p.name for p in written["plots"]} == {"methods_wer_cer.png", "cost_vs_k.png"}


def test_targets_and_notes_sections(study: Path):
    notes = ["MET: best SICL-AT on child-science below direct-ft", "NOT MET: sicl-at2 at k=3 on aqa", "2 CPU cores",
             "EXEMPT: on child-reading, direct-ft wins on its own domain"]
    md = build_report([study / "eval"], study / "o", notes=notes,
                      targets=[{"eval_set": "aqa", "metric": "accuracy", "method": "sicl-at2",
                                "baseline": "zero-shot", "relation": ">"},
                               {"eval_set": "aqa", "metric": "accuracy", "method": "sicl-at2", "label": "aqa: transfer",
                                "baseline": "zero-shot", "relation": ">"}])["report"].read_text()
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads.index("## Results") < heads.index("## Targets") < heads.index("## Notes") < heads.index("## Plots")
    targets = md.split("## Targets")[1].split("## Notes")[0]
    # a labelled target counts by its verdict, not by how its sentence starts; an exempt one is not counted
    assert "3 of 4 met (1 exempt)." in targets
    assert "- aqa: transfer: met: on aqa, sicl-at2 at k=3" in targets
    assert "- EXEMPT: on child-reading, direct-ft wins on its own domain" in targets
    assert "- MET: best SICL-AT on child-science below direct-ft" in targets
    assert "- NOT MET: sicl-at2 at k=3 on aqa" in targets
    assert "- met: on aqa, sicl-at2 at k=3 has accuracy 0.620, > zero-shot (0.550)." in targets
    assert "- 2 CPU cores" in md.split("## Notes")[1].split("##")[0]
    assert "MET" not in md.split("## Settings")[1] and "MET" not in md.split("## Reading")[1]


def test_main_k_and_fallback_to_nearest_k(study: Path):
    res = Results(collect_results([study]), main_k=2)
    assert res.headline_k("vanilla-icl", "child-science") == 2
    assert res.headline_k("vanilla-icl", "child-reading") == 3  # only k it has
    assert res.headline_k("zero-shot", "child-science") == 0
    assert res.headline_k("direct-ft", "child-science") == 0
    out = study / "r2"
    build_report([study / "eval"], out, main_k=2)
    table = (out / "report.md").read_text().split("### WER (lower is better)")[1].split("###")[0]
    assert "| vanilla-icl | 2 | 0.550 | 0.600 (k=3) |" in table


def test_headline_k_comes_from_the_runs_not_the_method_names(tmp_path: Path):
    """A method run only at k=0 headlines at k=0 whatever it is called; one also run with demonstrations
    headlines at the main k even when its name is direct-ft (the old rule picked k=0 from a list of names)."""
    ev = tmp_path / "eval"
    write_run(ev / "base" / "kids", "base", "kids", 0, asr(0.8))
    write_run(ev / "my-finetune" / "kids", "my-finetune", "kids", 0, asr(0.5), adapter="m/ft")
    write_sweep(ev / "direct-ft" / "kids", "direct-ft", "kids", {0: asr(0.6), 3: asr(0.4)}, adapter="m/dft")
    write_run(ev / "icl" / "kids", "icl", "kids", 3, asr(0.7))
    res = Results(collect_results([ev]))
    assert res.zero_k("base") and res.zero_k("my-finetune") and not res.zero_k("direct-ft")
    assert [res.headline_k(m, "kids") for m in ("base", "my-finetune", "direct-ft", "icl")] == [0, 0, 3, 3]
    assert "On kids, the best WER (lower is better) is direct-ft at k=3 with 0.400." in reading(res)
    md = build_report([ev], tmp_path / "out")["report"].read_text()
    assert "each method is compared at k=3, except base and my-finetune at k=0;" in md
    table = md.split("### WER (lower is better)")[1].split("##")[0]
    assert "| direct-ft | 3 | **0.400** |" in table and "| my-finetune | 0 | 0.500 |" in table
    assert "| base | 0 | 0.800 |" in table
    # a custom-named method without demonstrations is named plainly, not "at k=0", in target sentences too
    r = check_target(res, Target(eval_set="kids", metric="wer", method="my-finetune", baseline="base"))
    assert r.met is True and "on kids, my-finetune has WER 0.500, <= base (0.800)." in r.sentence


def test_runner_key_names_and_multi_task_metrics(tmp_path: Path):
    write_run(tmp_path / "a", "sicl-at3", "mixed", 2, {"sqa": {"n": 5, "accuracy": 0.4}, "aqa": {"n": 5,
              "accuracy": 0.8}, "asr": {"n": 3, "wer": 0.2, "by_lang": {"en": {"n": 3, "wer": 0.2}}}},
              gpu=123.0, audio=30.0, text=12.0)
    got = {(r.metric): r.value for r in collect_results([tmp_path])}
    assert got["sqa/accuracy"] == 0.4 and got["aqa/accuracy"] == 0.8 and got["wer"] == 0.2
    assert got["wer[lang=en]"] == 0.2 and got["asr/n"] == 3 and got["asr/n[lang=en]"] == 3
    assert got["prompt_tokens"] == 42.0 and got["audio_tokens"] == 30.0 and got["peak_gpu_mb"] == 123.0
    assert got["seconds"] == pytest.approx(1.0)
    written = build_report([tmp_path / "a"], tmp_path / "out")
    md = written["report"].read_text()
    assert "### sqa accuracy (higher is better)" in md and "No method was run at more than one k." in md


def test_duplicate_runs_keep_the_newest_and_warn(study: Path):
    ev = study / "eval"
    old = write_run(study / "old" / "zs", "zero-shot", "child-science", 0, asr(0.99))
    os.utime(old / "run.json", (1, 1))
    warnings: list[str] = []
    rows = collect_results([ev, study / "old"], warn=warnings.append)
    assert [r.value for r in rows if (r.method, r.eval_set, r.metric) == ("zero-shot", "child-science", "wer")] \
        == [0.75]
    assert len(warnings) == 1 and "zero-shot / child-science / k=0" in warnings[0]
    # the same folder given twice counts once
    assert len(collect_runs([ev, ev / "zero-shot"], warn=warnings.append)) == len(collect_runs([ev]))


def test_no_runs_is_one_line_error_and_writes_nothing(tmp_path: Path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "empty"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sicl report: error: no evaluation runs found") and err.count("\n") == 1
    assert not out.exists()
    assert main(["report", str(tmp_path / "missing"), "--out", str(out)]) == 1
    assert "no such directory" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(("bad", "match"), [
    ("{not json", "run.json: not valid JSON"),
    ('["a list"]', "run.json: expected a JSON object"),
    ('{"eval_set": "x", "k": 1}', "run.json: missing or empty 'method'"),
    ('{"method": "m", "eval_set": "x", "k": -1}', "run.json: 'k' must be a non-negative integer"),
    ('{"method": "m", "eval_set": "x"}', "run.json: missing 'k'"),
    # an absurd k (it reached matplotlib as a TypeError) is a malformed run.json, as a negative one
    ('{"method": "m", "eval_set": "x", "k": 100000000000000000000}',
     "run.json: 'k' must be a non-negative integer of at most 10000, got an integer of 21 digits"),
    ('{"method": "m", "eval_set": "x", "k": 10001}', "run.json: 'k' must be a non-negative integer of at most 10000"),
    ('{"method": "m", "eval_set": "x", "k": 2.5}', "run.json: 'k' must be a non-negative integer"),
    (b'{"method": "m\xff", "eval_set": "x", "k": 1}', "run.json: not UTF-8 text"),
])
def test_malformed_run_json_names_the_file(tmp_path: Path, bad: str, match: str, capsys):
    d = write_run(tmp_path / "runs" / "r", "zero-shot", "adult", 0, asr(0.5))
    (d / "run.json").write_bytes(bad if isinstance(bad, bytes) else bad.encode())
    with pytest.raises(ReportError, match=match) as e:
        collect_results([tmp_path / "runs"])
    assert str(d / "run.json") in str(e.value)
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 1
    assert str(d / "run.json") in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(("bad", "match"), [
    ("[1, 2]", "metrics.json: expected a JSON object"),
    # no usable task metrics: as malformed as a list (the run used to be dropped without a word)
    ("{}", "metrics.json: no task metrics"),
    ('{"aqa": []}', "metrics.json: task 'aqa' is \\[\\], not an object of metrics"),
    ('{"aqa": "x"}', "metrics.json: task 'aqa' is \"x\", not an object of metrics"),
    ('{"aqa": {}}', "metrics.json: no metric in any task \\('aqa'\\)"),
    ('{"aqa": {"scorer": "official"}}', "metrics.json: no metric in any task"),
])
def test_malformed_metrics_json_names_the_file(tmp_path: Path, bad: str, match: str, capsys):
    d = write_run(tmp_path / "runs" / "r", "zero-shot", "adult", 0, asr(0.5))
    write_run(tmp_path / "runs" / "ok", "vanilla-icl", "adult", 3, asr(0.4))
    (d / "metrics.json").write_text(bad)
    with pytest.raises(ReportError, match=match) as e:
        collect_results([tmp_path / "runs"])
    assert str(d / "metrics.json") in str(e.value)
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sicl report: error: {d / 'metrics.json'}: ") and err.count("\n") == 1
    assert not out.exists()


def test_a_run_with_empty_metrics_but_a_count_is_kept(tmp_path: Path):
    """A task with its count and a null metric (nothing scored) is a run, not a malformed file."""
    write_run(tmp_path / "r", "zero-shot", "aqa", 0, {"aqa": {"n": 0, "accuracy": None}})
    rows = collect_results([tmp_path])
    assert [(r.metric, r.value) for r in rows if r.kind == "count"] == [("n", 0.0)]



def test_a_method_whose_every_value_is_missing_keeps_a_row_of_dashes(tmp_path: Path):
    """A method that was run but scored nothing (null or non-finite values) is a row of "—" at the k it was run
    at, not a method that silently vanishes from the table."""
    write_run(tmp_path / "a", "zero-shot", "aqa", 0, {"aqa": {"n": 10, "accuracy": 0.4}})
    write_run(tmp_path / "b", "sicl-at2", "aqa", 3, {"aqa": {"n": 0, "accuracy": None}})
    write_run(tmp_path / "c", "vanilla-icl", "aqa", 3, {"aqa": {"n": 10, "accuracy": float("nan")}})
    md = build_report([tmp_path], tmp_path / "out")["report"].read_text()
    table = md.split("## Results", 1)[1]
    assert re.search(r"^\| sicl-at2 \| 3 \| — \|$", table, re.M), table[:800]
    assert re.search(r"^\| vanilla-icl \| 3 \| — \|$", table, re.M), table[:800]
    assert re.search(r"^\| zero-shot \| 0 \| 0\.400 \|$", table, re.M), table[:800]

TARGET = {"eval_set": "aqa", "metric": "accuracy", "method": "sicl-at2", "baseline": "zero-shot"}


@pytest.mark.parametrize(("entry", "match"), [
    ({**TARGET, "factor": "0.5"}, 'entry \\[1\\]: factor must be a positive finite number, got "0.5"'),
    ({**TARGET, "factor": -1}, "entry \\[1\\]: factor must be a positive finite number, got -1"),
    ({**TARGET, "factor": 0}, "entry \\[1\\]: factor must be a positive finite number, got 0"),
    ({**TARGET, "factor": float("nan")}, "entry \\[1\\]: factor must be a positive finite number, got NaN"),
    ({**TARGET, "factor": True}, "entry \\[1\\]: factor must be a positive finite number, got true"),
    ({**TARGET, "k": "3"}, 'entry \\[1\\]: k must be a non-negative integer \\(or left out\\), got "3"'),
    ({**TARGET, "k": -2}, "entry \\[1\\]: k must be a non-negative integer \\(or left out\\), got -2"),
    ({**TARGET, "k": 1.0}, "entry \\[1\\]: k must be a non-negative integer"),
    ({**TARGET, "value": "high", "baseline": None}, "entry \\[1\\]: value must be a finite number"),
    ({**TARGET, "metric": 3}, "entry \\[1\\]: metric must be a non-empty string, got 3"),
    ({**TARGET, "relation": "=="}, "entry \\[1\\]: relation must be one of <, <=, >, >=, got \"==\""),
    ({k: v for k, v in TARGET.items() if k != "eval_set"}, "entry \\[1\\]: missing required key\\(s\\) eval_set"),
    ({**TARGET, "value": 0.5}, "entry \\[1\\]: needs exactly one of 'baseline'"),
    ({**TARGET, "factr": 0.5}, "entry \\[1\\]: unknown key\\(s\\) factr; known: eval_set, metric, method"),
    ("aqa", "entry \\[1\\]: a target must be an object"),
])
def test_bad_targets_file_entry_is_one_line_naming_the_entry_and_key(study: Path, entry, match, capsys):
    path = study / "targets.json"
    path.write_text(json.dumps([TARGET, entry]))  # Python's json writes NaN as JSON's NaN literal
    out = study / "rep"
    assert main(["report", str(study / "eval"), "--out", str(out), "--targets", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"sicl report: error: {path}: ")
    assert re.search(match, err), err
    assert not out.exists()
    # the same rules for targets given to build_report as data (the index is named there too)
    with pytest.raises(ReportError, match="target \\[1\\]: "):
        build_report([study / "eval"], out, targets=[TARGET, entry])
    assert not out.exists()


def test_targets_file_not_utf8_is_one_line(study: Path, capsys):
    path = study / "targets.json"
    path.write_bytes(b"\xff\xfe[]")
    assert main(["report", str(study / "eval"), "--out", str(study / "rep"), "--targets", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"sicl report: error: {path}: not UTF-8 text (byte 0: b'\\xff'); save it as UTF-8 JSON\n"
    assert not (study / "rep").exists()


def test_a_target_no_run_matches_says_what_the_runs_hold(study: Path):
    """A misspelt eval set, metric or method is "not evaluated" as before, with the names the runs do have."""
    res = Results(collect_results([study]))
    sentence = check_target(res, Target("aqa2", "accuracy", "sicl-at2", baseline="zero-shot")).sentence
    assert sentence == ("not evaluated: no accuracy for sicl-at2 on aqa2 (no eval set 'aqa2' in the runs; known: "
                        "child-science, child-reading, translate, aqa).")
    sentence = check_target(res, Target("aqa", "acuracy", "sicl-at2", baseline="zero-shot")).sentence
    assert sentence.endswith("(aqa has no metric 'acuracy'; known: accuracy).")
    sentence = check_target(res, Target("aqa", "accuracy", "sicl-at9", baseline="zero-shot")).sentence
    assert sentence.endswith("(no method named 'sicl-at9'; known: zero-shot, vanilla-icl, sicl-at2, direct-ft).")
    sentence = check_target(res, Target("aqa", "accuracy", "sicl-at2", baseline="zero-shot", k=0)).sentence
    assert sentence.endswith("(sicl-at2 was run on aqa at k=3).")
    sentence = check_target(res, Target("aqa", "accuracy", "sicl-at2", baseline="zeroshot")).sentence
    assert sentence.startswith("not evaluated: no accuracy for zeroshot on aqa (no method named 'zeroshot'")
    sentence = check_target(res, Target("aqa", "accuracy", "direct-ft", baseline="zero-shot")).sentence
    assert sentence.endswith("(direct-ft was not run on aqa).")


def test_cli_end_to_end_and_rerun_replaces_plots(study: Path, capsys):
    out = study / "rep"
    (study / "targets.json").write_text(json.dumps([{"eval_set": "aqa", "metric": "accuracy", "method": "sicl-at2",
                                                     "baseline": "zero-shot", "relation": ">"}]))
    args = ["report", str(study / "eval"), "--out", str(out), "--title", "T", "--k", "3", "--note", "n1",
            "--targets", str(study / "targets.json")]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert "- met: on aqa, sicl-at2 at k=3 has accuracy 0.620, > zero-shot (0.550)." in md
    (out / "plots" / "stale.png").write_bytes(b"x")
    assert main(args) == 0
    assert not (out / "plots" / "stale.png").exists()
    (study / "targets.json").write_text("{}")
    assert main(args) == 1
    assert "expected a JSON list" in capsys.readouterr().err


def test_report_says_which_scorer(tmp_path):
    """The report names the scorer the runs' metrics.json used (issue 20), warns when they differ, and says when
    older files do not name one."""
    def aqa(acc, scorer=None):
        m = {"n": 10, "accuracy": acc, "correct": int(acc * 10), "empty_predictions": 0}
        return {"aqa": {**m, "scorer": scorer, "rule": "mmau-string-match"} if scorer else m}

    write_run(tmp_path / "a" / "zs", "zero-shot", "aqa", 0, aqa(0.5, "official"))
    write_run(tmp_path / "a" / "icl", "vanilla-icl", "aqa", 3, aqa(0.6, "official"))
    md = build_report([tmp_path / "a"], tmp_path / "ra")["report"].read_text()
    intro = md.split("## What this is")[1].split("##")[0]
    assert "Scored with `official`: each benchmark's own scoring script" in intro
    assert "- Scorer: `official` (2 runs)" in md.split("## Settings")[1]
    write_run(tmp_path / "a" / "ft", "direct-ft", "aqa", 0, aqa(0.7, "lenient"))
    md = build_report([tmp_path / "a"], tmp_path / "rb")["report"].read_text()
    assert "Warning: the runs were scored with different scorers, `lenient` (1 run), `official` (2 runs)" in md
    write_run(tmp_path / "b" / "zs", "zero-shot", "aqa", 0, aqa(0.5))
    md = build_report([tmp_path / "b"], tmp_path / "rc")["report"].read_text()
    assert "Scored with `unnamed`: older metrics.json files that do not name their scorer" in md


def test_looping_outputs_table_at_the_headline_k(tmp_path):
    def loops(wer, n_loops):
        return {"asr": {**asr(wer, n=60)["asr"], "looping_outputs": n_loops}}

    write_run(tmp_path / "a" / "zs", "zero-shot", "child-science", 0, loops(0.5, 3))
    write_sweep(tmp_path / "a" / "icl", "vanilla-icl", "child-science", {1: loops(0.6, 5), 3: loops(0.4, 1)})
    md = build_report([tmp_path / "a"], tmp_path / "r")["report"].read_text()
    section = md.split("## Looping outputs")[1].split("\n## ")[0]
    assert "| zero-shot | 3 / 60 |" in section and "| vanilla-icl | 1 / 60 |" in section  # k=3, not k=1
    write_run(tmp_path / "b" / "zs", "zero-shot", "child-science", 0, loops(0.5, 0))
    assert "## Looping outputs" not in build_report([tmp_path / "b"], tmp_path / "r2")["report"].read_text()


def test_a_target_line_names_the_loop_counts_behind_it(tmp_path):
    def loops(wer, n_loops):
        return {"asr": {**asr(wer, n=60)["asr"], "looping_outputs": n_loops}}

    write_run(tmp_path / "a" / "zs", "zero-shot", "child-reading", 0, loops(0.445, 4))
    write_sweep(tmp_path / "a" / "at", "sicl-at3", "child-reading", {3: loops(0.271, 0)}, adapter="models/at3")
    t = Target(label="<= 0.6 x zero-shot", eval_set="child-reading", metric="wer", method="sicl-at*",
               baseline="zero-shot", factor=0.6)
    res = Results(collect_results([tmp_path / "a"]))
    sentence = check_target(res, t).sentence
    assert sentence.endswith("Looping outputs: sicl-at3 0, zero-shot 4.")
    write_run(tmp_path / "b" / "zs", "zero-shot", "child-reading", 0, loops(0.445, 0))
    write_sweep(tmp_path / "b" / "at", "sicl-at3", "child-reading", {3: loops(0.271, 0)}, adapter="models/at3")
    assert "Looping" not in check_target(Results(collect_results([tmp_path / "b"])), t).sentence


def test_plots_tell_apart_more_methods_than_the_colour_cycle(tmp_path: Path, monkeypatch):
    """Twelve methods: matplotlib's ten colours come round again, so methods 1 and 11 would draw alike; each
    method's (colour, line style, marker) in the k-sweep and (colour, hatch) in the bars differ."""
    from sicl.report import plots

    names = [f"method-{i:02d}" for i in range(12)]
    for i, m in enumerate(names):
        for k in (0, 3):
            write_run(tmp_path / f"{m}-{k}", m, "adult", k, asr(0.1 + 0.01 * i + 0.001 * k))
    res = Results(collect_results([tmp_path]))
    figs = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or path)
    assert plots.metric_vs_k(res, "adult", "wer", tmp_path / "a.png") is not None
    lines = {ln.get_label(): (ln.get_color(), str(ln.get_linestyle()), ln.get_marker()) for ln in figs[0].axes[0].lines}
    assert sorted(lines) == names and len(set(lines.values())) == 12
    assert plots.family_bars(res, [("adult", "wer")], "WER", tmp_path / "b.png") is not None
    bars = {c.get_label().split(" (")[0]: (c.patches[0].get_facecolor(), c.patches[0].get_hatch())
            for c in figs[1].axes[0].containers}
    assert sorted(bars) == names and len(set(bars.values())) == 12


def test_target_sentences_print_names_literally_in_report_md(tmp_path: Path):
    """A target's sentence names methods and eval sets: their markdown characters are escaped in report.md as in
    the tables (``**x**`` read as bold), while check_target's own sentence keeps the raw names."""
    write_run(tmp_path / "a", "zero-shot", "a_set_", 0, asr(0.5))
    write_run(tmp_path / "b", "**x**", "a_set_", 3, asr(0.2))
    t = {"eval_set": "a_set_", "metric": "wer", "method": "**x*", "baseline": "zero-shot", "factor": 0.6}
    md = build_report([tmp_path], tmp_path / "out", targets=[t])["report"].read_text()
    line = next(x for x in md.splitlines() if x.startswith("- met:"))
    assert line == ("- met: on a_set\\_, best \\*\\*x\\* (\\*\\*x\\*\\* at k=3) has WER 0.200, <= 0.6 x zero-shot "
                    "(0.6 x 0.500 = 0.300)."), line
    raw = check_target(Results(collect_results([tmp_path])), Target.from_dict(t)).sentence
    assert raw.startswith("met: on a_set_, best **x* (**x** at k=3) has WER 0.200")
    missing = build_report([tmp_path], tmp_path / "out2", targets=[{**t, "method": "_y_"}])["report"].read_text()
    assert "not evaluated: no WER for \\_y\\_ on a_set\\_ (no method named '\\_y\\_'; known: zero-shot, " \
           "\\*\\*x\\*\\*)." in missing
