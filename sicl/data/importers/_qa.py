"""Shared reader for MMAU / MMAR-style audio QA files: a JSON list (or JSON Lines) of objects with a
question, a ``choices`` list and an ``answer`` text, audio paths relative to the JSON's folder."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from sicl.data.importers._common import (
    Scan,
    distinct_choices,
    field_text,
    pick_meta,
    read_json_records,
    require_keys,
    resolve_answer,
    resolve_audio,
    single_file,
    text_fields,
)
from sicl.data.manifest import Example
from sicl.errors import SiclError

#: ISO 639 code for "multiple languages": the ``lang`` of a row whose language field lists several (``zh|en``).
MULTI_LANG = "mul"


def scan_qa(src: Path, *, audio_key: str, meta_keys: Sequence[str], patterns: Sequence[str],
            what: str, benchmark: str, lang_key: str | None = None) -> Scan:
    """``benchmark`` goes into every row's ``meta.benchmark``: the scorers pick the benchmark's rule by it.
    ``lang_key``: a field whose value (e.g. ``"zh"``), when present, is the row's ``lang``."""
    path = src if src.is_file() else single_file(src, patterns, what)
    out = Scan(inputs=[path])
    required = ("id", audio_key, "question", "choices", "answer")
    text_keys = ("id", "question", "answer", audio_key, *((lang_key,) if lang_key else ()))
    for where, obj in read_json_records(path):
        if isinstance(obj, dict) and "answer" not in obj and all(k in obj for k in required if k != "answer"):
            raise SiclError(f"{where}: no 'answer' field: this file's answers are not published (e.g. MMAU's "
                            "test split, scored on the benchmark's server); import a file with answers, such as "
                            "mmau-test-mini.json")
        row = require_keys(obj, required, where)
        fields = text_fields(row, text_keys, where, out)
        if fields is None:
            continue
        rid = fields["id"]
        choices = [field_text(c) for c in row["choices"]] if isinstance(row["choices"], list) else [None]
        if None in choices:
            out.bad_rows.append((where, f"id {rid!r}: 'choices' is not a list of strings"))
            continue
        question = fields["question"]
        if not question:
            out.bad_rows.append((where, f"id {rid!r}: 'question' is {_describe(row['question'])}"))
            continue
        choices = [c for c in choices if c]
        target = resolve_answer(fields["answer"], choices)  # a letter indexes the list as published
        if target is None:
            out.bad_rows.append((where, f"id {rid!r}: answer {fields['answer']!r} is none of the choices"))
            continue
        choices = distinct_choices(choices, out)
        rel = fields[audio_key]
        if not rel:
            out.bad_rows.append((where, f"id {rid!r}: empty '{audio_key}'"))
            continue
        lang = fields[lang_key] if lang_key else ""
        if len(re.split(r"\s*[|,/]\s*", lang)) > 1:  # MMAR's "zh|en": speech in several languages
            lang = MULTI_LANG
        out.add(Example(id=rid, audio=str(resolve_audio(path.parent, rel).resolve()), task="aqa",
                        target=target, question=question, choices=choices, **({"lang": lang} if lang else {}),
                        meta={**pick_meta(row, meta_keys), "benchmark": benchmark}), where)
    return out


def _describe(value: object) -> str:
    return "null" if value is None else "empty"
