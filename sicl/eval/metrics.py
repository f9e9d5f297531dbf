"""Scoring with the community's conventions: WER/CER (asr), sacreBLEU (st), MMAU string match (sqa/aqa).

:func:`score_rows` turns prediction rows (manifest fields plus ``prediction``) into metrics keyed by task;
:func:`score_file` does the same for a ``predictions.jsonl``. The rules, edge cases and examples are in
``docs/metrics.md``; in short:

- **asr**: text is normalised with Whisper's ``EnglishTextNormalizer`` (``lang`` missing or ``en*``) or
  ``BasicTextNormalizer`` (every other language). ``wer`` is corpus WER from jiwer (all edits / all reference
  words); ``wer_utterance_capped`` is the paper's mean over utterances of ``min(1, utterance WER)``; ``cer`` is
  corpus CER over the normalised text (spaces removed first for zh/ja/th/yue/ko/my/km/lo, where ``cer`` is the headline:
  ``primary`` says which one is). Rows whose reference is empty after normalisation are left out of WER/CER and
  counted in ``skipped_empty_reference``; an empty prediction is all deletions. ``looping_outputs`` (asr and
  st) counts the outputs with a degenerate loop (:func:`looping_outputs`), whatever the scorer.
- **st**: ``sacrebleu.corpus_bleu`` on the raw (detokenised, case-sensitive) text, tokenizer ``13a``; ``zh``
  for zh/yue targets; ``ja-mecab`` for ja when its extra dependencies are installed, otherwise ``char``; ``char``
  for th. The language is ``target_lang``.
- **sqa/aqa**: accuracy under the scorer's rule for the row's benchmark (:mod:`sicl.eval.scorers`): by default
  (``official``) the official MMAU/MMAR string match on the model's whole output, or MMSU's letter rule for
  ``meta.benchmark == "mmsu"``; ``mimo-eval`` extracts the answer MiMo-Audio-Eval's way first; ``lenient``
  (development only) maps a bare option letter to its choice first.

``score_rows(rows, scorer=NAME)`` picks the scorer (``official``, ``mimo-eval``, ``lenient``); every task's
metrics name it (``"scorer"``) and the rule used (``"rule"``). Under ``mimo-eval``, ``asr.wer`` is
MiMo-Audio-Eval's mean utterance WER.

Fractions (WER, CER, accuracy) are in [0, 1] (WER and CER can exceed 1 with insertions); BLEU is sacreBLEU's
0-100 scale.
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jiwer
import sacrebleu
from whisper_normalizer.basic import BasicTextNormalizer
from whisper_normalizer.english import EnglishTextNormalizer

from sicl.data.lang import base_lang
from sicl.data.manifest import TASKS, iter_lines
from sicl.episodes.prompts import extract_answer
from sicl.errors import ManifestError, SiclError
from sicl.eval.scorers import ChoiceResult, Scorer, get_scorer, mimo_asr_metrics, mmau_match

#: Languages written without spaces between words: CER is computed with spaces removed and is the headline.
NO_SPACE_LANGS = frozenset({"zh", "ja", "th", "yue", "ko", "my", "km", "lo"})  # my/km/lo: FLEURS's Burmese, Khmer, Lao
CHOICE_TASKS = ("sqa", "aqa")
#: ``meta`` fields that get an accuracy breakdown for choice tasks: field -> output key.
BREAKDOWNS = {"category": "by_category", "difficulty": "by_difficulty", "task": "by_meta_task"}
UNKNOWN = "unknown"

_english = EnglishTextNormalizer()
_basic = BasicTextNormalizer()


# --------------------------------------------------------------------------------------------- helpers


def is_english(lang: str | None) -> bool:
    return not lang or not lang.strip() or lang.strip().lower().startswith("en") or base_lang(lang) == "en"


#: Invisible format characters that neither normaliser touches (their Unicode category is Cf, not a space,
#: mark, symbol or punctuation): a zero-width space separates words (Thai, Khmer and Burmese text uses it), a
#: soft hyphen, word joiner or stray byte order mark is nothing at all.
_INVISIBLE = str.maketrans({"\u200b": " ", "\u00ad": None, "\u2060": None, "\ufeff": None})


def normalize_text(text: str, lang: str | None = None) -> str:
    """Whisper normalisation for WER: the English normaliser for English, the basic one otherwise; runs of
    whitespace (any Unicode space: NBSP, ideographic space, ...) collapsed to one space. Zero-width spaces
    count as spaces and soft hyphens, word joiners and byte order marks are dropped first."""
    text = text.translate(_INVISIBLE)
    norm = _english(text) if is_english(lang) else _basic(text)
    return " ".join(norm.split())


def _cer_text(norm: str, lang: str | None) -> str:
    return "".join(norm.split()) if base_lang(lang) in NO_SPACE_LANGS else norm


def _r(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits)


# ------------------------------------------------------------------------------------------------- WER


def utterance_word_errors(refs: Sequence[str], hyps: Sequence[str]) -> list[tuple[int, int, int, int]]:
    """Per utterance ``(substitutions, deletions, insertions, reference words)`` from one jiwer alignment of
    the whole set. jiwer reports corpus totals only; the per-utterance split (needed for the capped mean) is
    read off its alignment chunks. ``refs`` must be non-empty strings (already normalised)."""
    if not refs:
        return []
    out = jiwer.process_words(list(refs), list(hyps))
    result = []
    for ref_words, chunks in zip(out.references, out.alignments, strict=True):
        s = d = i = 0
        for c in chunks:
            if c.type == "substitute":
                s += c.ref_end_idx - c.ref_start_idx
            elif c.type == "delete":
                d += c.ref_end_idx - c.ref_start_idx
            elif c.type == "insert":
                i += c.hyp_end_idx - c.hyp_start_idx
        result.append((s, d, i, len(ref_words)))
    return result


def _asr_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    refs, hyps, cer_refs, cer_hyps = [], [], [], []
    skipped = empty = 0
    langs = set()
    for row in rows:
        lang = row.get("lang")
        langs.add(base_lang(lang))
        ref = normalize_text(row["target"], lang)
        hyp = normalize_text(row["prediction"], lang)
        if not hyp:
            empty += 1
        if not ref:
            skipped += 1
            continue
        refs.append(ref)
        hyps.append(hyp)
        cer_refs.append(_cer_text(ref, lang))
        cer_hyps.append(_cer_text(hyp, lang))
    per_utt = utterance_word_errors(refs, hyps)
    s, d, i, n_ref = (sum(col) for col in zip(*per_utt, strict=True)) if per_utt else (0, 0, 0, 0)
    wer = (s + d + i) / n_ref if n_ref else None
    # The paper's convention, not in jiwer: mean over utterances of the utterance WER capped at 1.
    capped = sum(min(1.0, (us + ud + ui) / un) for us, ud, ui, un in per_utt) / len(per_utt) if per_utt else None
    cer = jiwer.process_characters(cer_refs, cer_hyps).cer if cer_refs else None
    no_space = bool(langs) and langs <= NO_SPACE_LANGS
    return {
        "n": len(rows),
        "wer": _r(wer),
        "wer_utterance_capped": _r(capped),
        "cer": _r(cer),
        "primary": "cer" if no_space else "wer",
        "ref_words": n_ref,
        "substitutions": s,
        "deletions": d,
        "insertions": i,
        "skipped_empty_reference": skipped,
        "empty_predictions": empty,
    }


# ------------------------------------------------------------------------------------------------ BLEU


@functools.cache
def ja_mecab_available() -> bool:
    """sacreBLEU's ``ja-mecab`` needs ``sacrebleu[ja]`` (MeCab + ipadic); without them we fall back to ``char``."""
    try:
        sacrebleu.BLEU(tokenize="ja-mecab")
    except Exception:  # noqa: BLE001 - sacrebleu raises RuntimeError/ImportError variously
        return False
    return True


def bleu_tokenizer(target_lang: str | None) -> str:
    """The sacreBLEU tokenizer for a target language: zh for zh/yue, ja-mecab (or char) for ja, char for th,
    13a otherwise."""
    base = base_lang(target_lang) if target_lang else ""
    if base in ("zh", "yue"):
        return "zh"
    if base == "ja":
        return "ja-mecab" if ja_mecab_available() else "char"
    if base == "th":
        return "char"
    return "13a"


@functools.cache
def _bleu(tokenize: str) -> sacrebleu.BLEU:
    return sacrebleu.BLEU(tokenize=tokenize)


def _pooled_bleu(hyps: Sequence[str], refs: Sequence[str], toks: Sequence[str]) -> float:
    """Corpus BLEU over segments that need different tokenizers: each segment is tokenised with its own
    language's tokenizer (exactly as sacreBLEU does internally) and the n-gram statistics are pooled. With one
    tokenizer this equals ``sacrebleu.corpus_bleu(hyps, [refs], tokenize=tok)``."""
    if len(set(toks)) == 1:
        return sacrebleu.corpus_bleu(list(hyps), [list(refs)], tokenize=toks[0]).score
    tok_h = [_bleu(t)._preprocess_segment(h) for h, t in zip(hyps, toks, strict=True)]
    tok_r = [_bleu(t)._preprocess_segment(r) for r, t in zip(refs, toks, strict=True)]
    return sacrebleu.BLEU(tokenize="none").corpus_score(tok_h, [tok_r]).score


def _st_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    hyps = [row["prediction"] for row in rows]
    refs = [row["target"] for row in rows]
    toks = [bleu_tokenizer(row.get("target_lang")) for row in rows]
    out: dict[str, Any] = {"n": len(rows), "bleu": _r(_pooled_bleu(hyps, refs, toks), 4)}
    by_tgt: dict[str, list[int]] = defaultdict(list)
    for k, row in enumerate(rows):
        by_tgt[row.get("target_lang") or UNKNOWN].append(k)
    per_tgt = {}
    for lang, idx in sorted(by_tgt.items()):
        tok = toks[idx[0]]
        bleu = sacrebleu.BLEU(tokenize=tok)  # what sacrebleu.corpus_bleu does, keeping the object for its signature
        res = bleu.corpus_score([hyps[k] for k in idx], [[refs[k] for k in idx]])
        per_tgt[lang] = {"n": len(idx), "bleu": _r(res.score, 4), "tokenize": tok,
                         "signature": str(bleu.get_signature())}
    if len(per_tgt) == 1:
        (only,) = per_tgt.values()
        out["tokenize"], out["signature"] = only["tokenize"], only["signature"]
    else:
        out["tokenize"] = "per target language"
        out["by_target_lang"] = per_tgt
    out["empty_predictions"] = sum(1 for h in hyps if not h.strip())
    return out


# -------------------------------------------------------------------------------------------- accuracy


def _mmau_tokens(text: str) -> set[str]:
    return set(re.findall(r"\b\w+\b", text.lower()))


_OPTION_RE = re.compile(r"^\s*(?:(?:option|choice)\s*)?\(?([A-Za-z])\)?\s*[.:)]?\s*$", re.IGNORECASE)


def map_option_letter(prediction: str, choices: Sequence[str] | None) -> str:
    """A bare option letter (``B``, ``(B)``, ``B.``, ``Answer: B``, ``B. text``) -> that option's text (MMSU
    style); anything else is returned as is. Uses the same extraction as generation time
    (:func:`sicl.episodes.prompts.extract_answer`)."""
    if not choices:
        return prediction
    out = extract_answer(prediction, "plain", list(choices))
    m = _OPTION_RE.match(out)  # forms extract_answer leaves alone: "Option B", "choice (b)", "B:"
    if m and m.group(1).upper() in string.ascii_uppercase[: len(choices)] and out not in choices:
        return choices[string.ascii_uppercase.index(m.group(1).upper())]
    return out


def choice_correct(prediction: str, target: str, choices: Sequence[str] | None) -> bool:
    """The ``lenient`` scorer's rule: letter mapping, then :func:`mmau_match`. Without choices (open QA) every
    answer token must appear."""
    return mmau_match(target, map_option_letter(prediction, choices), list(choices or []))


def _acc(results: Sequence[ChoiceResult]) -> dict[str, Any]:
    counted = [r for r in results if r.counted]
    return {"n": len(results),
            "accuracy": _r(sum(r.correct for r in counted) / len(counted)) if counted else None}


def _rule_names(names: Iterable[str]) -> str:
    return " + ".join(sorted(set(names)))


def _choice_metrics(rows: Sequence[Mapping[str, Any]], scorer: Scorer) -> dict[str, Any]:
    rules = [scorer.choice_rule(r) for r in rows]
    results = [rule.fn(r) for rule, r in zip(rules, rows, strict=True)]
    counted = [x for x in results if x.counted]
    correct = sum(x.correct for x in counted)
    out: dict[str, Any] = {"n": len(rows), "accuracy": _r(correct / len(counted)) if counted else None,
                           "correct": correct,
                           "empty_predictions": sum(1 for x in results if not _mmau_tokens(x.text))}
    if len(counted) < len(results):
        out["excluded"] = len(results) - len(counted)
    for field, key in BREAKDOWNS.items():
        values = [(r.get("meta") or {}).get(field) for r in rows]
        if any(v is not None for v in values):
            groups: dict[str, list[ChoiceResult]] = defaultdict(list)
            for v, x in zip(values, results, strict=True):
                groups[UNKNOWN if v is None else str(v)].append(x)
            out[key] = {g: _acc(xs) for g, xs in sorted(groups.items())}
    out["scorer"] = scorer.name
    out["rule"] = _rule_names(rule.name for rule in rules)
    return out


# ----------------------------------------------------------------------------------------------- rows


def _row_problem(row: Any) -> str | None:
    """Why a prediction row cannot be scored, or None."""
    if not isinstance(row, Mapping):
        from sicl.data.manifest import json_type_name

        return f"row is a JSON {json_type_name(row)}, expected an object"
    task = row.get("task")
    if task not in TASKS:
        return f"field 'task' must be one of {', '.join(TASKS)}, got {task!r}"
    for name in ("target", "prediction"):
        if name not in row or row[name] is None:
            return f"missing field '{name}' (scoring needs the gold target and the prediction)"
        if not isinstance(row[name], str):
            return f"field '{name}' must be a string, got {type(row[name]).__name__}"
    for name in ("lang", "target_lang"):
        if row.get(name) is not None and not isinstance(row[name], str):
            return f"field '{name}' must be a string, got {type(row[name]).__name__}"
    if row.get("raw") is not None and not isinstance(row["raw"], str):
        return f"field 'raw' must be a string, got {type(row['raw']).__name__}"
    choices = row.get("choices")
    if choices is not None:
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            return "field 'choices' must be a list of strings"
        if task not in CHOICE_TASKS:
            return f"a {task} row has 'choices'; only {'/'.join(CHOICE_TASKS)} rows are scored by accuracy"
    if row.get("meta") is not None and not isinstance(row["meta"], Mapping):
        return "field 'meta' must be an object"
    return None


def _task_metrics(task: str, rows: Sequence[Mapping[str, Any]], scorer: Scorer) -> dict[str, Any]:
    if task in CHOICE_TASKS:
        return _choice_metrics(rows, scorer)
    rule = scorer.asr if task == "asr" else scorer.st
    if task == "asr":
        out = mimo_asr_metrics(rows) if rule.name == "mimo-mean-utterance-wer" else _asr_metrics(rows)
    else:
        out = _st_metrics(rows)
    return {**out, "looping_outputs": looping_outputs(rows), "scorer": scorer.name, "rule": rule.name}


def looping_outputs(rows: Sequence[Mapping[str, Any]]) -> int:
    """How many outputs loop: a span of up to 8 words said 3 or more times in a row (the rule of
    ``--loop-trim 3``, :func:`sicl.episodes.prompts.trim_loops`), counted on the raw output (``raw`` when a run
    trimmed its predictions). One loop runs to the token budget and can add ~100 insertions, so on a
    60-query set the corpus WER of two methods can differ by the count of their loops alone."""
    from sicl.episodes.prompts import trim_loops

    n = 0
    for row in rows:
        text = row.get("raw") or row.get("prediction") or ""
        n += trim_loops(text, 3) != text
    return n


def _headline(task: str, m: Mapping[str, Any]) -> dict[str, Any]:
    keep = {"asr": ("n", "wer", "wer_utterance_capped", "cer", "primary", "skipped_empty_reference",
                    "empty_predictions", "looping_outputs"),
            "st": ("n", "bleu", "tokenize", "by_target_lang", "empty_predictions", "looping_outputs")}.get(
        task, ("n", "accuracy", "empty_predictions", "excluded"))
    return {k: m[k] for k in keep if k in m}


def score_rows(rows: Iterable[Mapping[str, Any]], scorer: str | None = None) -> dict[str, dict[str, Any]]:
    """Prediction rows (manifest fields: id, task, target, lang, choices, meta, ... plus ``prediction`` and
    optionally ``raw``) -> metrics keyed by task (only tasks present), under the named scorer (default
    ``official``, see :mod:`sicl.eval.scorers`). A row that cannot be scored or an unknown scorer raises
    :class:`SiclError`."""
    sc = get_scorer(scorer)
    by_task: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for k, row in enumerate(rows):
        problem = _row_problem(row)
        if problem:
            rid = row.get("id") if isinstance(row, Mapping) else None
            raise SiclError(f"row {k + 1}{f' (id {rid!r})' if rid is not None else ''}: {problem}")
        by_task[row["task"]].append(row)
    result: dict[str, dict[str, Any]] = {}
    for task in TASKS:
        rows_t = by_task.get(task)
        if not rows_t:
            continue
        metrics = _task_metrics(task, rows_t, sc)
        groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for r in rows_t:
            groups[r.get("lang") or "en"].append(r)
        if len(groups) > 1:
            metrics["by_lang"] = {lang: _headline(task, _task_metrics(task, g, sc))
                                  for lang, g in sorted(groups.items())}
        result[task] = metrics
    return result


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a predictions.jsonl; a bad line or a repeated id raises ``ManifestError("FILE:LINE: ...")``."""
    rows: list[dict[str, Any]] = []
    seen: dict[Any, int] = {}
    for line_no, obj, err in iter_lines(path):
        where = f"{path}:{line_no}"
        if err:
            raise ManifestError(f"{where}: {err}")
        problem = _row_problem(obj)
        if problem is None and not isinstance(obj.get("id"), str | int):
            problem = "missing field 'id'"
        if problem:
            raise ManifestError(f"{where}: {problem}")
        if obj["id"] in seen:
            raise ManifestError(f"{where}: id {obj['id']!r} already on line {seen[obj['id']]} "
                                "(each query must be predicted once)")
        seen[obj["id"]] = line_no
        rows.append(obj)
    return rows


def score_file(path: str | Path, scorer: str | None = None) -> dict[str, dict[str, Any]]:
    """:func:`score_rows` of a predictions.jsonl (one JSON object per line) under the named scorer."""
    return score_rows(read_predictions(path), scorer)


def dumps(metrics: Mapping[str, Any]) -> str:
    """The metrics as the JSON ``sicl score`` prints and ``metrics.json`` holds."""
    return json.dumps(metrics, indent=2, ensure_ascii=False)
