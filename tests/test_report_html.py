"""report.html: one self-contained page with the tables, inlined plots, and audio examples with marked errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sicl.data.manifest import Example, write_manifest
from sicl.report.build import build_report
from sicl.report.html import marked_errors
from sicl.testing import write_tone
from tests.test_report import asr, write_run


def test_marked_errors_marks_each_kind():
    out = marked_errors("the cat sat on the mat", "the bat sat on mat")
    assert out == 'the <span class="sub" title="cat">bat</span> sat on <span class="del">the</span> mat'
    assert marked_errors("a b", "a b c") == 'a b <span class="ins">c</span>'
    assert marked_errors("a b", "a b") == "a b" and marked_errors("a", "") == "<em>(empty)</em>"


def _preds(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_html_is_self_contained_with_players_and_errors(tmp_path):
    audio = tmp_path / "audio"
    q = [write_tone(audio / f"q{i}.wav", seconds=0.4, freq=300 + 40 * i, seed=i) for i in range(4)]
    pool = [Example(id=f"p{i}", audio=str(write_tone(audio / f"p{i}.wav", seconds=0.3, seed=10 + i)), task="asr",
                    target=f"pool words {i}") for i in range(3)]
    write_manifest(tmp_path / "pool.jsonl", pool)
    refs = ["the magnet attracts the paperclip", "a b c", "one two", "x y"]
    ev = tmp_path / "eval"
    zs = write_run(ev / "zero-shot" / "child-science", "zero-shot", "child-science", 0, asr(0.5))
    at = write_run(ev / "sicl-at1" / "child-science", "sicl-at1", "child-science", 3, asr(0.2), adapter="m",
                   pool=str(tmp_path / "pool.jsonl"))
    _preds(zs / "predictions.jsonl", [{"id": f"q{i}", "audio": str(q[i]), "task": "asr", "target": refs[i],
                                       "prediction": "the magnate attracts paperclip" if i == 0 else refs[i],
                                       "demos": [], "k": 0} for i in range(4)])
    _preds(at / "predictions.jsonl", [{"id": f"q{i}", "audio": str(q[i]), "task": "asr", "target": refs[i],
                                       "prediction": refs[i], "demos": ["p0", "p2", "p1"], "k": 3} for i in range(4)])
    out = build_report([ev], tmp_path / "report")
    page = out["html"].read_text()
    assert page.startswith("<!doctype html>") and "<table>" in page
    assert "Listen: example queries" in page and page.index("Listen") < page.index("<h2>Settings")
    players = re.findall(r'<audio controls preload="none" src="data:audio/wav;base64,', page)
    assert len(players) == 3 * (1 + 3)  # 3 queries, each with its 3 demonstrations
    assert "pool words 2" in page and '<span class="sub" title="magnet">magnate</span>' in page
    assert '<span class="del">the</span>' in page
    assert not re.search(r'src="(?!data:)', page)  # nothing outside the page: plots and audio are inlined
    assert re.search(r'src="data:image/png;base64,', page)
