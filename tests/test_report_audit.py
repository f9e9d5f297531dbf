"""Adversarial inputs to ``sicl report``: names with markdown/HTML characters, odd predictions.jsonl rows, fonts."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from sicl.report.build import build_report
from tests.test_report import asr, write_run


def _preds(path: Path, rows: list) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_markdown_characters_in_names_are_literal(tmp_path: Path):
    ev = tmp_path / "eval"
    write_run(ev / "a", "**fake-best**", "set *x* [y](z) &amp;", 3, asr(0.5))
    write_run(ev / "a0", "**fake-best**", "set *x* [y](z) &amp;", 0, asr(0.6))
    write_run(ev / "b", "zero-shot", "set *x* [y](z) &amp;", 0, asr(0.3))
    out = build_report([ev], tmp_path / "report")
    md = out["report"].read_text()
    assert "](plots/wer_vs_k_set_x_y_z_amp.png)" in md  # the sweep plot of an escaped eval set is still shown
    assert r"\*\*fake-best\*\*" in md and r"set \*x\* \[y\](z) \&amp;" in md
    page = out["html"].read_text()
    assert "**fake-best**" in page and "<strong>fake-best</strong>" not in page
    assert "set *x* [y](z) &amp;amp;" in page and "<em>x</em>" not in page
    # results.csv keeps the raw names
    assert "**fake-best**,set *x* [y](z) &amp;,3,wer," in out["results"].read_text()


def test_listen_section_survives_odd_prediction_rows_and_escapes_k(tmp_path: Path):
    ev = tmp_path / "eval"
    zs = write_run(ev / "zs", "zero-shot", "s", 0, asr(0.5))
    at = write_run(ev / "at", "sicl-at1", "s", 3, asr(0.4))
    _preds(zs / "predictions.jsonl", [[1, 2], {"id": ["x"]}, {"id": 7, "target": 12, "prediction": 12, "audio": 3,
                                                               "task": "asr", "k": "<script>alert(1)</script>"}])
    _preds(at / "predictions.jsonl", [{"id": 7, "target": 12, "prediction": None, "demos": "p1", "k": 3}])
    out = build_report([ev], tmp_path / "report")
    page = out["html"].read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Listen: example queries" in page


def test_plots_of_cjk_names_raise_no_font_warnings(tmp_path: Path):
    ev = tmp_path / "eval"
    write_run(ev / "a", "中文方法", "集合", 0, asr(0.5))
    write_run(ev / "b", "中文方法", "集合", 3, asr(0.4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = build_report([ev], tmp_path / "report")
    assert out["plots"]


def test_k_column_names_a_k_the_method_was_run_at(tmp_path: Path):
    """A method run at k=2 on one set and k=4 on another (never at --k 3): the k column must not claim 3."""
    ev = tmp_path / "eval"
    write_run(ev / "a", "m", "adult", 2, asr(0.5))
    write_run(ev / "b", "m", "names", 4, asr(0.4))
    write_run(ev / "c", "zero-shot", "adult", 0, asr(0.6))
    write_run(ev / "d", "zero-shot", "names", 0, asr(0.6))
    md = build_report([ev], tmp_path / "report")["report"].read_text()
    assert "| m | 2 | **0.500** | **0.400** (k=4) |" in md  # was "| m | 3 | **0.500** (k=2) | ..."
