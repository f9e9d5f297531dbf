"""Named scorers: which published rule turns a prediction row into a per-item result.

A number is comparable with a published table only when it was computed with that table's rule. The three
scorers (``sicl score --scorer NAME``, ``sicl eval --scorer NAME``, ``score_rows(rows, scorer=NAME)``):

``official`` (the default)
    Each benchmark's own script. MMAU / MMAR (and sqa/aqa rows of no named benchmark): the official string
    match on the model's whole output, nothing extracted or mapped first. MMSU: its letter rule, with its
    denominator. ASR: Whisper-normalised corpus WER plus the SICL-AT paper's capped utterance WER. ST:
    sacreBLEU.
``mimo-eval``
    MiMo-Audio-Eval's evaluators (the numbers MiMo-Audio publishes). MMAU / MMAR: its answer extraction
    (markers, bold, first line), then the same string match. MMSU: the letter rule, every item in the
    denominator. ASR: punctuation removed (apostrophes kept), English lower-cased, Chinese split into
    characters, the plain mean of per-utterance WER (no cap). ST: sacreBLEU (MiMo-Audio-Eval has no ST scorer).
``lenient``
    sicl's development rule (the default before issue 20): the answer extracted from the output and a bare
    option letter mapped to its choice, then the string match. Never comparable with a published number.

Which text a rule reads: for sqa/aqa, ``official`` and ``mimo-eval`` read the row's ``raw`` (the model's
whole generated text, as the benchmarks' scripts do) when the row has it, else ``prediction``; ``lenient``
reads ``prediction``. asr and st read ``prediction`` under every scorer.

Which benchmark a row belongs to: ``meta.benchmark`` (``mmau``, ``mmar``, ``mmsu``; ``sicl prepare`` writes
it). Rows without it are scored with the MMAU / MMAR rule, which is the rule sicl's own prompts
(``Answer with the text of the correct option``) are written for.

Everything here is written from the published rules, not copied; the sources (read on 2026-11-30):

- MMAU: ``evaluation.py`` of github.com/Sakshi113/MMAU at commit 110127f (``string_match``);
- MMAR: ``code/evaluation.py`` of github.com/ddlBoJack/MMAR at commit 3bce090 (the same ``string_match``);
- MMSU: ``mmsu_evaluation.py`` of github.com/dingdongwang/MMSU_Bench at commit f0ef334;
- MiMo-Audio-Eval: ``slm_eval/evaluator/{mmau,mmar,mmsu,asr}_evaluator.py`` of
  github.com/XiaomiMiMo/MiMo-Audio-Eval at commit d64df78 (its requirements pin jiwer 3.1.0, zhon 2.1.1).

The rules and every branch are tabled in ``docs/metrics.md``. This module imports nothing heavy (jiwer is
imported inside the ASR aggregate), so the CLI can list the scorers cheaply.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sicl.data.lang import base_lang
from sicl.errors import SiclError

DEFAULT_SCORER = "official"
SCORER_NAMES = ("official", "mimo-eval", "lenient")
#: Values of ``meta.benchmark`` with a rule of their own; any other value (or none) gets the MMAU/MMAR rule.
BENCHMARKS = ("mmau", "mmar", "mmsu")


# ------------------------------------------------------------------------------------------ per item


@dataclass(frozen=True)
class ChoiceResult:
    """One sqa/aqa item under a rule: ``correct``; ``counted`` is False when the benchmark's script leaves the
    item out of the accuracy's denominator (MMSU's official script does so for an output it cannot parse);
    ``text`` is the text the rule read."""

    correct: bool
    counted: bool = True
    text: str = ""


def _words(text: str) -> set[str]:
    return set(re.findall(r"\b\w+\b", text.lower()))


def mmau_match(answer: str, prediction: str, choices: Sequence[str]) -> bool:
    """The MMAU / MMAR string match (MMAU ``evaluation.py`` ``string_match``; MMAR's is the same).

    Lower-cased ``\\b\\w+\\b`` token sets. Correct iff the prediction has at least one token, holds every token
    of the answer, and holds none of the wrong choices' tokens that are not also answer tokens; a choice with
    exactly the answer's token set is not counted as wrong."""
    said = _words(prediction)
    if not said:
        return False
    want = _words(answer)
    forbidden: set[str] = set()
    for choice in choices:
        tokens = _words(choice)
        if tokens != want:
            forbidden |= tokens - want
    return want <= said and not (said & forbidden)


def output_text(row: Mapping[str, Any]) -> str:
    """What a benchmark script reads for a choice item: ``raw`` (the whole generation) if the row has it,
    else ``prediction``."""
    raw = row.get("raw")
    return raw if isinstance(raw, str) else row["prediction"]


def benchmark_of(row: Mapping[str, Any]) -> str | None:
    """``meta.benchmark`` lower-cased, or None."""
    value = (row.get("meta") or {}).get("benchmark")
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


# MMSU: the letter rule (mmsu_evaluation.py). The output, stripped and with its newlines deleted, names the
# letter in its first character, or else (an output like "The answer is B.") in its second-to-last one.
MMSU_LETTERS = "ABCD"
_UNPARSED = "unparsed"
_EMPTY = "empty"


def mmsu_letter(text: str) -> str:
    """The letter MMSU's rule reads from an output: ``A``..``D``, ``"empty"`` (nothing, or the text ``None``)
    or ``"unparsed"`` (neither the first nor the second-to-last character is a capital A-D)."""
    s = text.strip().replace("\n", "")
    if not s or s == "None":
        return _EMPTY
    if s[0] in MMSU_LETTERS:
        return s[0]
    if len(s) > 1 and s[-2] in MMSU_LETTERS:
        return s[-2]
    return _UNPARSED


def _mmsu_result(text: str, row: Mapping[str, Any], *, drop_unparsed: bool) -> ChoiceResult:
    letter = mmsu_letter(text)
    if letter == _UNPARSED:
        return ChoiceResult(False, counted=not drop_unparsed, text=text)
    if letter == _EMPTY:
        # Both scripts keep the previous item's letter here (a variable that is not reset): an answer that
        # depends on row order. sicl counts the item, as wrong.
        return ChoiceResult(False, text=text)
    choices = row.get("choices") or []
    k = MMSU_LETTERS.index(letter)
    return ChoiceResult(k < len(choices) and choices[k] == row["target"], text=text)


def mmsu_official(row: Mapping[str, Any]) -> ChoiceResult:
    """MMSU's official rule: the letter rule on the output; the letter's choice must equal the target exactly.
    An output whose letter cannot be read is left out of the denominator (the script skips it before
    counting)."""
    return _mmsu_result(output_text(row), row, drop_unparsed=True)


def mmau_official(row: Mapping[str, Any]) -> ChoiceResult:
    """MMAU's / MMAR's official rule: :func:`mmau_match` on the whole output."""
    text = output_text(row)
    return ChoiceResult(mmau_match(row["target"], text, row.get("choices") or []), text=text)


# MiMo-Audio-Eval's answer extraction (mmau_evaluator.py / mmar_evaluator.py, identical in both).
_MIMO_MARKERS = (
    # a line "The correct answer is: X" / "correct choice is - X" ...
    re.compile(r"^[^\S\r\n]*(?:the\s+)?correct\s+(?:choice|answer)\s+is\s*[:\-]?\s*(.*)$", re.I | re.M),
    # a line "Answer: X" / "answer - X"
    re.compile(r"^[^\S\r\n]*answer\s*[:\-]\s*(.*)$", re.I | re.M),
)
_MIMO_BOLD = re.compile(r"\*\*(.+?)\*\*")
#: one layer each, in this order: *x* or **x**, `x`, a pair of quotes (either kind, not necessarily equal)
_MIMO_WRAPPERS = (re.compile(r"^\*{1,2}(.+?)\*{1,2}$"), re.compile(r"^`(.+?)`$"), re.compile(r"^['\"](.+?)['\"]$"))
_MIMO_TRIM = " \t\r\n.:;!?,"


def mimo_clean(s: str) -> str:
    """MiMo-Audio-Eval's cleaning of a candidate answer: its first line, escaped quotes unescaped, one layer of
    markdown emphasis, backticks and quotes removed, ``.:;!?,`` and blanks trimmed from both ends, runs of
    whitespace made one space."""
    s = (s or "").strip()
    if not s:
        return ""
    s = s.splitlines()[0].strip().replace('\\"', '"').replace("\\'", "'")
    for wrapper in _MIMO_WRAPPERS:
        s = wrapper.sub(r"\1", s)
    return re.sub(r"\s+", " ", s.strip(_MIMO_TRIM))


def _first_line(text: str) -> str:
    return next((c for c in map(mimo_clean, text.splitlines()) if c), "")


def mimo_extract(text: str) -> str:
    """MiMo-Audio-Eval's answer extraction. Candidates, in order: for every marker line (first all "correct
    answer/choice is" lines, then all "answer:" lines) the rest of that line, or, when it is empty, the first
    bold span after it, or else the first non-empty line after it; with no marker, every bold span; with none
    of those, the first non-empty line. The answer is the last candidate (cleaned by :func:`mimo_clean`), or
    ``""``."""
    found: list[str] = []
    for marker in _MIMO_MARKERS:
        for m in marker.finditer(text):
            rest_of_line = mimo_clean(m.group(1))
            if rest_of_line:
                found.append(rest_of_line)
                continue
            after = text[m.end():]
            bold = _MIMO_BOLD.search(after)
            if bold and mimo_clean(bold.group(1)):
                found.append(mimo_clean(bold.group(1)))
                continue
            line = _first_line(after)
            if line:
                found.append(line)
    if not found:
        found = [b for b in (mimo_clean(m.group(1)) for m in _MIMO_BOLD.finditer(text)) if b]
    if not found:
        line = _first_line(text)
        found = [line] if line else []
    return found[-1] if found else ""


def after_thinking(text: str) -> str:
    """What follows the first ``</think>`` (MiMo-Audio-Eval's thinking mode), left-stripped; an output without
    ``</think>`` is only left-stripped (its non-thinking mode)."""
    return (text.split("</think>", 1)[1] if "</think>" in text else text).lstrip()


def mimo_mmau(row: Mapping[str, Any]) -> ChoiceResult:
    """MiMo-Audio-Eval's MMAU / MMAR rule: :func:`after_thinking`, :func:`mimo_extract`, then
    :func:`mmau_match`."""
    text = mimo_extract(after_thinking(output_text(row)))
    return ChoiceResult(mmau_match(row["target"], text, row.get("choices") or []), text=text)


def mimo_mmsu(row: Mapping[str, Any]) -> ChoiceResult:
    """MiMo-Audio-Eval's MMSU rule: :func:`after_thinking` (when the output has ``</think>``), then MMSU's
    letter rule; an output whose letter cannot be read counts as wrong (every item is in the denominator)."""
    text = output_text(row)
    if "</think>" in text:
        text = text.split("</think>", 1)[1]
    return _mmsu_result(text, row, drop_unparsed=False)


def lenient(row: Mapping[str, Any]) -> ChoiceResult:
    """sicl's development rule on ``prediction``: boilerplate extraction and option-letter mapping
    (:func:`sicl.eval.metrics.map_option_letter`), then :func:`mmau_match`. Without choices (open questions)
    every answer token must appear."""
    from sicl.eval.metrics import map_option_letter

    choices = row.get("choices") or []
    text = map_option_letter(row["prediction"], choices)
    return ChoiceResult(mmau_match(row["target"], text, choices), text=text)


# ----------------------------------------------------------------------------------- MiMo-Audio-Eval ASR

#: ``zhon.hanzi.punctuation`` (zhon 2.0.2 and 2.1.1 agree), written out by code point: fullwidth ASCII
#: punctuation, halfwidth CJK punctuation, CJK symbols and brackets, general punctuation, Latin ones.
ZHON_PUNCTUATION = "".join(map(chr, [
    *range(0xFF02, 0xFF0E), 0xFF0F, 0xFF1A, 0xFF1B, 0xFF1C, 0xFF1D, 0xFF1E, 0xFF20, 0xFF3B, 0xFF3C, 0xFF3D,
    0xFF3E, 0xFF3F, 0xFF40, 0xFF5B, 0xFF5C, 0xFF5D, 0xFF5E, 0xFF5F, 0xFF60, 0xFF62, 0xFF63, 0xFF64,
    0x3000, 0x3001, 0x3003, *range(0x3008, 0x3012), *range(0x3014, 0x3020), 0x3030, 0x303E, 0x303F,
    0x2013, 0x2014, 0x2018, 0x2019, 0x201B, 0x201C, 0x201D, 0x201E, 0x201F, 0x2026, 0x2027,
    0xFE4F, 0xFE51, 0xFE54, 0x00B7, 0xFF0E, 0xFF01, 0xFF1F, 0xFF61, 0x3002,
]))
#: What MiMo-Audio-Eval deletes before WER: ASCII and Chinese punctuation, except the ASCII apostrophe.
MIMO_DELETED = frozenset(string.punctuation + ZHON_PUNCTUATION) - {"'"}
MIMO_ASR_LANGS = ("en", "zh")


def mimo_asr_text(text: str, lang: str | None, *, hypothesis: bool) -> str:
    """A transcript as MiMo-Audio-Eval's ASR evaluator scores it: a hypothesis is cut at its first ``(`` (done
    on the model output before scoring); punctuation in :data:`MIMO_DELETED` deleted (not replaced by a
    space, so ``well,done`` is one word); English lower-cased; Chinese split into single characters
    (whitespace dropped). Words are then whatever jiwer's default transform splits on spaces."""
    base = base_lang(lang)
    if base not in MIMO_ASR_LANGS:
        raise SiclError(f"scorer mimo-eval scores asr in {' and '.join(MIMO_ASR_LANGS)} only "
                        f"(MiMo-Audio-Eval's ASR rule), got lang {lang!r}; use --scorer official")
    if hypothesis:
        text = text.split("(")[0]
    text = "".join(c for c in text if c not in MIMO_DELETED)
    if base == "zh":
        return " ".join(c for c in text if not c.isspace())
    return text.lower()


def mimo_asr_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """MiMo-Audio-Eval's ``avg_wer``: the plain mean over utterances of the utterance WER (errors / reference
    words, not capped), with per-utterance jiwer alignments; totals of the edits as it reports them. A
    reference with no word after :func:`mimo_asr_text` (the script would stop with jiwer's error) is left out
    and counted in ``skipped_empty_reference``."""
    from sicl.eval.metrics import utterance_word_errors

    refs, hyps = [], []
    skipped = empty = 0
    for row in rows:
        ref = mimo_asr_text(row["target"], row.get("lang"), hypothesis=False)
        hyp = mimo_asr_text(row["prediction"], row.get("lang"), hypothesis=True)
        if not hyp.split():
            empty += 1
        if not ref.split():
            skipped += 1
            continue
        refs.append(ref)
        hyps.append(hyp)
    per_utt = utterance_word_errors(refs, hyps)
    s, d, i, n_ref = (sum(col) for col in zip(*per_utt, strict=True)) if per_utt else (0, 0, 0, 0)
    mean = sum((us + ud + ui) / un for us, ud, ui, un in per_utt) / len(per_utt) if per_utt else None
    return {"n": len(rows), "wer": None if mean is None else round(mean, 6), "primary": "wer",
            "ref_words": n_ref, "substitutions": s, "deletions": d, "insertions": i,
            "skipped_empty_reference": skipped, "empty_predictions": empty}


# ------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Rule:
    """A per-item rule: its name (written into metrics.json), what it does and where it comes from."""

    name: str
    fn: Callable[[Mapping[str, Any]], ChoiceResult] | None
    source: str


@dataclass(frozen=True)
class Scorer:
    """A named scorer: a choice rule per benchmark (``"default"`` for rows of no named benchmark) and the
    asr / st rules (``"sicl"``: :mod:`sicl.eval.metrics`' Whisper-normalised WER and sacreBLEU; ``"mimo"``:
    :func:`mimo_asr_metrics`)."""

    name: str
    summary: str
    choice: Mapping[str, Rule]
    asr: Rule
    st: Rule

    def choice_rule(self, row: Mapping[str, Any]) -> Rule:
        return self.choice.get(benchmark_of(row) or "default", self.choice["default"])


_MMAU_SRC = "MMAU evaluation.py @110127f; MMAR code/evaluation.py @3bce090"
_MIMO_SRC = "MiMo-Audio-Eval slm_eval/evaluator/{}_evaluator.py @d64df78"
_WHISPER_WER = Rule("whisper-corpus-wer", None, "Whisper EnglishTextNormalizer/BasicTextNormalizer + jiwer; "
                    "capped utterance mean as in the SICL-AT paper")
_SACREBLEU = Rule("sacrebleu", None, "sacreBLEU corpus_bleu, 13a / zh / ja-mecab|char / char")

_official_string = Rule("mmau-string-match", mmau_official, _MMAU_SRC)
_mimo_string = Rule("mimo-extract+mmau-string-match", mimo_mmau, _MIMO_SRC.format("mmau|mmar"))
SCORERS: dict[str, Scorer] = {
    "official": Scorer(
        "official", "each benchmark's own script: MMAU/MMAR string match on the whole output, MMSU letter "
        "rule, Whisper-normalised WER, sacreBLEU",
        {"default": _official_string, "mmau": _official_string, "mmar": _official_string,
         "mmsu": Rule("mmsu-letter", mmsu_official, "MMSU_Bench mmsu_evaluation.py @f0ef334")},
        _WHISPER_WER, _SACREBLEU),
    "mimo-eval": Scorer(
        "mimo-eval", "MiMo-Audio-Eval's evaluators: answer extraction + string match, MMSU letter rule (all "
        "items counted), mean utterance WER after punctuation removal",
        {"default": _mimo_string, "mmau": _mimo_string, "mmar": _mimo_string,
         "mmsu": Rule("mimo-mmsu-letter", mimo_mmsu, _MIMO_SRC.format("mmsu"))},
        Rule("mimo-mean-utterance-wer", None, _MIMO_SRC.format("asr")), _SACREBLEU),
    "lenient": Scorer(
        "lenient", "sicl's development rule: answer extraction and option-letter mapping, then the string "
        "match (not comparable with published numbers)",
        {"default": Rule("lenient-letter-map+mmau-string-match", lenient, "sicl (no benchmark)")},
        _WHISPER_WER, _SACREBLEU),
}


def get_scorer(name: str | None) -> Scorer:
    """The scorer called ``name`` (None: the default); an unknown name is a :class:`SiclError`."""
    key = DEFAULT_SCORER if name is None else name
    if key not in SCORERS:
        raise SiclError(f"unknown scorer {name!r} (expected one of {', '.join(SCORER_NAMES)})")
    return SCORERS[key]


def check_scorable(scorer: str | None, rows: Sequence[Any]) -> None:
    """Fail before any generation when ``scorer`` cannot score these manifest rows (Example objects or
    dicts): an unknown scorer, or mimo-eval asr rows in a language other than en / zh."""
    sc = get_scorer(scorer)
    if sc.asr.name != "mimo-mean-utterance-wer":
        return
    for row in rows:
        get = row.get if isinstance(row, Mapping) else lambda k, r=row: getattr(r, k, None)
        if get("task") == "asr" and base_lang(get("lang")) not in MIMO_ASR_LANGS:
            raise SiclError(f"id {get('id')!r}: scorer mimo-eval scores asr in {' and '.join(MIMO_ASR_LANGS)} "
                            f"only (MiMo-Audio-Eval's ASR rule), got lang {get('lang')!r}; use --scorer official")
