"""sicl report on real `sicl eval` output (a random tiny-omni on tone clips): the reader and the runner agree."""

import csv
from pathlib import Path

from sicl.eval.runner import EvalConfig, evaluate
from sicl.report import build_report
from tests.train_fixtures import make_train_data

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_reads_a_real_sweep_and_single_run(tmp_path: Path):
    data = make_train_data(tmp_path / "data")
    common = dict(data=str(data["queries"]), pool=str(data["pool"]), model=str(data["model"]), retriever="random",
                  batch_size=4, max_new_tokens=4, cache_dir=str(tmp_path / "cache"), eval_set="kids")
    evaluate(EvalConfig(out=str(tmp_path / "eval" / "icl"), ks=[0, 1, 2], **common))
    evaluate(EvalConfig(out=str(tmp_path / "eval" / "zs"), ks=[0], **common))
    written = build_report([tmp_path / "eval"], tmp_path / "report")
    with written["results"].open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = {(r["method"], r["eval_set"], r["k"], r["metric"]) for r in rows}
    # the sweep is one vanilla-icl line from k=0; the separate k=0 run is zero-shot
    for k in ("0", "1", "2"):
        assert ("vanilla-icl", "kids", k, "seconds_per_query") in keys
        assert ("vanilla-icl", "kids", k, "prompt_tokens") in keys
        assert ("vanilla-icl", "kids", k, "peak_rss_mb") in keys
    assert ("zero-shot", "kids", "0", "n") in keys
    quality = {m for (_, _, _, m) in keys} & {"wer", "bleu", "accuracy", "cer"}
    assert quality, keys
    tokens = {int(r["k"]): float(r["value"]) for r in rows
              if r["method"] == "vanilla-icl" and r["metric"] == "prompt_tokens"}
    assert tokens[0] < tokens[1] < tokens[2]  # demonstrations make the prompt longer
    md = written["report"].read_text()
    assert "## k-sweep" in md and "| vanilla-icl |" in md
    assert written["plots"] and all(p.read_bytes()[:8] == PNG_MAGIC for p in written["plots"])
