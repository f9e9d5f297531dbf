"""Text of the synthetic world: template grammars, the constructed target language, tokenizer text.

Everything is lower-case with no punctuation: a target is exactly what was said.

* ``adult``: general English from ~40 templates over the lists in :mod:`lexicon` (4-12 words).
* ``science``: a child explaining science (MyST-like), by topic; its domain words never occur in adult text.
* ``reading``: read-aloud story sentences (RSR-like), by topic, with their own rare words (absent from
  adult text and from science).
* target language ``zx`` ("Zexi"), made up for speech translation: every adult word maps to a made-up word
  (syllables drawn with a fixed seed, collision-free), adjectives follow their noun, and verbs move to the
  end of their clause (clauses split at and/because/that/when). ``translate`` implements it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from sicl.data.synth import lexicon as L

TARGET_LANG = "zx"

_SLOTS: dict[str, list[str]] = {
    "name": L.NAMES, "animal": [a for a, _ in L.ANIMALS], "animals": [p for _, p in L.ANIMALS],
    "object": [o for o, _ in L.OBJECTS], "objects": [p for _, p in L.OBJECTS], "color": L.COLORS,
    "num": L.NUMBERS, "food": L.FOODS, "vehicle": L.VEHICLES, "place": L.PLACES, "adj": L.ADJECTIVES,
    "vt": L.VERBS_T, "vm": L.VERBS_MOVE, "vi": L.VERBS_I, "rel": L.RELATIVES, "prof": L.PROFESSIONS,
    "event": L.EVENTS, "time": L.TIMES, "adv": L.ADVERBS, "poss": ["his", "her", "their", "my", "our"],
    "vpres": "needs makes eats lifts keeps breaks helps likes wants sees finds takes".split(),
}
# Paired slots (animal/animals) share one index so a sentence names one kind of thing.
_PAIRED = {"animals": "animal", "objects": "object"}

# (template, SQA question or None, answer slot). Templates with a question double as SQA items.
ADULT_TEMPLATES: list[tuple[str, str | None, str | None]] = [
    ("there were {num} {animals} near the {place}", "how many {animals} were there", "num"),
    ("{name} bought {num} {objects} and some {food}", "how many {objects} did {name} buy", "num"),
    ("the {color} {vehicle} was parked outside the {place}", "what color was the {vehicle}", "color"),
    ("{name} {vm} to the {place} {time}", "where did {name} go", "place"),
    ("{name} saw a {adj} {animal} on the way to the {place}", "which animal did {name} see", "animal"),
    ("we ate {food} and {food2} at the {place} {time}", "which food was mentioned", "food"),
    ("the {prof} {vt} the {object} in the {place}", "who {vt} the {object}", "prof"),
    ("{name} {vt} the {adj} {object} {time}", "when did this happen", "time"),
    ("{name} and {name2} {vt} a {color} {object} at the {place}", "what color was the {object}", "color"),
    ("did you see the {color} {vehicle} near the {place}", "which vehicle was mentioned", "vehicle"),
    ("{name} rode the {color} {vehicle} to the {event}", "where was {name} going", "event"),
    ("my {rel} {vt} {num} {objects} for the {event}", "who {vt} the {objects}", "rel"),
    ("{name} told me that the {place} was {adj} {time}", "how was the {place} described", "adj"),
    ("{name} asked the {prof} about the {num} {animals}", "who did {name} ask", "prof"),
    ("once upon a time a {adj} {animal} lived near the {place}", "which animal lived near the {place}", "animal"),
    ("the {animal} {vi} {adv} in the {place}", "where was the {animal}", "place"),
    ("{name} {vm} to the {place} with {poss} {animal}", "which animal was mentioned", "animal"),
    ("i think the {object} is in the {color} {vehicle}", "where is the {object}", "vehicle"),
    ("please bring the {object} to the {place} {time}", None, None),
    ("{name} walked to the {place} and found a {adj} {object}", None, None),
    ("the {prof} {vpres} the {object} because it is {adj}", None, None),
    ("um i think {name} likes {food} because it is {adj}", None, None),
    ("we put the {object} next to the {object2} and it fell", None, None),
    ("when the {object} gets {adj} it makes the {animal} move", None, None),
    ("i saw that the {animal} {vi} {adv}", None, None),
    ("so the {prof} {vi} because of the {event}", None, None),
    ("there is a {object} inside the {color} {object2}", None, None),
    ("well maybe the {animal} is {adj} i guess", None, None),
    ("i know that my {rel} {vt} the {object} {time}", None, None),
    ("we learned that the {animal} {vi} in the {place}", None, None),
    ("the {object} was {color} and very {adj}", None, None),
    ("one day {name} found a {object} near the {place}", None, None),
    ("{name} looked at the {object} and smiled", None, None),
    ("{name} picked up the {object} and put it in a {object2}", None, None),
    ("{name} and the {animal} walked to the {place}", None, None),
    ("once upon a time there was a {adj} {animal}", None, None),
    ("the {adj} {animal} lived in a {adj2} {place}", None, None),
    ("the {event} at the {place} was really {adj}", None, None),
    ("{name} {vpres} more {food} than the {animal}", None, None),
    ("it turns into a {adj} {object} when it gets {adj2}", None, None),
    ("the {animal} lives in the {place} and eats {food}", None, None),
    ("my {rel} can break down the {object} really fast", None, None),
    ("the {object} goes up and down by the {place}", None, None),
    ("the {animal} grows bigger and needs less {food} to survive", None, None),
    ("my {rel} was {adj} and the {prof} was {adj2}", None, None),
    ("the {prof} has a {object} from the {place}", None, None),
    ("{name} {vi} {adv} {time}", None, None),
    ("the {adj} {animal} {vi} {adv}", None, None),
    ("my {rel} likes {food}", None, None),
    ("the {animal} sticks its head through the {object} and it is cool", None, None),
    ("the sun is out and the {object} works again", None, None),
    ("it changes from {color} to {color2} when it is {adj}", None, None),
    ("the {object} is harder than the {object2} and it becomes {adj}", None, None),
]
SQA_TEMPLATES = [t for t in ADULT_TEMPLATES if t[1]]

_SLOT_RE = re.compile(r"\{(\w+?)(\d?)\}")


@dataclass
class Sentence:
    """A generated sentence with the slot values it used (for questions about it)."""

    text: str
    slots: dict[str, str] = field(default_factory=dict)
    topic: str | None = None


def _fill(template: str, rng: np.random.Generator, slots: dict[str, str] | None = None) -> Sentence:
    slots = dict(slots or {})
    idx: dict[str, int] = {}
    used: dict[str, set[str]] = {}

    def pick(m: re.Match) -> str:
        base, n = m.group(1), m.group(2)
        key = base + n
        if key in slots:
            return slots[key]
        family = _PAIRED.get(base, base)
        if base in _PAIRED and family in idx and not n:
            value = _SLOTS[base][idx[family]]
        else:
            taken = used.setdefault(family, set())
            while True:  # distinct values for name/name2, food/food2, ...
                i = int(rng.integers(len(_SLOTS[base])))
                if _SLOTS[family][i] not in taken:
                    break
            taken.add(_SLOTS[family][i])
            if not n:
                idx[family] = i
            value = _SLOTS[base][i]
        slots[key] = value
        return value

    text = _SLOT_RE.sub(pick, template)
    return Sentence(" ".join(text.split()), slots)


def adult_sentence(rng: np.random.Generator) -> Sentence:
    template = ADULT_TEMPLATES[int(rng.integers(len(ADULT_TEMPLATES)))][0]
    return _fill(template, rng)


def sqa_item(rng: np.random.Generator, n_choices: int = 4) -> tuple[Sentence, str, list[str], str]:
    """An MMSU-like item: (spoken sentence, question, choices, answer); the answer is one of the choices
    and no distractor occurs in the sentence."""
    template, question, slot = SQA_TEMPLATES[int(rng.integers(len(SQA_TEMPLATES)))]
    assert question and slot
    sent = _fill(template, rng)
    q = _SLOT_RE.sub(lambda m: sent.slots[m.group(1) + m.group(2)], question)
    answer = sent.slots[slot]
    words = set(sent.text.split())
    pool = [v for v in dict.fromkeys(_SLOTS[slot]) if v != answer and not (set(v.split()) & words)]
    distract = [pool[i] for i in rng.choice(len(pool), n_choices - 1, replace=False)]
    choices = distract + [answer]
    choices = [choices[i] for i in rng.permutation(n_choices)]
    return sent, q, choices, answer


# ----------------------------------------------------------------------------------------------- children
_SCI_PREFIX = ["", "", "um", "so", "well", "i think", "um i think", "maybe", "i know that", "we learned that"]
_SCI_BODY = ["the {n1} {p}", "when the {n1} {p} it is really cool", "i saw that the {n1} {p}",
             "the {n1} {p} because of the {n2}", "we put the {n1} next to the {n2} and it {p}",
             "there is a {n1} inside the {n2}", "the {n1} {p} i guess", "so the {n1} {p} and the {n2} {p2}"]
_READ_BODY = ["{hero} the {creature} lived in a {adj} {place}", "one day {hero} found a {thing} near the {place}",
              "the {creature} looked at the {thing} and smiled", "{hero} and the {creature} walked to the {place}",
              "once upon a time there was a {adj} {creature}", "the {thing} was {color} and very {adj}",
              "{hero} picked up the {thing} and put it in a {object}", "the {creature} {vm} to the {place} {time}",
              "{hero} saw a {color} {thing} in the {place}", "the {adj} {creature} {vt} the {thing}"]
# World v2: longer sentences that carry the domain words among everyday ones (about a quarter to a third of the
# words are domain words instead of half or more), as children's science talk and read-aloud stories do. Their
# everyday words are all heard in tiny-omni v2's pretraining (tested); domain words come only from the topics.
_SCI_BODY_V2 = ["i think that the {n1} {p} because we saw it in the class", "my teacher told us that the {n1} {p}",
                "when we put the {n1} next to the {n2} it {p} and that was really cool",
                "so the {n1} {p} and then we wrote it down in our notebook",
                "we learned that the {n1} {p} when you watch it very carefully",
                "the {n1} {p} i think but i am not really certain about the {n2}",
                "first we looked at the {n1} and then we saw that it {p}"]
_READ_BODY_V2 = ["one day {hero} went to the {place} to search for a {thing} with a friend",
                 "{hero} and the little {creature} walked all the way to the {place} before dinner",
                 "the {creature} was very happy because it found a {thing} near the {place}",
                 "after a long day {hero} sat down next to the {creature} and told a story",
                 "then the {adj} {creature} picked up the {thing} and ran back to the {place}",
                 "{hero} looked at the {thing} for a long time and smiled at the {creature}"]
SCIENCE_TOPICS = sorted(L.SCIENCE)
READING_TOPICS = sorted(L.READING)


def _choice(rng: np.random.Generator, items: list[str], avoid: str | None = None) -> str:
    while True:
        v = items[int(rng.integers(len(items)))]
        if v != avoid or len(items) == 1:
            return v


def science_sentence(rng: np.random.Generator, topic: str | None = None, version: int = 1) -> Sentence:
    """A child explaining science; ``version`` 2 (world v2) mostly uses the longer carrier frames."""
    topic = topic or _choice(rng, SCIENCE_TOPICS)
    t = L.SCIENCE[topic]
    n1 = _choice(rng, t["nouns"])
    n2 = _choice(rng, t["nouns"], n1)
    preds = [p.replace("{n}", _choice(rng, t["nouns"], n1)) for p in t["preds"]]
    p = _choice(rng, preds)
    if version >= 2 and rng.random() < 0.7:
        body = _choice(rng, _SCI_BODY_V2).format(n1=n1, n2=n2, p=p)
        return Sentence(" ".join(body.split()), {}, topic)
    body = _choice(rng, _SCI_BODY).format(n1=n1, n2=n2, p=p, p2=_choice(rng, preds, p))
    return Sentence(" ".join(f"{_choice(rng, _SCI_PREFIX)} {body}".split()), {}, topic)


def reading_sentence(rng: np.random.Generator, topic: str | None = None, version: int = 1) -> Sentence:
    """A read-aloud story sentence; ``version`` 2 (world v2) mostly uses the longer carrier frames."""
    topic = topic or _choice(rng, READING_TOPICS)
    t = L.READING[topic]
    parts = {"hero": _choice(rng, t["heroes"]), "creature": _choice(rng, t["creatures"]),
             "thing": _choice(rng, t["things"]), "place": _choice(rng, t["places"])}
    tmpl = _choice(rng, _READ_BODY_V2) if version >= 2 and rng.random() < 0.7 else _choice(rng, _READ_BODY)
    common = _fill(re.sub(r"\{(hero|creature|thing|place)\}", "", tmpl), rng).slots
    return Sentence(" ".join(tmpl.format(**parts, **common).split()), {}, topic)


# ---------------------------------------------------------------------------------------------- vocab
def _template_words(templates: list[str]) -> set[str]:
    return {w for t in templates for w in _SLOT_RE.sub(" ", t).split()}


ADULT_VOCAB: frozenset[str] = frozenset(
    _template_words([t for t, _, _ in ADULT_TEMPLATES])
    | {w for values in _SLOTS.values() for v in values for w in v.split()})

# Words of questions and choices (seen by the tokenizer); domain words must avoid them too.
QUESTION_VOCAB: frozenset[str] = frozenset(_template_words([q for _, q, _ in SQA_TEMPLATES if q]))


#: MMAU-like questions about how something was said: category -> (question, choices, difficulty).
AQA_QUESTIONS: dict[str, tuple[str, list[str], str]] = {
    "age": ("is the speaker a child or an adult", ["a child", "an adult"], "easy"),
    "pitch": ("is the voice high or low", ["high", "low"], "easy"),
    "loudness": ("is the speech loud or quiet", ["loud", "quiet"], "easy"),
    "gender": ("does the voice sound male or female", ["male", "female"], "medium"),
    "rate": ("is the person speaking fast or slow", ["fast", "slow"], "medium"),
    "count": ("how many words were spoken", "two three four five six seven eight nine".split(), "hard"),
    "accent": ("which accent does the speaker have", ["american", "british", "scottish", "caribbean"], "hard"),
}
AQA_VOCAB: frozenset[str] = frozenset(w for q, c, _ in AQA_QUESTIONS.values() for w in (q + " " + " ".join(c)).split())


def _domain_words(texts: list[str]) -> frozenset[str]:
    return frozenset({w for t in texts for w in t.split()} - ADULT_VOCAB - QUESTION_VOCAB - AQA_VOCAB)


def _science_texts() -> list[str]:
    out = []
    for t in L.SCIENCE.values():
        out += t["nouns"] + [p.replace("{n}", "") for p in t["preds"]]
    return out + _SCI_PREFIX + [_SLOT_RE.sub(" ", b) for b in _SCI_BODY]


def _reading_texts() -> list[str]:
    return [w for t in L.READING.values() for v in t.values() for w in v] + \
        [_SLOT_RE.sub(" ", b) for b in _READ_BODY]


#: Domain vocabulary of each child domain: words of its text that adult speech and the tokenizer never see.
SCIENCE_WORDS: frozenset[str] = _domain_words(_science_texts())
READING_WORDS: frozenset[str] = _domain_words(_reading_texts()) - SCIENCE_WORDS
DOMAIN_WORDS: dict[str, frozenset[str]] = {"science": SCIENCE_WORDS, "reading": READING_WORDS}


# ------------------------------------------------------------------------------------ target language
_ONSETS = "b d f g k l m n p r s t v z sh ch".split()
_VOWELS = "a e i o u ai".split()
_CODAS = ["", "", "", "n", "r", "s", "k", "l"]
_LEXICON_SEED = 2601


def _build_zx_lexicon() -> dict[str, str]:
    rng = np.random.default_rng(_LEXICON_SEED)
    taken = set(ADULT_VOCAB)
    out: dict[str, str] = {}
    for word in sorted(ADULT_VOCAB):
        n_syl = 1 if len(word) <= 3 else 2 if len(word) <= 6 else 3
        while True:
            cand = "".join(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                           + _CODAS[rng.integers(len(_CODAS))] for _ in range(n_syl))
            if cand not in taken:
                break
            n_syl += int(rng.random() < 0.3)  # grow slowly if short words run out
        taken.add(cand)
        out[word] = cand
    return out


ZX_LEXICON: dict[str, str] = _build_zx_lexicon()
_VERBS = frozenset(_SLOTS["vt"] + _SLOTS["vm"] + _SLOTS["vi"] + _SLOTS["vpres"]
                   + "was were is likes gets makes smiled fell lived found looked picked put saw".split()
                   + "turns lives eats goes grows needs survive can break move bring see think know".split()
                   + "learned told asked bought ate rode walked".split())
_ADJS = frozenset(L.ADJECTIVES + L.COLORS)
_NOUNS = frozenset(w for k in ("name", "animal", "animals", "object", "objects", "food", "vehicle", "place",
                               "rel", "prof", "event") for w in _SLOTS[k])
_CLAUSE = frozenset({"and", "because", "that", "when"})


def translate(sentence: str) -> str:
    """English adult sentence -> Zexi (``zx``): adjectives move after the noun they precede, verbs move to
    the end of their clause, then each word is replaced by its Zexi word. Unknown words pass through."""
    clauses: list[list[str]] = [[]]
    for w in sentence.split():
        if w in _CLAUSE:
            clauses.append([w])
            clauses.append([])
        else:
            clauses[-1].append(w)
    out: list[str] = []
    for c in clauses:
        words: list[str] = []
        i = 0
        while i < len(c):  # ADJ+ NOUN -> NOUN ADJ+
            j = i
            while j < len(c) and c[j] in _ADJS:
                j += 1
            if j > i and j < len(c) and c[j] in _NOUNS:
                words += [c[j]] + c[i:j]
                i = j + 1
            else:
                words.append(c[i])
                i += 1
        out += [w for w in words if w not in _VERBS] + [w for w in words if w in _VERBS]
    return " ".join(ZX_LEXICON.get(w, w) for w in out)


def tokenizer_corpus(seed: int, n: int) -> list[str]:
    """``n`` lines to train the model's BPE tokenizer: adult sentences, their Zexi translations, SQA and AQA
    questions and choices. No science/reading domain word ever appears (the model must spell those from
    sub-word pieces, which is what demonstrations then teach it)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7311]))
    lines: list[str] = []
    aqa = [(q, c) for q, c, _ in AQA_QUESTIONS.values()]
    while len(lines) < n:
        r = rng.random()
        if r < 0.45:
            lines.append(adult_sentence(rng).text)
        elif r < 0.8:
            lines.append(translate(adult_sentence(rng).text))
        elif r < 0.95:
            _, q, choices, _ = sqa_item(rng)
            lines.append(q + " " + " ".join(choices))
        else:
            q, choices = aqa[int(rng.integers(len(aqa)))]
            lines.append(q + " " + " ".join(choices))
    return lines[:n]
