"""Every prompt the project uses, in one place: instructions per task, the answer format, the TICL preset
and :func:`extract_answer`, which turns generated text back into an answer.

Pretraining (single examples) and episode rendering (demonstrations + query) both build their turns from
here, and scoring calls :func:`extract_answer` with the same preset, so train and test text never drift.

A *preset* decides the wording around the task: ``"plain"`` (the zero-shot chat format the tiny model is
pretrained on: the instruction, and the target text verbatim as the answer) or ``"ticl"`` (the TICL
paper's ASR wording: user ``Transcribe the audio:``, assistant ``The transcription is: "..."``).
"""

from __future__ import annotations

import re
import string
from typing import Any

PRESETS = ("plain", "ticl")

#: Language names for ST instructions. ``zx`` is the synthetic world's constructed language.
LANGUAGES: dict[str, str] = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "ja": "Japanese",
    "zh": "Chinese", "ca": "Catalan", "ar": "Arabic", "fa": "Persian", "et": "Estonian", "mn": "Mongolian",
    "ta": "Tamil", "lv": "Latvian", "sl": "Slovenian", "sv": "Swedish", "id": "Indonesian", "cy": "Welsh",
    "tr": "Turkish", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "zx": "Zexi",
}

#: More names for :func:`language_name` only (:data:`LANGUAGES` also seeds tiny-omni's tokenizer corpus, so it
#: stays as pretraining saw it).
MORE_LANGUAGES: dict[str, str] = {
    "ko": "Korean", "th": "Thai", "hi": "Hindi", "vi": "Vietnamese", "pl": "Polish", "uk": "Ukrainian",
    "cs": "Czech", "el": "Greek", "he": "Hebrew", "ro": "Romanian", "hu": "Hungarian", "fi": "Finnish",
    "da": "Danish", "no": "Norwegian", "nb": "Norwegian", "bg": "Bulgarian", "hr": "Croatian", "sk": "Slovak",
    "ms": "Malay", "bn": "Bengali", "ur": "Urdu", "sw": "Swahili", "yue": "Cantonese", "cmn": "Chinese",
    "eu": "Basque", "gl": "Galician", "ga": "Irish", "is": "Icelandic", "lt": "Lithuanian", "sr": "Serbian",
    "my": "Burmese", "km": "Khmer", "lo": "Lao", "tl": "Tagalog", "fil": "Filipino", "te": "Telugu",
    "mr": "Marathi", "gu": "Gujarati", "kn": "Kannada", "ml": "Malayalam", "pa": "Punjabi", "ne": "Nepali",
}

ASR_INSTRUCTION = "Transcribe the audio."
ST_INSTRUCTION = "Translate the audio into {language}."
CHOICE_INSTRUCTION = "Answer with the text of the correct option."
TICL_ASR_INSTRUCTION = "Transcribe the audio:"
TICL_ANSWER = 'The transcription is: "{answer}"'

# Boilerplate a model (ours after TICL-style training, or a real instruction-tuned one) may wrap an answer
# in. Removed at scoring time; the same function runs on training targets in tests.
_PREFIXES = [
    r"the (?:transcription|translation|answer|correct (?:answer|option)) is\s*[:：]?",
    r"(?:transcription|translation|answer)\s*[:：]",
    r"the audio says\s*[:：]?",
    r"the speaker says\s*[:：]?",
]
_PREFIX_RE = re.compile(r"^\s*(?:" + "|".join(_PREFIXES) + r")\s*", re.IGNORECASE)
_QUOTES = "\"'“”‘’«»「」"
_LETTER_RE = re.compile(r"^\(?([A-Z])[\).:]\s+(.*)$", re.DOTALL)


def language_name(code: str | None) -> str:
    """Human name for a language code: ``de``, ``de-AT``, ``pt_BR``, ``ZH`` (unknown codes are returned as
    given)."""
    if not code or not code.strip():
        return "English"
    if code in LANGUAGES:
        return LANGUAGES[code]
    key = code.strip().lower().replace("_", "-")
    for k in (key, key.split("-")[0]):
        if k in LANGUAGES or k in MORE_LANGUAGES:
            return LANGUAGES.get(k) or MORE_LANGUAGES[k]
    return code


def format_choices(choices: list[str]) -> str:
    """``A. first\\nB. second ...`` (letters in order)."""
    return "\n".join(f"{string.ascii_uppercase[i]}. {c}" for i, c in enumerate(choices))


def instruction(task: str, question: str | None = None, choices: list[str] | None = None,
                target_lang: str | None = None, preset: str = "plain") -> str:
    """The user text that goes after the audio for one example."""
    _check_preset(preset)
    if task == "asr":
        return TICL_ASR_INSTRUCTION if preset == "ticl" else ASR_INSTRUCTION
    if task == "st":
        return ST_INSTRUCTION.format(language=language_name(target_lang))
    if task in ("sqa", "aqa"):
        parts = [question or "What is in the audio?"]
        if choices:
            parts += [format_choices(choices), CHOICE_INSTRUCTION]
        return "\n".join(parts)
    raise ValueError(f"unknown task {task!r}")


def answer_text(target: str, task: str = "asr", preset: str = "plain") -> str:
    """The assistant text for a gold ``target`` (what the model is trained to produce); blanks around it (a
    transcript read with its line end, say) are not part of the answer."""
    _check_preset(preset)
    target = target.strip()
    if preset == "ticl" and task == "asr":
        return TICL_ANSWER.format(answer=target)
    return target


def example_instruction(ex: Any, preset: str = "plain") -> str:
    """:func:`instruction` for anything with ``task/question/choices/target_lang`` (Example, SynthItem)."""
    return instruction(ex.task, getattr(ex, "question", None), getattr(ex, "choices", None),
                       getattr(ex, "target_lang", None), preset)


def user_content(text: str, audio: Any = "audio") -> list[dict[str, Any]]:
    """Chat content for one turn: the audio first, then the instruction (Qwen2.5-Omni's usual order)."""
    return [{"type": "audio", "audio": audio}, {"type": "text", "text": text}]


def extract_answer(text: str, preset: str = "plain", choices: list[str] | None = None) -> str:
    """Strip chat boilerplate and quotes from generated ``text``.

    Removes an end-of-turn marker and anything after it, ``The transcription is:``-style prefixes (for
    every preset: zero-shot models add them on their own) and one layer of surrounding quotes. With
    ``choices``, a bare option letter (``B``, ``B.``, ``(B) text``) is mapped to that option's text."""
    _check_preset(preset)
    out = text.split("<|im_end|>")[0].split("<|endoftext|>")[0].strip()
    out = _PREFIX_RE.sub("", out, count=1).strip()
    out = _strip_quotes(out)
    if choices:
        out = _map_letter(out, choices)
    return out


def check_loop_trim(n: int) -> None:
    """``--loop-trim`` / ``loop_trim`` values: 0 (off) or a run length of at least 2, else ValueError."""
    if n < 0 or n == 1:
        raise ValueError(f"loop_trim must be 0 (off) or >= 2 repeats, got {n}")


def trim_loops(text: str, min_repeats: int = 3, max_span: int = 8) -> str:
    """Collapse a degenerate loop in generated text (``sicl eval --loop-trim``): a span of 1..``max_span`` words
    said ``min_repeats`` or more times in a row (``"so the so the so the so the"``) keeps its first copy. Words
    compare casefolded without punctuation. ``min_repeats`` 0 turns it off; text with no such run comes back
    unchanged. A loop that the token budget cut off mid-copy (``"... abtain abtain abtain abt"``) loses the
    cut-off part too.

    Why by hand: ``transformers``' ``no_repeat_ngram_size`` and ``repetition_penalty`` act on the whole
    sequence, prompt included, so they would forbid copying a word from a demonstration's transcript, the
    very thing in-context learning needs; this rule only reads the answer. A run of three is what speech
    never has: among the 8,300 reference texts of the demo world's training and pool splits a run of two
    occurs 3 times, a run of three never (docs/evaluation.md, "Loop trimming")."""
    if min_repeats == 0:
        return text
    check_loop_trim(min_repeats)
    words = text.split()
    keys = [re.sub(r"\W+", "", w.casefold()) or w for w in words]
    out: list[str] = []
    i, trimmed = 0, False
    while i < len(words):
        step = 1
        for n in range(1, min(max_span, len(words) - i) + 1):
            copies = 1
            while keys[i + copies * n:i + (copies + 1) * n] == keys[i:i + n]:
                copies += 1
            if copies >= min_repeats:
                step, trimmed = copies * n, True
                out.extend(words[i:i + n])
                rest = " ".join(keys[i + step:])
                if rest and " ".join(keys[i:i + n]).startswith(rest):  # the loop cut off by the token budget
                    step = len(words) - i
                break
        else:
            out.append(words[i])
        i += step
    return " ".join(out) if trimmed else text


def _strip_quotes(s: str) -> str:
    s = s.strip()
    if s.endswith(".") and len(s) > 2 and s[-2] in _QUOTES:
        s = s[:-1]  # `"text".` -> `"text"`
    if len(s) >= 2 and s[0] in _QUOTES and s[-1] in _QUOTES:
        s = s[1:-1].strip()
    return s


def _map_letter(s: str, choices: list[str]) -> str:
    if s in choices:
        return s
    bare = s.strip().rstrip(".").strip("()")
    if len(bare) == 1 and bare.upper() in string.ascii_uppercase[: len(choices)]:
        return choices[string.ascii_uppercase.index(bare.upper())]
    m = _LETTER_RE.match(s.strip())
    if m and m.group(1) in string.ascii_uppercase[: len(choices)]:
        rest = m.group(2).strip()
        return rest if rest in choices else choices[string.ascii_uppercase.index(m.group(1))]
    return s


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ValueError(f"unknown prompt preset {preset!r} (expected one of {', '.join(PRESETS)})")
