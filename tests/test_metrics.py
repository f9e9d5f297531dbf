"""Metrics against hand-computed values (docs/metrics.md)."""

import json

import pytest
import sacrebleu

from sicl.errors import ManifestError, SiclError
from sicl.eval.metrics import (
    bleu_tokenizer,
    choice_correct,
    map_option_letter,
    mmau_match,
    normalize_text,
    score_file,
    score_rows,
)


def asr(target, prediction, lang="en", i=[0]):  # noqa: B006 - a counter for unique ids
    i[0] += 1
    return {"id": f"a{i[0]}", "task": "asr", "target": target, "prediction": prediction, "lang": lang}


def st(target, prediction, target_lang, lang="en", i=[0]):  # noqa: B006
    i[0] += 1
    return {"id": f"s{i[0]}", "task": "st", "target": target, "prediction": prediction, "lang": lang,
            "target_lang": target_lang}


def qa(target, prediction, choices, task="aqa", meta=None, lang="en", i=[0]):  # noqa: B006
    i[0] += 1
    row = {"id": f"q{i[0]}", "task": task, "target": target, "prediction": prediction, "lang": lang}
    if choices is not None:
        row["choices"] = choices
    if meta:
        row["meta"] = meta
    return row


# ------------------------------------------------------------------------------------------ normaliser

@pytest.mark.parametrize("a, b", [
    ("twenty five", "25"),                          # numbers
    ("Twenty-five percent", "25%"),
    ("don't", "do not"),                            # contractions
    ("I've got it", "I have got it"),
    ("Hello, World!", "hello world"),               # punctuation, casing
    ("The colour of the theatre", "the color of the theater"),  # British -> American spelling
    ("Mr. Smith", "mister smith"),
    ("um the cat", "the cat"),                      # fillers
])
def test_english_normaliser_makes_equivalent_forms_score_zero(a, b):
    assert normalize_text(a, "en") == normalize_text(b, "en")
    assert score_rows([asr(a, b)])["asr"]["wer"] == 0.0


def test_other_languages_use_the_basic_normaliser():
    assert normalize_text("Don't", "de") == "don t"             # no English contraction rules
    assert normalize_text("Twenty five", "de") == "twenty five"  # no English number rules
    assert normalize_text("Straße, Ärger!", "de") == "straße ärger"
    assert normalize_text("don't", None) == "do not"             # missing lang = English


# ------------------------------------------------------------------------------------------------- WER

def test_corpus_wer_and_capped_mean_differ_by_hand():
    # utterance 1: "yes" -> "yes no no no": 3 insertions over 1 word, WER 3.0 (capped to 1)
    # utterance 2: 6 words, 1 substitution, WER 1/6
    m = score_rows([asr("yes", "yes no no no"), asr("the cat sat on the mat", "the cat sat on a mat")])["asr"]
    assert m["wer"] == round(4 / 7, 6)
    assert m["wer_utterance_capped"] == round((1 + 1 / 6) / 2, 6)
    assert (m["substitutions"], m["deletions"], m["insertions"], m["ref_words"]) == (1, 0, 3, 7)
    assert m["n"] == 2 and m["primary"] == "wer"


def test_empty_hypothesis_is_all_deletions():
    m = score_rows([asr("the cat sat", ""), asr("a dog", "a dog")])["asr"]
    assert m["deletions"] == 3 and m["wer"] == round(3 / 5, 6)
    assert m["wer_utterance_capped"] == 0.5 and m["empty_predictions"] == 1
    # CER: "the cat sat" is 11 characters (spaces count for English), all deleted; "a dog" is 5, all right
    assert m["cer"] == round(11 / 16, 6)


def test_prediction_empty_after_normalisation_counts_as_empty():
    m = score_rows([asr("the cat", "Hmm.")])["asr"]
    assert m["empty_predictions"] == 1 and m["wer"] == 1.0


def test_empty_reference_is_skipped_and_counted():
    m = score_rows([asr("[noise]", "anything here"), asr("(laughs)", ""), asr("a b", "a c")])["asr"]
    assert m["n"] == 3 and m["skipped_empty_reference"] == 2
    assert m["wer"] == 0.5 and m["wer_utterance_capped"] == 0.5 and m["ref_words"] == 2


def test_only_empty_references_give_null_metrics():
    m = score_rows([asr("", "hello")])["asr"]
    assert m["wer"] is None and m["cer"] is None and m["skipped_empty_reference"] == 1


def test_cer_for_chinese_ignores_spaces_and_is_the_headline():
    # normalised: "今天天气很好" vs "今天天气好" -> 1 deletion over 6 characters
    m = score_rows([asr("今天天气很好。", "今天 天气 好", lang="zh")])["asr"]
    assert m["cer"] == round(1 / 6, 6)
    assert m["primary"] == "cer"
    assert "by_lang" not in m


def test_cer_is_the_headline_for_fleurs_languages_written_without_spaces():
    for lang in ("my", "km", "lo"):  # Burmese, Khmer, Lao (FLEURS my_mm, km_kh, lo_la)
        m = score_rows([asr("sabai dee", "sabaidee", lang=lang)])["asr"]  # only the space differs
        assert m["primary"] == "cer" and m["cer"] == 0.0 and m["wer"] == 1.0
    assert score_rows([asr("ein Haus", "einhaus", lang="de")])["asr"]["primary"] == "wer"


def test_cer_for_japanese_and_thai_spaces_do_not_count():
    m = score_rows([asr("こんにちは", "こん にちわ", lang="ja")])["asr"]
    assert m["cer"] == round(1 / 5, 6)
    m = score_rows([asr("สวัสดีครับ", "สวัสดี ครับ", lang="th")])["asr"]
    assert m["cer"] == 0.0


def test_by_lang_only_with_more_than_one_language():
    rows = [asr("hello world", "hello word", lang="en"), asr("hallo welt", "hallo welt", lang="de")]
    m = score_rows(rows)["asr"]
    assert m["wer"] == 0.25
    assert m["by_lang"]["en"]["wer"] == 0.5 and m["by_lang"]["de"]["wer"] == 0.0
    assert m["by_lang"]["en"]["n"] == 1
    assert "by_lang" not in score_rows(rows[:1])["asr"]


# ------------------------------------------------------------------------------------------------ BLEU

HYPS = ["The cat sat on the mat.", "It is raining today in Paris.", "I like green tea"]
REFS = ["The cat sat on the mat.", "It rains today in Paris.", "I like green tea very much."]


def test_bleu_equals_a_direct_sacrebleu_call():
    m = score_rows([st(r, h, "en", lang="fr") for h, r in zip(HYPS, REFS, strict=True)])["st"]
    direct = sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="13a").score
    assert m["bleu"] == round(direct, 4) and 0 < direct < 100
    assert m["tokenize"] == "13a" and "tok:13a" in m["signature"] and m["n"] == 3
    assert "by_target_lang" not in m


def test_bleu_is_case_sensitive_and_not_normalised():
    m = score_rows([st("The cat sat on the mat.", "the cat sat on the mat.", "en")])["st"]
    assert m["bleu"] < 100


def test_bleu_chinese_targets_use_the_zh_tokenizer():
    hyps, refs = ["今天天气很好", "我喜欢喝茶"], ["今天天气非常好", "我喜欢喝绿茶"]
    m = score_rows([st(r, h, "zh-CN") for h, r in zip(hyps, refs, strict=True)])["st"]
    zh = sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score
    assert m["tokenize"] == "zh" and m["bleu"] == round(zh, 4)
    # 13a would see each sentence as one "word": no n-gram matches at all
    assert sacrebleu.corpus_bleu(hyps, [refs], tokenize="13a").score == 0.0 < zh


def test_bleu_japanese_targets_are_character_level_without_mecab():
    hyps, refs = ["今日は良い天気だ"], ["今日は良い天気です"]
    tok = bleu_tokenizer("ja")
    assert tok in ("ja-mecab", "char")
    m = score_rows([st(refs[0], hyps[0], "ja")])["st"]
    assert m["tokenize"] == tok and m["bleu"] == round(sacrebleu.corpus_bleu(hyps, [refs], tokenize=tok).score, 4)
    assert m["bleu"] > 0


def test_bleu_several_target_languages_pool_ngram_statistics():
    rows = [st(REFS[1], HYPS[1], "en"), st("今天天气非常好", "今天天气很好", "zh")]
    m = score_rows(rows)["st"]
    assert set(m["by_target_lang"]) == {"en", "zh"} and m["tokenize"] == "per target language"
    assert m["by_target_lang"]["zh"]["tokenize"] == "zh"
    en_b, zh_b = sacrebleu.BLEU(tokenize="13a"), sacrebleu.BLEU(tokenize="zh")
    stats = [a + b for a, b in zip(en_b._extract_corpus_statistics([HYPS[1]], [[REFS[1]]])[0],
                                   zh_b._extract_corpus_statistics(["今天天气很好"], [["今天天气非常好"]])[0], strict=True)]
    assert m["bleu"] == round(en_b._compute_score_from_stats(stats).score, 4)


def test_st_by_source_lang_and_empty_predictions():
    rows = [st("the cat", "the cat", "en", lang="fr"), st("a dog", "  ", "en", lang="de")]
    m = score_rows(rows)["st"]
    assert m["empty_predictions"] == 1 and set(m["by_lang"]) == {"de", "fr"}
    assert m["by_lang"]["fr"]["bleu"] == round(sacrebleu.corpus_bleu(["the cat"], [["the cat"]]).score, 4)


def test_bleu_tokenizer_table():
    assert [bleu_tokenizer(x) for x in ("en", "de", None, "zh", "zh-TW", "yue", "th")] == \
        ["13a", "13a", "13a", "zh", "zh", "zh", "char"]


# -------------------------------------------------------------------------------------------- accuracy

@pytest.mark.parametrize("answer, prediction, choices, ok", [
    ("violin", "violin", ["piano", "violin"], True),
    ("violin", "VIOLIN!", ["piano", "violin"], True),                     # case, punctuation
    ("violin", "It is a violin.", ["piano", "violin"], True),             # extra words are fine...
    ("violin", "It is a violin.", ["a piano", "violin"], False),          # ...unless a wrong choice has them
    ("violin", "piano or violin", ["piano", "violin"], False),            # names two choices
    ("violin", "", ["piano", "violin"], False),                           # empty
    ("violin", "...", ["piano", "violin"], False),                        # no word token
    ("acoustic guitar", "acoustic guitar", ["acoustic guitar", "electric guitar"], True),
    ("acoustic guitar", "guitar", ["acoustic guitar", "electric guitar"], False),   # answer token missing
    ("acoustic guitar", "electric guitar", ["acoustic guitar", "electric guitar"], False),
    ("cat", "catfish", ["cat", "catfish"], False),                        # tokens, not substrings
    ("catfish", "cat", ["cat", "catfish"], False),
    ("cat", "a cat", ["cat", "catfish"], True),
    ("dog barking", "barking dog", ["dog barking", "cat meowing"], True),  # token sets: order is free
    ("dog", "DOG", ["Dog", "dog", "cat"], True),                          # a choice with the answer's tokens is not wrong
    ("2", "2", ["1", "2", "3"], True),
    ("2", "12", ["1", "2", "12"], False),
])
def test_mmau_match(answer, prediction, choices, ok):
    assert mmau_match(answer, prediction, choices) is ok


@pytest.mark.parametrize("prediction", ["B", "b", "(B)", "B.", "B)", "B:", "Answer: B", "The answer is B.",
                                        "Option B", "B. violin", '"violin"'])
def test_option_letter_maps_to_its_choice(prediction):
    choices = ["piano", "violin", "drums"]
    assert map_option_letter(prediction, choices) == "violin"
    assert choice_correct(prediction, "violin", choices)
    assert not choice_correct(prediction, "piano", choices)


def test_letters_out_of_range_or_without_choices_are_not_mapped():
    assert map_option_letter("D", ["piano", "violin", "drums"]) == "D"
    assert not choice_correct("D", "drums", ["piano", "violin", "drums"])
    assert map_option_letter("B", None) == "B"


def test_open_questions_without_choices_need_every_answer_token():
    m = score_rows([qa("Paris", "It is Paris.", None, task="sqa"), qa("New York", "York", None, task="sqa")])
    assert m["sqa"]["accuracy"] == 0.5 and m["sqa"]["n"] == 2


def test_accuracy_with_breakdowns():
    c = ["piano", "violin", "drums"]
    rows = [
        qa("violin", "B", c, meta={"category": "music", "difficulty": "easy", "task": "music"}),
        qa("violin", "piano", c, meta={"category": "music", "difficulty": "hard", "task": "music"}),
        qa("drums", "drums", c, meta={"category": "sound", "difficulty": "easy"}),
        qa("drums", "", c, meta={"category": "sound"}),
    ]
    # lenient maps the bare letter "B" to "violin"
    m = score_rows(rows, scorer="lenient")["aqa"]
    assert (m["n"], m["correct"], m["accuracy"], m["empty_predictions"]) == (4, 2, 0.5, 1)
    assert m["by_category"] == {"music": {"n": 2, "accuracy": 0.5}, "sound": {"n": 2, "accuracy": 0.5}}
    assert m["by_difficulty"] == {"easy": {"n": 2, "accuracy": 1.0}, "hard": {"n": 1, "accuracy": 0.0},
                                  "unknown": {"n": 1, "accuracy": 0.0}}
    assert m["by_meta_task"] == {"music": {"n": 2, "accuracy": 0.5}, "unknown": {"n": 2, "accuracy": 0.5}}
    assert "by_lang" not in m
    assert (m["scorer"], m["rule"]) == ("lenient", "lenient-letter-map+mmau-string-match")
    # the default (official, MMAU's script): "B" has no token of "violin", so only "drums" is right
    m = score_rows(rows)["aqa"]
    assert (m["n"], m["correct"], m["accuracy"], m["empty_predictions"]) == (4, 1, 0.25, 1)
    assert m["by_category"] == {"music": {"n": 2, "accuracy": 0.0}, "sound": {"n": 2, "accuracy": 0.5}}
    assert m["by_difficulty"] == {"easy": {"n": 2, "accuracy": 0.5}, "hard": {"n": 1, "accuracy": 0.0},
                                  "unknown": {"n": 1, "accuracy": 0.0}}
    assert (m["scorer"], m["rule"]) == ("official", "mmau-string-match")


def test_no_breakdowns_without_meta_and_by_lang_for_choices():
    c = ["yes", "no"]
    m = score_rows([qa("yes", "yes", c, task="sqa", lang="en"), qa("no", "yes", c, task="sqa", lang="de")])["sqa"]
    assert "by_category" not in m and "by_difficulty" not in m
    assert m["by_lang"] == {"de": {"n": 1, "accuracy": 0.0, "empty_predictions": 0},
                            "en": {"n": 1, "accuracy": 1.0, "empty_predictions": 0}}


# ------------------------------------------------------------------------------------- shape and input

def test_keys_only_for_tasks_present_and_in_task_order():
    rows = [qa("yes", "yes", ["yes", "no"], task="sqa"), asr("a", "a"), st("a b", "a b", "en")]
    assert list(score_rows(rows)) == ["asr", "st", "sqa"]
    assert score_rows([]) == {}


@pytest.mark.parametrize("row, msg", [
    ({"id": "x", "task": "asr", "prediction": "a"}, "missing field 'target'"),
    ({"id": "x", "task": "asr", "target": "a"}, "missing field 'prediction'"),
    ({"id": "x", "task": "asr", "target": "a", "prediction": 3}, "'prediction' must be a string"),
    ({"id": "x", "task": "kws", "target": "a", "prediction": "a"}, "field 'task'"),
    ({"id": "x", "task": "asr", "target": "a", "prediction": "a", "choices": ["a", "b"]}, "only sqa/aqa"),
])
def test_unscorable_rows_raise(row, msg):
    with pytest.raises(SiclError, match=msg):
        score_rows([row])


def test_score_file_names_file_and_line(tmp_path):
    good = asr("the cat", "the cat")
    p = tmp_path / "predictions.jsonl"
    p.write_text(json.dumps(good) + "\n\n" + json.dumps(asr("a b", "a")) + "\n", encoding="utf-8")
    assert score_file(p)["asr"]["wer"] == 0.25
    p.write_text(json.dumps(good) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"predictions\.jsonl:2: invalid JSON"):
        score_file(p)
    p.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r":2: id 'a\d+' already on line 1"):
        score_file(p)
    p.write_text(json.dumps({"task": "asr", "target": "a", "prediction": "a"}) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r":1: missing field 'id'"):
        score_file(p)
    with pytest.raises(ManifestError, match="cannot open"):
        score_file(tmp_path / "missing.jsonl")


def test_looping_outputs_counts_raw_loops_whatever_the_scorer():
    rows = [{"id": "a", "task": "asr", "target": "the cat sat", "prediction": "the cat sat"},
            {"id": "b", "task": "asr", "target": "a dog ran home",
             "prediction": "a dog ran home home home home home"},
            # already trimmed by --loop-trim: the raw output is what looped
            {"id": "c", "task": "asr", "target": "so the bell rang", "prediction": "so the bell rang",
             "raw": "so the so the so the so the bell rang"},
            {"id": "d", "task": "asr", "target": "two two", "prediction": "two two"}]  # a run of two is speech
    for scorer in ("official", "mimo-eval"):
        assert score_rows(rows, scorer=scorer)["asr"]["looping_outputs"] == 2
    st = [{"id": "s", "task": "st", "target": "le chat", "target_lang": "fr", "prediction": "le le le chat"}]
    assert score_rows(st)["st"]["looping_outputs"] == 1
