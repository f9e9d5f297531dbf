"""Pretraining's held-out checks score with the project's metrics (sicl.eval.metrics), and ``sicl pretrain`` is a
command like the others (one-line errors; ``python -m sicl.pretrain``: tests/test_pretrain_faults.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import sacrebleu

from sicl.cli.main import main
from sicl.eval.metrics import score_rows
from sicl.pretrain.evaluate import score


def _items(targets, task="asr", target_lang=None):
    return [SimpleNamespace(task=task, target=t, lang="en", target_lang=target_lang) for t in targets]


def test_wer_is_the_projects_corpus_wer_with_whispers_normaliser():
    items = _items(["I have two cats.", "Mr. Smith's colour is red", "the end"])
    hyps = ["i have 2 cats", "mister smith's color is blue", ""]
    # Whisper's English normaliser: two -> 2, Mr. -> mister, colour -> color, smith's -> smith is; then
    # 1 substitution + 2 deletions over 4 + 6 + 2 reference words (a lower-case word match would also charge
    # two/2, Mr/mister, colour/color)
    assert score("wer", items, hyps) == 3 / 12
    rows = [{"id": str(i), "task": "asr", "target": it.target, "prediction": h} for i, (it, h) in
            enumerate(zip(items, hyps, strict=True))]
    assert round(score("wer", items, hyps), 6) == score_rows(rows)["asr"]["wer"]


def test_bleu_is_sacrebleu_13a_for_the_synthetic_target_language():
    refs = ["zo ka mi lu ne", "pa te ro vi sa ku", "do re mi fa so la ti"]
    hyps = ["zo ka mi lu", "pa te ro vi sa ku", "do re fa so la ti"]
    got = score("bleu", _items(refs, "st", "zx"), hyps)
    assert got == pytest.approx(round(sacrebleu.corpus_bleu(hyps, [refs]).score, 4), abs=0) and 0 < got < 100


def test_accuracy_is_exact_match_and_bad_input_is_an_error():
    items = _items(["a red ball", "blue"], "sqa")
    assert score("acc", items, ["a red ball ", "the blue one"]) == 0.5  # the MMAU match would count both
    with pytest.raises(ValueError, match="unknown pretraining metric 'cer'"):
        score("cer", items, ["x", "y"])
    with pytest.raises(ValueError, match="2 items but 1 hypotheses"):
        score("acc", items, ["x"])
    with pytest.raises(ValueError, match="references are all empty"):
        score("wer", _items(["", "?!"]), ["x", "y"])


def test_pretrain_command_errors_are_one_line(tmp_path, capsys):
    assert main(["pretrain", "no_such_key=1", f"out_dir={tmp_path / 'run'}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sicl pretrain: error:") and "no_such_key" in err and "\n" not in err
    assert main(["pretrain", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing written for a refused config
    from sicl.guard import output_lock

    with output_lock(tmp_path / "busy", "test"):  # a second run on a folder in use is refused at once
        assert main(["pretrain", f"out_dir={tmp_path / 'busy'}"]) == 1
    assert "is in use by another sicl run" in capsys.readouterr().err
