"""Independent cross-checks of sicl's numbers against the reference libraries used directly (jiwer, Whisper's
normalisers, sacreBLEU) and the MMAU / MMSU rules as docs/metrics.md states them. Every expected value is small
enough to check by hand; the comments say how."""

from __future__ import annotations

import jiwer
import pytest
import sacrebleu

from sicl.eval.metrics import score_rows


def _asr(pairs, lang="en"):
    rows = [{"id": str(k), "task": "asr", "target": r, "prediction": h, "lang": lang}
            for k, (r, h) in enumerate(pairs)]
    return score_rows(rows)["asr"]


def _choice(outputs, target, choices, benchmark=None):
    meta = {"benchmark": benchmark} if benchmark else {}
    rows = [{"id": str(k), "task": "aqa", "target": target, "choices": choices, "prediction": "ignored", "raw": o,
             "meta": meta} for k, o in enumerate(outputs)]
    return score_rows(rows)["aqa"]


# ------------------------------------------------------------------------------------------------ ASR


def test_cer_can_exceed_one():
    # "a" against "abcdef": 5 inserted characters / 1 reference character = 5.0 (docs: CER is not capped);
    # the word level is 1 substitution / 1 word.
    m = _asr([("a", "abcdef")])
    assert m["cer"] == 5.0 == jiwer.cer("a", "abcdef")
    assert m["wer"] == 1.0


def test_corpus_capped_and_skipped_counts():
    # yes | yes no no no: 3 insertions (utterance WER 3.0, capped 1); a..f | a..e g: 1 substitution of 6;
    # [noise] is empty after normalisation: skipped, still in n. corpus 4/7, capped (1 + 1/6) / 2.
    m = _asr([("yes", "yes no no no"), ("a b c d e f", "a b c d e g"), ("[noise]", "hello")])
    assert (m["n"], m["skipped_empty_reference"], m["ref_words"]) == (3, 1, 7)
    assert (m["substitutions"], m["deletions"], m["insertions"]) == (1, 0, 3)
    assert m["wer"] == round(4 / 7, 6)
    assert m["wer_utterance_capped"] == round((1 + 1 / 6) / 2, 6)


@pytest.mark.parametrize(("ref", "hyp"), [
    ("It costs $5.", "it costs five dollars"),
    ("twenty-five percent", "25%"),
    ("Don't do it", "do not do it"),
    ("the colour of the theatre", "the color of the theater"),
    ("a well-known fact", "a well known fact"),
    ("café naïve", "cafe naive"),
    ("Mr. Smith", "mister smith"),
    ("hello\u200bworld", "hello world"),  # sicl's documented pre-step: a zero-width space is a space
])
def test_english_normaliser_equal_pairs(ref, hyp):
    assert _asr([(ref, hyp)])["wer"] == 0.0


def test_curly_apostrophe_is_not_a_contraction_for_whisper():
    # Whisper's English normaliser expands "don't" but turns the curly "don’t" into "don t":
    # "don t stop" vs "do not stop" = 2 substitutions / 3 words.
    assert _asr([("don\u2019t stop", "do not stop")])["wer"] == round(2 / 3, 6)


def test_basic_normaliser_drops_combining_marks():
    # Whisper's BasicTextNormalizer replaces category-M characters with spaces: the Thai tone marks of
    # "ไม่" / "ไม้" vanish (CER 0, the Whisper convention, documented as a known blind spot).
    m = _asr([("ไม่", "ไม้")], lang="th")
    assert (m["cer"], m["primary"]) == (0.0, "cer")


def test_chinese_cer_without_spaces():
    # 今天天气很好。 vs 今天天气不好: punctuation dropped, 1 substitution of 6 characters.
    m = _asr([("今天天气很好。", "今天天气不好")], lang="zh-CN")
    assert m["cer"] == round(1 / 6, 6)
    assert m["primary"] == "cer"


def test_mixed_languages_pool_edits():
    # en: "the cat sat" | "the cat" (1 deletion of 3); zh: 你好 | 你好吗 (1 inserted character of 2; one
    # word each, so 1 substitution at the word level). corpus WER (1 + 1) / (3 + 1); CER: " sat" is 4 deleted
    # characters of 11, plus 1 inserted of 2: (4 + 1) / (11 + 2).
    rows = [{"id": "e", "task": "asr", "target": "the cat sat", "prediction": "the cat", "lang": "en"},
            {"id": "z", "task": "asr", "target": "你好", "prediction": "你好吗", "lang": "zh"}]
    m = score_rows(rows)["asr"]
    assert m["wer"] == 0.5
    assert m["cer"] == round(5 / 13, 6)
    assert m["by_lang"]["en"]["wer"] == round(1 / 3, 6)
    assert m["by_lang"]["zh"]["cer"] == 0.5


# ------------------------------------------------------------------------------------------------ BLEU


ZH = [("今天天气很好。", "今天天气不错。"), ("我喜欢吃苹果。", "我爱吃苹果。")]
JA = [("今日はいい天気です。", "今日は良い天気です。")]
DE = [("Ich gehe heute nach Hause.", "Ich gehe nach Hause heute."), ("Der Hund bellt laut!", "der Hund bellt.")]


def _st(groups):
    rows = [{"id": f"{lang}{k}", "task": "st", "target": r, "prediction": h, "target_lang": lang}
            for lang, pairs in groups for k, (r, h) in enumerate(pairs)]
    return score_rows(rows)["st"]


@pytest.mark.parametrize(("lang", "pairs", "tok"), [("zh", ZH, "zh"), ("ja", JA, "char"), ("de", DE, "13a")])
def test_bleu_equals_corpus_bleu(lang, pairs, tok):
    if lang == "ja" and _st([(lang, pairs)])["tokenize"] != "char":
        pytest.skip("ja-mecab installed")
    expected = sacrebleu.corpus_bleu([h for _, h in pairs], [[r for r, _ in pairs]], tokenize=tok).score
    m = _st([(lang, pairs)])
    assert (m["bleu"], m["tokenize"]) == (round(expected, 4), tok)


def test_mixed_target_languages_pool_statistics():
    # The overall BLEU pools each segment's n-gram statistics, each tokenised by its own language's tokenizer.
    stats = None
    for tok, pairs in (("13a", DE), ("zh", ZH)):
        for r, h in pairs:
            s = sacrebleu.BLEU(tokenize=tok)._extract_corpus_statistics([h], [[r]])[0]
            stats = s if stats is None else [a + b for a, b in zip(stats, s, strict=True)]
    expected = sacrebleu.BLEU()._compute_score_from_stats(stats).score
    m = _st([("de", DE), ("zh", ZH)])
    assert m["bleu"] == round(expected, 4)
    assert set(m["by_target_lang"]) == {"de", "zh"}


# ---------------------------------------------------------------------------------------- MMAU / MMSU


def test_mmau_options_that_are_substrings():
    # choices cat / cat food: "food" is a wrong token when the answer is cat; "cat" lacks "food" when the
    # answer is cat food. Token sets, not substrings: "catfood" has neither token.
    choices = ["cat", "cat food", "dog"]
    outs = ["cat", "Cat!", "cat food", "the cat's food", "catfood", "food for the cat", "", "cat or dog"]
    assert _choice(outs, "cat", choices)["correct"] == 2            # cat, Cat!
    assert _choice(outs, "cat food", choices)["correct"] == 3       # cat food, the cat's food, food for the cat
    assert _choice(outs, "cat", choices)["empty_predictions"] == 1


def test_mmsu_letter_rule_and_denominator():
    # "A" -> cat (right), "The answer is B." -> cat food (wrong), "Answer: B" -> first char A (right),
    # "cat" -> no letter (excluded), "" -> counted wrong. 2 right / (5 - 1).
    outs = ["A", "The answer is B.", "Answer: B", "cat", ""]
    m = _choice(outs, "cat", ["cat", "cat food", "dog"], benchmark="MMSU")
    assert (m["n"], m["correct"], m["excluded"], m["accuracy"]) == (5, 2, 1, 0.5)
