"""The named scorers (sicl.eval.scorers) against hand-computed cases, one or more per rule branch.

Every expected value below was worked out by hand from the published rules (docs/metrics.md, "Scorers"):
MMAU's evaluation.py, MMSU's mmsu_evaluation.py and MiMo-Audio-Eval's evaluators.
"""

import json

import pytest

from sicl.cli.main import main
from sicl.errors import SiclError
from sicl.eval.metrics import score_rows
from sicl.eval.scorers import (
    MIMO_DELETED,
    SCORER_NAMES,
    ZHON_PUNCTUATION,
    after_thinking,
    check_scorable,
    get_scorer,
    mimo_asr_text,
    mimo_clean,
    mimo_extract,
    mmsu_letter,
)

C = ["piano", "violin", "drums"]


def qa(raw, target="violin", choices=C, *, prediction=None, benchmark=None, task="aqa", i=[0]):  # noqa: B006
    i[0] += 1
    row = {"id": f"q{i[0]}", "task": task, "target": target, "choices": choices, "raw": raw,
           "prediction": raw if prediction is None else prediction}
    if benchmark:
        row["meta"] = {"benchmark": benchmark}
    return row


def acc(rows, scorer):
    return score_rows(rows, scorer)[rows[0]["task"]]


# ------------------------------------------------------------------------------------------- registry

def test_registry_names_default_and_unknown():
    assert SCORER_NAMES == ("official", "mimo-eval", "lenient")
    assert get_scorer(None).name == "official"
    with pytest.raises(SiclError, match="unknown scorer 'fancy' \\(expected one of official, mimo-eval, lenient\\)"):
        score_rows([qa("violin")], "fancy")


# ------------------------------------------------------------------------------ official MMAU / MMAR

def test_official_reads_raw_and_maps_nothing():
    # sicl's runner already mapped "B" to "violin" in `prediction`; the official script sees the output "B"
    row = qa("B", prediction="violin")
    assert acc([row], "official")["accuracy"] == 0.0
    assert acc([row], "lenient")["accuracy"] == 1.0  # lenient reads `prediction`
    del row["raw"]  # a file without raw: `prediction` is the output
    assert acc([row], "official")["accuracy"] == 1.0


# (output, official, mimo-eval, lenient) against choices piano/violin/drums, answer violin. Worked by hand:
MIXED = [
    ("violin", 1, 1, 1),
    ("Violin.", 1, 1, 1),
    ("(B)", 0, 0, 1),                                   # a letter has no token of the answer
    ("B. violin", 1, 1, 1),                             # token "b" is no wrong-choice token
    ("The answer is violin.", 1, 1, 1),
    ("The answer is B.", 0, 0, 1),
    ("It sounds like a piano, but it is a violin.", 0, 0, 0),  # names a wrong choice
    ("I hear strings.\nAnswer: violin", 1, 1, 1),       # no wrong-choice token anywhere
    ("Piano? No.\nThe correct answer is: **violin**", 0, 1, 0),  # only MiMo's markers drop the "piano" line
    ("<think>piano or violin</think>violin", 0, 1, 0),  # MiMo's thinking split
    ("**violin** (not piano)", 0, 1, 0),                # MiMo: the bold span is the answer
    ("", 0, 0, 0),
    ("drums", 0, 0, 0),
]


@pytest.mark.parametrize("scorer, column", [("official", 1), ("mimo-eval", 2), ("lenient", 3)])
def test_mixed_outputs_hand_computed(scorer, column):
    for case in MIXED:
        got = acc([qa(case[0])], scorer)["correct"]
        assert got == case[column], (scorer, case)
    rows = [qa(case[0]) for case in MIXED]
    m = acc(rows, scorer)
    want = sum(case[column] for case in MIXED)
    assert (m["n"], m["correct"], m["accuracy"]) == (13, want, round(want / 13, 6))
    assert m["empty_predictions"] == 1 and "excluded" not in m


def test_rows_of_named_benchmarks_mmau_mmar_use_the_string_match():
    for bench in ("mmau", "mmar", "MMAU", "something-else"):
        m = acc([qa("violin", benchmark=bench), qa("B", benchmark=bench)], "official")
        assert (m["accuracy"], m["rule"]) == (0.5, "mmau-string-match")


# -------------------------------------------------------------------------------------------- MMSU

@pytest.mark.parametrize("text, letter", [
    ("B", "B"),
    ("B. violin", "B"),                 # first character
    ("  \nC\n", "C"),                   # stripped first
    ("The answer is B.", "B"),          # second-to-last character
    ("answer: (C)", "C"),
    ("The answer is\nD.", "D"),         # newlines deleted: "...isD."
    ("Answer: B", "A"),                 # the first character wins, even here
    ("b", "unparsed"),                  # lower case is not a letter to the rule
    ("violin", "unparsed"),
    ("B is it", "B"),
    ("It is B", "unparsed"),            # the last character is not looked at
    ("", "empty"),
    ("   ", "empty"),
    ("None", "empty"),
])
def test_mmsu_letter(text, letter):
    assert mmsu_letter(text) == letter


def test_mmsu_official_leaves_unparsed_outputs_out_of_the_denominator():
    rows = [qa("B", benchmark="mmsu", task="sqa"),          # violin: right
            qa("violin", benchmark="mmsu", task="sqa"),     # unparsed: not counted
            qa("A", benchmark="mmsu", task="sqa"),          # piano: wrong
            qa("", benchmark="mmsu", task="sqa"),           # empty: wrong (the scripts reuse a stale letter)
            qa("D", benchmark="mmsu", task="sqa")]          # no fourth choice: wrong
    m = acc(rows, "official")
    assert (m["n"], m["correct"], m["excluded"], m["accuracy"], m["rule"]) == (5, 1, 1, 0.25, "mmsu-letter")
    m = acc(rows, "mimo-eval")  # MiMo-Audio-Eval counts every item
    assert (m["n"], m["correct"], m["accuracy"], m["rule"]) == (5, 1, 0.2, "mimo-mmsu-letter")
    assert "excluded" not in m
    m = acc(rows, "lenient")  # lenient has no MMSU rule: letters mapped, then the string match
    assert (m["correct"], m["accuracy"]) == (2, 0.4)  # "B" mapped; "violin" matches


def test_mmsu_choice_must_equal_the_target_exactly_and_thinking_is_split_by_mimo():
    row = qa("<think>A or B</think>B", benchmark="mmsu", task="sqa")
    assert acc([row], "official")["excluded"] == 1   # official: "<" ... "B"[-2] is ">" -> unparsed
    assert acc([row], "mimo-eval")["accuracy"] == 1.0
    row = qa("B", target="violin", choices=["piano", "Violin", "drums"], benchmark="mmsu", task="sqa")
    assert acc([row], "official")["accuracy"] == 0.0


def test_breakdowns_use_the_counted_items():
    rows = [qa("B", benchmark="mmsu", task="sqa"), qa("x", benchmark="mmsu", task="sqa")]
    for r in rows:
        r["meta"]["category"] = "music"
    m = acc(rows, "official")
    assert m["by_category"] == {"music": {"n": 2, "accuracy": 1.0}}
    assert acc(rows, "mimo-eval")["by_category"] == {"music": {"n": 2, "accuracy": 0.5}}


def test_mixed_benchmarks_in_one_task_name_both_rules():
    m = acc([qa("violin", task="sqa"), qa("B", benchmark="mmsu", task="sqa")], "official")
    assert (m["accuracy"], m["rule"]) == (1.0, "mmau-string-match + mmsu-letter")


# ------------------------------------------------------------------------------ MiMo answer extraction

@pytest.mark.parametrize("text, answer", [
    ("violin", "violin"),
    ("\n\n  violin  \nbecause it is bowed", "violin"),               # first non-empty line
    ("The correct answer is: violin.", "violin"),                    # marker 1, trailing punctuation trimmed
    ("correct choice is - violin", "violin"),
    ("the correct answer is violin", "violin"),
    ("It is bowed.\nAnswer: violin", "violin"),                       # marker 2
    ("answer - violin", "violin"),
    ("Answer: piano\nThe correct answer is violin", "piano"),        # marker-1 hits first, then marker-2: last wins
    ("The correct answer is:\n\n**violin**", "violin"),              # blanks after the marker cross lines
    ("Answer: .\n**violin** it is", "violin"),                        # empty after cleaning -> first bold after
    ("Answer: .\nviolin, I think", "violin, I think"),               # ... else the first non-empty line after
    ("Answer: .", "Answer"),                                          # ... else nothing: then the first line
    ("Maybe **piano**, but really **violin**", "violin"),            # no marker: every bold span, last wins
    ("**Answer: violin**", "Answer: violin"),                         # not a marker line (it starts with **): bold
    ("`violin`", "violin"),
    ("'violin'", "violin"),
    ('\\"violin\\"', "violin"),                                       # escaped quotes unescaped, then removed
    ("*violin*", "violin"),
    ("The  answer   is   violin", "The answer is violin"),            # no marker: whitespace runs collapsed
    ("", ""),
    ("  \n \n", ""),
])
def test_mimo_extract(text, answer):
    assert mimo_extract(text) == answer


def test_mimo_clean_and_thinking():
    assert mimo_clean("  **violin**  \nmore") == "violin"
    assert mimo_clean('"violin\'') == "violin"                # either quote kind, not necessarily equal
    assert mimo_clean("**violin**.") == "**violin**"          # wrappers first, then the trim: one layer only
    assert after_thinking("<think>x</think>  violin") == "violin"
    assert after_thinking("  violin </think> y") == "y"
    assert after_thinking("  violin") == "violin"


# ---------------------------------------------------------------------------------------- MiMo ASR

def asr(target, prediction, lang="en", i=[0]):  # noqa: B006
    i[0] += 1
    return {"id": f"a{i[0]}", "task": "asr", "target": target, "prediction": prediction, "lang": lang}


def test_mimo_asr_text_rules():
    assert mimo_asr_text("Hello, World!", "en", hypothesis=False) == "hello world"
    assert mimo_asr_text("well,done", "en", hypothesis=False) == "welldone"           # deleted, not spaced
    assert mimo_asr_text("Don't", "en", hypothesis=False) == "don't"                  # ASCII apostrophe kept
    assert mimo_asr_text("Don’t", "en", hypothesis=False) == "dont"                   # U+2019 is deleted
    assert mimo_asr_text("the cat (laughs) sat", "en", hypothesis=True) == "the cat "
    assert mimo_asr_text("the cat (laughs) sat", "en", hypothesis=False) == "the cat laughs sat"
    assert mimo_asr_text("你好，世界 ABC", "zh", hypothesis=False) == "你 好 世 界 A B C"  # zh: no lower-casing
    assert mimo_asr_text("a\u3000b", "en-US", hypothesis=False) == "ab"                # ideographic space deleted
    assert "'" not in MIMO_DELETED and "," in MIMO_DELETED and "。" in MIMO_DELETED
    assert len(ZHON_PUNCTUATION) == 82


def test_mimo_asr_text_matches_zhon_when_installed():
    zhon = pytest.importorskip("zhon.hanzi")
    assert set(ZHON_PUNCTUATION) == set(zhon.punctuation)


def test_mimo_wer_is_the_uncapped_mean_of_utterance_wer():
    rows = [asr("yes", "yes no no no"),             # 3 insertions / 1 word = 3.0
            asr("the cat sat", "The cat (sits) sat"),  # cut at "(": "the cat" -> 1 deletion / 3
            asr("Hello, world!", "hello world"),    # 0
            asr("well done", "well,done")]          # "welldone": 1 substitution + 1 deletion / 2 = 1.0
    m = score_rows(rows, "mimo-eval")["asr"]
    assert m["wer"] == round((3 + 1 / 3 + 0 + 1) / 4, 6) == 1.083333
    assert (m["ref_words"], m["substitutions"], m["deletions"], m["insertions"]) == (8, 1, 2, 3)
    assert (m["primary"], m["scorer"], m["rule"]) == ("wer", "mimo-eval", "mimo-mean-utterance-wer")
    assert "wer_utterance_capped" not in m and "cer" not in m
    o = score_rows(rows, "official")["asr"]      # the same rows under Whisper normalisation, corpus WER
    assert o["wer_utterance_capped"] != m["wer"] and o["scorer"] == "official"


def test_mimo_wer_chinese_is_per_character_and_empty_reference_is_skipped():
    rows = [asr("你好，世界", "你好世见", lang="zh"), asr("。。。", "你", lang="zh"), asr("ABC", "abc", lang="zh")]
    m = score_rows(rows, "mimo-eval")["asr"]
    assert m["wer"] == round((1 / 4 + 3 / 3) / 2, 6) and m["skipped_empty_reference"] == 1 and m["n"] == 3


def test_mimo_wer_empty_hypothesis_is_all_deletions():
    m = score_rows([asr("a b", "(laughs)")], "mimo-eval")["asr"]
    assert (m["wer"], m["deletions"], m["empty_predictions"]) == (1.0, 2, 1)


def test_mimo_asr_other_languages_are_an_error_before_generation():
    with pytest.raises(SiclError, match="scorer mimo-eval scores asr in en and zh only .* got lang 'de'"):
        score_rows([asr("hallo", "hallo", lang="de")], "mimo-eval")
    with pytest.raises(SiclError, match="id 'x'"):
        check_scorable("mimo-eval", [{"id": "x", "task": "asr", "lang": "fr"}])
    check_scorable("mimo-eval", [{"id": "x", "task": "st", "lang": "fr"}])  # st and other scorers: fine
    check_scorable("official", [{"id": "x", "task": "asr", "lang": "fr"}])
    with pytest.raises(SiclError, match="unknown scorer"):
        check_scorable("nope", [])


def test_st_is_sacrebleu_under_every_scorer():
    rows = [{"id": "s", "task": "st", "target": "Der Hund schläft unter dem Tisch", "prediction": "Der Hund schläft unter dem Tisch",
             "target_lang": "de"}]
    for name in SCORER_NAMES:
        m = score_rows(rows, name)["st"]
        assert (m["bleu"], m["scorer"], m["rule"]) == (100.0, name, "sacrebleu")


# ------------------------------------------------------------------------------------- the CLI, whole

def test_cli_reproduces_each_script_on_a_mixed_file(tmp_path, capsys):
    """The "done when" of issue 20 on one file: no flag = MMAU's evaluation.py, --scorer mimo-eval =
    MiMo-Audio-Eval's MMAU accuracy and average WER (every value hand-computed above)."""
    rows = [qa(case[0]) for case in MIXED] + [asr("yes", "yes no no no"), asr("Hello, world!", "hello world")]
    p = tmp_path / "predictions.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", str(p)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["aqa"]["correct"] == sum(c[1] for c in MIXED) == 5 and out["aqa"]["scorer"] == "official"
    assert main(["score", str(p), "--scorer", "mimo-eval"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["aqa"]["correct"] == sum(c[2] for c in MIXED) == 8
    assert out["asr"]["wer"] == 1.5  # (3 + 0) / 2
    assert main(["score", str(p), "--scorer", "lenient"]) == 0
    assert json.loads(capsys.readouterr().out)["aqa"]["correct"] == sum(c[3] for c in MIXED) == 7


# ------------------------------------------------------------- against the scripts' own outputs (fixture)

XC = __import__("pathlib").Path(__file__).parent / "fixtures" / "scorer_crosscheck"


def _rows(name):
    return [json.loads(line) for line in (XC / name).read_text(encoding="utf-8").splitlines()]


def test_reproduces_the_benchmark_scripts_on_the_crosscheck_fixture():
    """Numbers the unmodified MMAU, MMSU and MiMo-Audio-Eval scripts printed for these files
    (tests/fixtures/scorer_crosscheck/README.md says how they were made)."""
    from sicl.eval.scorers import mimo_mmau, mmau_official

    ref = json.loads((XC / "reference.json").read_text())
    items = json.loads((XC / "reference_items.json").read_text())
    aqa, sqa = _rows("aqa.jsonl"), _rows("sqa_mmsu.jsonl")
    assert round(100 * score_rows(aqa)["aqa"]["accuracy"], 2) == ref["mmau_official_printed_percent"] == 36.33
    assert score_rows(aqa)["aqa"]["accuracy"] == pytest.approx(ref["mmau_official"], abs=1e-6)
    assert score_rows(aqa, "mimo-eval")["aqa"]["accuracy"] == pytest.approx(ref["mimo_mmau"], abs=1e-6)
    assert [mmau_official(r).correct for r in aqa] == items["mmau_official"]
    assert [mimo_mmau(r).correct for r in aqa] == items["mimo_mmau"]
    assert score_rows(sqa)["sqa"]["accuracy"] == pytest.approx(ref["mmsu_official"], abs=1e-6)
    assert score_rows(sqa, "mimo-eval")["sqa"]["accuracy"] == pytest.approx(ref["mimo_mmsu"], abs=1e-6)
    for lang in ("en", "zh"):
        m = score_rows(_rows(f"asr_{lang}.jsonl"), "mimo-eval")["asr"]
        assert m["wer"] == pytest.approx(ref[f"mimo_asr_{lang}"], abs=1e-6)
        assert m["wer"] == pytest.approx(sum(items[f"mimo_asr_{lang}"]) / len(items[f"mimo_asr_{lang}"]), abs=1e-6)
    # and the scorers differ from each other on it (the fixture exercises what separates them)
    assert score_rows(aqa, "lenient")["aqa"]["accuracy"] == pytest.approx(0.443333, abs=1e-6)
    assert score_rows(sqa)["sqa"]["excluded"] > 0


def test_notebook_api_takes_the_scorer(tmp_path):
    import sicl

    rows = [qa("B")]  # raw "B" against answer violin
    assert sicl.score(rows)["aqa"]["accuracy"] == 0.0
    assert sicl.score(rows, scorer="lenient")["aqa"]["accuracy"] == 1.0
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps(rows[0]) + "\n")
    assert sicl.score(p, scorer="mimo-eval")["aqa"]["scorer"] == "mimo-eval"
