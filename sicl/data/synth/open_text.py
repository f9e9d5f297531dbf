"""Open-vocabulary text for tiny-omni v2's pretraining: thousands of everyday words, free word order, and
text-only language-model data that teaches in-context copying.

The world's own grammars (``text.py``) have a few hundred words in ~55 templates; a model trained on them alone
learns to match templates rather than to transcribe. Here:

* ``WORDS``: 8,000 frequency-ranked English words (``words_en.txt``, see ``scripts/make_wordlist.py``).
* ``UNHEARD``: about 12 % of the words past the 200 most frequent, chosen by a hash of the word: never spoken
  in any pretraining clip, but present in the text-only data (as a real LLM knows words it never heard).
  Sentences made of them measure open-vocabulary transcription. The child domains' words (``DOMAIN_WORDS``)
  are rare: ``DOMAIN_SPOKEN`` of the free word sequences carry one (a few clips per word over a run), as a
  real model has heard a classroom's science words seldom, not never.
* :func:`open_sentence`: a spoken sentence from heard words: Zipf-sampled free word sequences, the adult
  templates with open words in their slots, and spoken numbers.
* :func:`text_example`: text-only chat examples (no audio): copy a span or a word back from the prompt
  ("induction" data), repeat a sentence, and raw documents whose sentences repeat.
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from sicl.data.synth import text as T

_WORDS_FILE = Path(__file__).with_name("words_en.txt")
N_COMMON = 200  # the most frequent words are always heard (function words)
UNHEARD_PERCENT = 12
DOMAIN_SPOKEN = 0.15  # share of free word sequences that carry one child-domain word


@lru_cache(maxsize=1)
def words() -> tuple[str, ...]:
    return tuple(w for w in _WORDS_FILE.read_text(encoding="utf-8").split() if w)


def _hash_pct(word: str) -> int:
    return zlib.crc32(("unheard:" + word).encode()) % 100


@lru_cache(maxsize=1)
def domain_words() -> frozenset[str]:
    """Words of the child domains: rare in pretraining speech (see :func:`open_sentence`), never in the
    child grammars."""
    return frozenset(T.SCIENCE_WORDS | T.READING_WORDS)


@lru_cache(maxsize=1)
def unheard_words() -> tuple[str, ...]:
    """Words never spoken in a pretraining clip (open-vocabulary probe), in frequency order."""
    protected = T.ADULT_VOCAB | T.QUESTION_VOCAB | T.AQA_VOCAB | NUMBER_WORDS
    return tuple(w for i, w in enumerate(words()) if i >= N_COMMON and w not in protected
                 and w not in domain_words() and _hash_pct(w) < UNHEARD_PERCENT)


@lru_cache(maxsize=1)
def heard_words() -> tuple[str, ...]:
    """Words pretraining clips may speak, in frequency order."""
    skip = set(unheard_words()) | domain_words()
    return tuple(w for w in words() if w not in skip)


@lru_cache(maxsize=4)
def _zipf(n: int, offset: float = 8.0, power: float = 0.9) -> np.ndarray:
    p = 1.0 / (np.arange(n) + offset) ** power
    return p / p.sum()


def zipf_words(rng: np.random.Generator, vocab: tuple[str, ...], k: int) -> list[str]:
    idx = rng.choice(len(vocab), size=k, p=_zipf(len(vocab)))
    return [vocab[int(i)] for i in idx]


_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
    "seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
NUMBER_WORDS = frozenset(_UNITS + _TENS + ["hundred", "thousand", "and"])


def number_words(n: int) -> str:
    """0..9999 as spoken English words ("one hundred and five")."""
    if n < 20:
        return _UNITS[n]
    if n < 100:
        return _TENS[n // 10 - 2] + ("" if n % 10 == 0 else " " + _UNITS[n % 10])
    if n < 1000:
        rest = n % 100
        return _UNITS[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else
                                                     (" and " if rest < 100 else " ") + number_words(rest))


_SLOT_RE = re.compile(r"\{(\w+?)(\d?)\}")


def open_sentence(rng: np.random.Generator) -> str:
    """A sentence of heard words: free word sequences (45 %), adult templates with open words in their slots
    (35 %), phrases with spoken numbers (20 %)."""
    heard = heard_words()
    r = rng.random()
    if r < 0.45:
        seq = zipf_words(rng, heard, int(rng.integers(3, 11)))
        if rng.random() < DOMAIN_SPOKEN:
            dom = sorted(domain_words())
            seq[int(rng.integers(len(seq)))] = dom[int(rng.integers(len(dom)))]
        return " ".join(seq)
    if r < 0.80:
        template = T.ADULT_TEMPLATES[int(rng.integers(len(T.ADULT_TEMPLATES)))][0]
        content = heard[N_COMMON:]

        def fill(m: re.Match) -> str:
            if rng.random() < 0.6:
                return zipf_words(rng, content, 1)[0]
            return m.group(0)  # left for the template's own word list

        text = _SLOT_RE.sub(fill, template)
        sent = T._fill(text, rng).text if _SLOT_RE.search(text) else " ".join(text.split())
        return sent
    n = int(rng.choice([rng.integers(1, 20), rng.integers(20, 100), rng.integers(100, 1000),
                        rng.integers(1000, 10000)]))
    a, b = zipf_words(rng, heard, 2)
    frame = int(rng.integers(3))
    if frame == 0:
        return f"{a} {number_words(n)} {b}"
    if frame == 1:
        return f"there were {number_words(n)} {a} in the {b}"
    return f"{a} {b} {number_words(n)}"


def unheard_sentence(rng: np.random.Generator, n_words: tuple[int, int] = (3, 7)) -> str:
    """A word sequence made only of words no pretraining clip speaks (outside every template)."""
    vocab = unheard_words()
    return " ".join(vocab[int(i)] for i in rng.choice(len(vocab), size=int(rng.integers(*n_words))))


# ---------------------------------------------------------------------------------------- text-only data
_ON = "b d f g k l m n p r s t v z sh ch th tr pl gr".split()
_VO = "a e i o u ee oo ai".split()
_CO = ["", "", "n", "r", "s", "k", "l", "m", "nd", "st"]


def nonce_word(rng: np.random.Generator) -> str:
    """A made-up word of 1-3 syllables (for copying probes: no model can know it)."""
    return "".join(_ON[int(rng.integers(len(_ON)))] + _VO[int(rng.integers(len(_VO)))] + _CO[int(rng.integers(len(_CO)))]
                   for _ in range(int(rng.integers(1, 4))))


def _text_vocab() -> tuple[str, ...]:
    return words() + tuple(sorted(domain_words()))


def _any_words(rng: np.random.Generator, k: int) -> list[str]:
    out = []
    vocab = _text_vocab()
    for _ in range(k):
        r = rng.random()
        if r < 0.3:
            out.append(nonce_word(rng))
        elif r < 0.6:
            out.append(vocab[int(rng.integers(len(vocab)))])
        else:
            out.append(zipf_words(rng, words(), 1)[0])
    return out


def text_sentence(rng: np.random.Generator) -> str:
    """Any sentence the text-only data may contain: every word, heard or not, domain words included."""
    r = rng.random()
    if r < 0.3:
        return T.adult_sentence(rng).text
    if r < 0.45:
        return (T.science_sentence if rng.random() < 0.5 else T.reading_sentence)(rng).text
    if r < 0.6:
        return open_sentence(rng)
    return " ".join(_any_words(rng, int(rng.integers(3, 10))))


COPY_AFTER = "Words: {words}.\nWhich word comes after {cue}?"


def copy_probe(rng: np.random.Generator, n: int = 5) -> tuple[str, str]:
    """(prompt, answer): five new words and a question that asks for the one after a cue word."""
    ws: list[str] = []
    while len(ws) < n:
        w = nonce_word(rng)
        if w not in ws:
            ws.append(w)
    i = int(rng.integers(n - 1))
    return COPY_AFTER.format(words=" ".join(ws), cue=ws[i]), ws[i + 1]


COPY_PREFIX = "Words: {words}.\nWhich word starts with {prefix}?"


def prefix_probe(rng: np.random.Generator, n: int = 5) -> tuple[str, str]:
    """(prompt, answer): five new words with distinct first letters pairs and a question that gives the first
    two letters of one of them (the pattern SICL needs: partial evidence, the full spelling from context)."""
    ws: list[str] = []
    while len(ws) < n:
        w = nonce_word(rng)
        if len(w) >= 4 and w[:2] not in {x[:2] for x in ws}:
            ws.append(w)
    i = int(rng.integers(n))
    return COPY_PREFIX.format(words=" ".join(ws), prefix=ws[i][:2]), ws[i]


def _copy_words(rng: np.random.Generator) -> list[str]:
    ws = list(dict.fromkeys(_any_words(rng, int(rng.integers(3, 9)))))
    while len(ws) < 3:
        ws.append(nonce_word(rng) + "s" * len(ws))
    return ws


def text_example(rng: np.random.Generator) -> tuple[list[tuple[str, str]], str | None]:
    """One text-only training example: ``(turns, None)`` for a chat of (user, assistant) turns whose
    assistant turns are the loss, or ``([], document)`` for a raw document (loss on every token).

    Copying leads (70 %): v2's first run, with 30-50 % copying among its text examples, never learnt it (probe at
    0 after ~500 text steps), while a copy-only run from the same weights reached 12 % in 400 steps (docs/tiny-omni.md)."""
    r = rng.random()
    if r < 0.7:  # induction: find the cue in the list, copy what follows it (or the whole list, or by prefix)
        ws = _copy_words(rng)
        q = int(rng.choice(4, p=[0.4, 0.25, 0.15, 0.2]))
        if q == 0:
            i = int(rng.integers(len(ws) - 1))
            return [(COPY_AFTER.format(words=" ".join(ws), cue=ws[i]), ws[i + 1])], None
        if q == 1:
            return [(f"Words: {' '.join(ws)}.\nRepeat the words.", " ".join(ws))], None
        if q == 2:
            i = int(rng.integers(1, len(ws)))
            return [(f"Words: {' '.join(ws)}.\nWhich word comes before {ws[i]}?", ws[i - 1])], None
        firsts = [w[:2] for w in ws]
        ok = [i for i, f in enumerate(firsts) if firsts.count(f) == 1 and len(ws[i]) > 2]
        if not ok:
            return [(f"Words: {' '.join(ws)}.\nRepeat the words.", " ".join(ws))], None
        i = ok[int(rng.integers(len(ok)))]
        return [(COPY_PREFIX.format(words=" ".join(ws), prefix=ws[i][:2]), ws[i])], None
    if r < 0.85:  # repeat sentences back, several turns (later turns may repeat earlier ones)
        turns: list[tuple[str, str]] = []
        said: list[str] = []
        for _ in range(int(rng.integers(1, 5))):
            s = said[int(rng.integers(len(said)))] if said and rng.random() < 0.3 else text_sentence(rng)
            said.append(s)
            turns.append((f"Say: {s}", s))
        return turns, None
    # a raw document whose sentences come back later (what small transformers learn induction heads from)
    pool = [text_sentence(rng) for _ in range(int(rng.integers(2, 5)))]
    doc = [pool[int(rng.integers(len(pool)))] for _ in range(int(rng.integers(4, 9)))]
    return [], ". ".join(doc) + "."


# ------------------------------------------------------------------------------- world v2: rare-word topics
_NOUN_SLOTS = ("object", "place", "animal", "food", "vehicle", "object2", "food2")
N_TOPICS = 100


@lru_cache(maxsize=1)
def rare_topics() -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    """World v2's long tail: ``N_TOPICS`` topics of (2 anchor words, 3 rare words), all heard in pretraining but
    the rare ones seldom (frequency ranks past 5,000 of 8,000, where Zipf sampling makes each a handful of clips).
    Sentences of a topic share its anchors, so text retrieval (TICL) finds same-topic demonstrations, which
    carry the rare words, as Common Voice's rare names recur in related sentences."""
    protected = T.ADULT_VOCAB | T.QUESTION_VOCAB | T.AQA_VOCAB | NUMBER_WORDS
    rank = {w: i for i, w in enumerate(words())}
    heard = [w for w in heard_words() if w not in protected and len(w) >= 4]
    anchors = [w for w in heard if 800 <= rank[w] < 3000]
    rare = [w for w in heard if rank[w] >= 5000]
    rng = np.random.default_rng(20261130)
    a = [anchors[int(i)] for i in rng.permutation(len(anchors))[: 2 * N_TOPICS]]
    r = [rare[int(i)] for i in rng.permutation(len(rare))[: 3 * N_TOPICS]]
    return tuple((tuple(a[2 * t: 2 * t + 2]), tuple(r[3 * t: 3 * t + 3])) for t in range(N_TOPICS))


@lru_cache(maxsize=1)
def _rare_templates() -> tuple[str, ...]:
    out = []
    for template, _, _ in T.ADULT_TEMPLATES:
        slots = [m.group(1) + m.group(2) for m in _SLOT_RE.finditer(template)]
        if sum(s in _NOUN_SLOTS for s in slots) >= 2 and not {"animals", "objects"} & set(slots):
            out.append(template)
    return tuple(out)


def rare_word_sentence(rng: np.random.Generator) -> T.Sentence:
    """An adult template sentence with two of its noun slots filled by one topic's anchor and rare word
    (``topic`` holds the topic index)."""
    t = int(rng.integers(N_TOPICS))
    anchors, rare = rare_topics()[t]
    template = _rare_templates()[int(rng.integers(len(_rare_templates())))]
    slots = [m.group(1) + m.group(2) for m in _SLOT_RE.finditer(template) if m.group(1) + m.group(2) in _NOUN_SLOTS]
    i, j = rng.choice(len(slots), size=2, replace=False)
    preset = {slots[int(i)]: anchors[int(rng.integers(2))], slots[int(j)]: rare[int(rng.integers(3))]}
    sent = T._fill(template, rng, preset)
    return T.Sentence(sent.text, sent.slots, f"rare-{t:03d}")


def world_adult_sentence(rng: np.random.Generator, rare_share: float = 0.5) -> T.Sentence:
    """World v2's adult sentences: ``rare_share`` of them carry a rare-word topic, the rest are v1's."""
    return rare_word_sentence(rng) if rng.random() < rare_share else T.adult_sentence(rng)


# ----------------------------------------------------------------------- world v3: made-up names per topic
N_NAME_TOPICS = 150
_NAME_SLOTS = ("place", "object", "food", "vehicle", "event")


NameTopics = tuple[tuple[tuple[str, str], str], ...]


def make_name_topics(rng: np.random.Generator, n: int) -> NameTopics:
    """``n`` topics of (two made-up names, one anchor word) drawn with ``rng``: names from
    :func:`spoken_nonce_word` (pronounceable, in no lexicon), no name in two topics; anchors of frequency rank
    800-3,000."""
    rank = {w: i for i, w in enumerate(words())}
    anchors = [w for w in heard_words() if 800 <= rank[w] < 3000 and len(w) >= 4]
    out: list[tuple[tuple[str, str], str]] = []
    used: set[str] = set()
    while len(out) < n:
        a, b = spoken_nonce_word(rng), spoken_nonce_word(rng)
        if a == b or {a, b} & used:
            continue
        used |= {a, b}
        out.append(((a, b), anchors[int(rng.integers(len(anchors)))]))
    return tuple(out)


@lru_cache(maxsize=1)
def name_topics() -> NameTopics:
    """World v3's ``names`` domain: ``N_NAME_TOPICS`` fixed topics (their own seed, so a world's pool and test
    share them). The names (never spoken by a pretraining clip except by chance) cannot be spelled from the sound
    alone; the topic's other sentences, which text retrieval finds through the shared names and anchor, spell
    them: the situation of Common Voice's rare names, where the demonstrations carry what the query needs."""
    return make_name_topics(np.random.default_rng(20261201), N_NAME_TOPICS)


def name_sentence(rng: np.random.Generator, topic: int | None = None, table: NameTopics | None = None) -> T.Sentence:
    """An adult template sentence whose ``{name}`` slots hold one topic's made-up names (``topic`` holds
    ``names-NNN``; ``slots["names"]`` the names it speaks, space-separated) and one noun slot its anchor.
    ``table``: the topics to draw from (default: :func:`name_topics`)."""
    table = table or name_topics()
    t = int(rng.integers(len(table))) if topic is None else int(topic)
    (a, b), anchor = table[t]
    named = [tpl for tpl, _, _ in T.ADULT_TEMPLATES if "{name}" in tpl]
    template = named[int(rng.integers(len(named)))]
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    preset = {"name": first, "name2": second}
    nouns = [s for s in _NAME_SLOTS if "{" + s + "}" in template]
    if nouns:
        preset[nouns[int(rng.integers(len(nouns)))]] = anchor
    sent = T._fill(template, rng, preset)
    spoken = [w for w in (a, b) if w in sent.text.split()]
    return T.Sentence(sent.text, {**sent.slots, "names": " ".join(spoken)}, f"names-{t:03d}")


# ------------------------------------------------------------------------ contextual ASR (tiny-omni v4)
CONTEXT_FORMATS = ("Words you may hear: {words}.", "Names and terms: {words}.", "Notes: {note}.",
                   "Earlier transcripts: {related}")
CONTEXT_HIT = 0.8  # share of contextual examples whose clip speaks one or two of the listed new words


@lru_cache(maxsize=1)
def _lexicon() -> frozenset[str]:
    return frozenset(words()) | domain_words()


def spoken_nonce_word(rng: np.random.Generator) -> str:
    """A made-up word of 2-3 syllables that is no word of the lexicon (so no unheard or domain word is ever
    spoken by the contextual task)."""
    vocab = _lexicon()
    while True:
        w = "".join(_ON[int(rng.integers(len(_ON)))] + _VO[int(rng.integers(len(_VO)))]
                    + _CO[int(rng.integers(len(_CO)))] for _ in range(2 if rng.random() < 0.7 else 3))
        if w not in vocab:
            return w


# Respellings that often keep a made-up word's sound (k -> ck, f -> ph, ee -> ea, doubled consonants, silent
# letters): each candidate is kept only if espeak-ng gives it the same phonemes (:func:`respell`).
_RESPELL = ((r"f", "ph"), (r"k", "c"), (r"k", "ck"), (r"k", "ch"), (r"s", "ss"), (r"s", "c"), (r"ee", "ea"),
            (r"ee", "ie"), (r"ai", "ay"), (r"ai", "ei"), (r"i", "y"), (r"z", "zz"), (r"t", "tt"), (r"l", "ll"),
            (r"n", "nn"), (r"m", "mm"), (r"r", "rr"), (r"p", "pp"), (r"d", "dd"), (r"b", "bb"), (r"g", "gh"),
            (r"ch", "tch"), (r"^r", "wr"), (r"^n", "kn"), (r"oo", "ou"), (r"oo", "ew"), (r"u", "ou"), (r"sh", "sch"),
            (r"er", "ur"), (r"m$", "mb"), (r"t$", "te"), (r"v", "ve"), (r"a", "ah"), (r"o", "oh"))


_TRIPLE = re.compile(r"(.)\1\1")


def _edits(word: str) -> list[str]:
    out = []
    for pat, rep in _RESPELL:
        for m in re.finditer(pat, word):
            out.append(word[:m.start()] + rep + word[m.end():])
    return list(dict.fromkeys(w for w in out if w != word))


def respell(word: str, rng: np.random.Generator, tries: int = 12) -> str | None:
    """Another spelling of ``word`` that espeak-ng says the same way (one or two edits from ``_RESPELL``), or
    None. A model that hears it writes its own guess (the regular spelling); only a transcript in its context
    can give this one, as a demonstration gives a rare word's irregular spelling ("crystal", not "christal")."""
    from sicl.data.synth.tts import phonemes

    target = phonemes(word)
    vocab = _lexicon()
    cands = _edits(word)
    rng.shuffle(cands)
    good: list[str] = []
    for c in cands[:tries]:
        if c not in vocab and not _TRIPLE.search(c) and phonemes(c) == target:
            good.append(c)
    if not good:
        return None
    first = good[int(rng.integers(len(good)))]
    twice = [c for c in _edits(first) if c not in vocab and c != word and not _TRIPLE.search(c)]
    rng.shuffle(twice)
    for c in twice[:4]:
        if rng.random() < 0.5 and phonemes(c) == target:
            return c
    return first


def _related_sentences(rng: np.random.Generator, base: list[str], listed: list[str]) -> list[str]:
    """The "Earlier transcripts" hint (tiny-omni v5): one sentence per listed word, each also sharing one or
    two other words with the spoken sentence, as the transcripts of a query's TICL neighbours share its topic
    words. Only text: the model learns to take a spelling from transcripts in its context and to transcribe
    just the clip after them (not to continue the transcripts), still without any demonstration episode."""
    out = []
    for w in listed:
        sent = open_sentence(rng).split()
        shared = [base[int(i)] for i in rng.choice(len(base), size=min(len(base), int(rng.integers(1, 3))),
                                                   replace=False)]
        for x in [w, *shared]:
            sent.insert(int(rng.integers(len(sent) + 1)), x)
        out.append(" ".join(sent) + ".")
    return out


def context_sentence(rng: np.random.Generator) -> tuple[str, str]:
    """(spoken sentence, text hint) for contextual ASR, the analogue of a real omni model's "hotword" or
    "context" ASR instruction data: the hint lists made-up words (or a note that contains them), and in
    ``CONTEXT_HIT`` of the examples the clip speaks one or two of them. A made-up word's spelling cannot be
    known from sound alone, so the model must take it from the text it was given: the skill that lets
    demonstrations' transcripts supply a rare word's spelling (SICL), learnt without any demonstration
    episode. The others are distractors, so copying every listed word is wrong."""
    base = open_sentence(rng).split()
    new = [spoken_nonce_word(rng) for _ in range(int(rng.integers(1, 3)))]
    new = list(dict.fromkeys(new))
    if rng.random() < CONTEXT_HIT:
        for w, pos in zip(new, rng.choice(len(base), size=len(new), replace=False),
                          strict=True):
            base[int(pos)] = w
    distract = [spoken_nonce_word(rng) if rng.random() < 0.6 else zipf_words(rng, words(), 1)[0]
                for _ in range(int(rng.integers(1, 5)))]
    listed = new + [w for w in distract if w not in new]
    order = rng.permutation(len(listed))
    listed = [listed[int(i)] for i in order]
    fmt = CONTEXT_FORMATS[int(rng.integers(len(CONTEXT_FORMATS)))]
    if "{related}" in fmt:
        return " ".join(base), fmt.format(related=" ".join(_related_sentences(rng, base, listed)))
    if "{note}" in fmt:
        note = text_sentence(rng).split()
        for w in listed:
            note.insert(int(rng.integers(len(note) + 1)), w)
        return " ".join(base), fmt.format(note=" ".join(note))
    return " ".join(base), fmt.format(words=", ".join(listed))


# ------------------------------------------------- chats whose clips share words (tiny-omni v8)
SHARED_CLIPS = (2, 5)  # clips per shared-word chat


def shared_chat(rng: np.random.Generator, n_clips: int | None = None,
                respelt: bool = False) -> list[tuple[str, bool]]:
    """The sentences of one conversation whose clips share words: ``[(sentence, labelled), ...]``.

    The audio analogue of the repeated spans that taught the language model to copy (:func:`text_example`):
    a conversation keeps coming back to its own names and rare words, so a later clip speaks a word that an
    earlier clip spoke and its transcript spelled. A made-up name's spelling cannot be known from sound alone;
    it is only known once an earlier turn's transcript gave it, so a turn is ``labelled`` (carries the loss)
    only when every made-up word it speaks was spoken in an earlier turn; the turns that introduce a name are
    context, as the earlier turns of a chat are. Each chat also shares one or two rare heard words (spellable,
    but seldom heard), and some later turns share nothing (so copying every earlier word is wrong). The
    clips' voices are chosen by the caller (independently per clip). Not a retrieval episode: the turns are one
    conversation's, with no query chosen among them and no instruction to look back.

    ``respelt`` (tiny-omni v9): every made-up name is spelled another way that sounds the same (:func:`respell`:
    "fanbick" as "phanbick"), so the model's own guess from the sound is wrong and only the earlier transcript
    is right: the situation of a rare word whose demonstrations spell it ("crystal", heard as "christal")."""
    lo, hi = SHARED_CLIPS
    n = n_clips or int(rng.integers(lo, hi + 1))
    heard = heard_words()
    tail = heard[2000:]
    names = list(dict.fromkeys(spoken_nonce_word(rng) for _ in range(int(rng.integers(1, 4)))))
    if respelt:
        names = list(dict.fromkeys(r for w in names if (r := respell(w, rng))))
        while not names:
            names = [r] if (r := respell(spoken_nonce_word(rng), rng)) else []
    rare = [tail[int(i)] for i in rng.choice(len(tail), size=int(rng.integers(1, 3)), replace=False)]
    said: set[str] = set()
    out: list[tuple[str, bool]] = []
    for turn in range(n):
        sent = open_sentence(rng).split()
        if turn and rng.random() < 0.15:  # an unrelated turn
            out.append((" ".join(sent), True))
            continue
        known = [w for w in names if w in said]
        fresh = [w for w in names if w not in said]
        use: list[str] = []
        if known:  # a later turn comes back to a name already spelled (the point of the chat)
            use += [known[int(i)] for i in rng.choice(len(known), size=min(len(known), int(rng.integers(1, 3))),
                                                      replace=False)]
        if fresh and (not known or rng.random() < 0.3):
            use.append(fresh[0])
        if rng.random() < 0.6:
            use.append(rare[int(rng.integers(len(rare)))])
        for w in use:
            sent.insert(int(rng.integers(len(sent) + 1)), w)
        labelled = all(w in said for w in use if w in names)
        said.update(use)
        out.append((" ".join(sent), labelled))
    return out
