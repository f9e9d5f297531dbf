"""Language codes as manifests write them, reduced to the language: scoring (CER vs WER, BLEU tokenizer) and
retrieval (which pool items share a query's language) compare languages this one way."""

from __future__ import annotations

#: Other spellings of the languages whose scoring differs (ISO 639-2/3 codes, English names): FLEURS calls
#: Mandarin ``cmn``, some corpora write ``zho`` / ``jpn`` / ``tha`` or ``Chinese``.
LANG_ALIASES = {
    "cmn": "zh", "zho": "zh", "chi": "zh", "chinese": "zh", "mandarin": "zh", "jpn": "ja", "japanese": "ja",
    "tha": "th", "thai": "th", "kor": "ko", "korean": "ko", "cantonese": "yue", "mya": "my", "bur": "my",
    "burmese": "my", "khm": "km", "khmer": "km", "lao": "lo", "eng": "en", "english": "en",
}


def base_lang(lang: str | None) -> str:
    """The language part of a code, lower-case, aliases mapped: ``"zh-CN"`` / ``"zh_TW"`` / ``"cmn_hans_cn"`` ->
    ``"zh"``, ``"JA"`` -> ``"ja"``; missing or blank -> ``"en"`` (the manifest default)."""
    base = (lang or "en").strip().lower().replace("_", "-").split("-")[0] or "en"
    return LANG_ALIASES.get(base, base)
