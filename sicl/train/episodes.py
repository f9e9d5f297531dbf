"""Episodic training data: a task mixture, per-step episodes, length-grouped batches.

Every episode is a pure function of ``(seed, index)``: pick a task by mixture weight, a query of that
task, ``k`` (fixed, or drawn from ``[k_min, k_max]``), and the query's ``k`` nearest demonstrations from
the retrieval lists computed once, up front, by :func:`sicl.retrieval.retrieve` (the same code path as
evaluation). Being a pure function of the index is what makes a resumed run see exactly the episodes an
uninterrupted one would, and lets every process of a multi-process run agree without communication.

Prompt order: demos farthest first, nearest last (next to the query), unless ``shuffle_demos``. A
prompt-length budget drops the farthest demos first; audio is never truncated.

``respell_shared`` (an option, off by default; not in the paper): with that probability an ASR episode's rare words
that the query shares with its demonstrations are spelled another way that sounds the same, in the query's answer and
in every demonstration's transcript alike (:func:`respell_shared_words`). The audio is unchanged, so the model can
only get such a word right by copying it from a demonstration: an episode that rewards using the context even when
the model already spells the word right from the sound.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from torch.utils.data import Dataset

from sicl.data.manifest import Example
from sicl.episodes.episode import Episode, prompt_order
from sicl.errors import SiclError


@dataclass
class TaskData:
    """One mixture component: its queries, its demo pool and each query's ranked pool ids."""

    name: str
    weight: float
    queries: list[Example]
    pool: list[Example] = field(default_factory=list)
    #: query id -> pool ids, nearest first (at least ``k_max`` of them when demos are used)
    ranked: dict[str, list[str]] = field(default_factory=dict)


_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
#: words a pool's transcripts use in more than this share of its examples (and more than COMMON_MIN of them) are
#: common, never respelt: function words and a world's template words, which the model spells right anyway
COMMON_DF = 0.02
COMMON_MIN = 5
#: shortest word that is respelt
MIN_RESPELL_LEN = 4


def common_words(pool: Sequence[Example], max_df: float = COMMON_DF, min_count: int = COMMON_MIN) -> frozenset[str]:
    """Lower-cased words in more than ``max_df`` of the pool's ASR transcripts and in more than ``min_count`` of
    them (document frequency)."""
    texts = [ex.target for ex in pool if ex.task == "asr" and ex.target]
    df = Counter(w for t in texts for w in {m.group().lower() for m in _WORD.finditer(t)})
    return frozenset(w for w, c in df.items() if c > max(min_count, max_df * len(texts)))


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    return word[0].upper() + word[1:] if like[:1].isupper() else word


def respell_shared_words(query: Example, demos: Sequence[Example], rng: np.random.Generator,
                         common: frozenset[str] = frozenset()) -> tuple[Example, list[Example], dict[str, str]]:
    """The query and demos with every word the query's answer shares with a demonstration's transcript (plain
    letters, at least :data:`MIN_RESPELL_LEN` long, not in ``common``) respelt consistently: the same new spelling,
    one that espeak-ng says the same way (:func:`sicl.data.synth.open_text.respell`), everywhere it occurs. Words
    with no such spelling stay as they are. Returns (query, demos, {word: new spelling})."""
    from sicl.data.synth.open_text import respell

    def words(ex: Example) -> set[str]:
        return {m.group().lower() for m in _WORD.finditer(ex.target or "")}

    shared = words(query) & set().union(*(words(d) for d in demos)) if demos else set()
    mapping: dict[str, str] = {}
    for w in sorted(shared):  # sorted: the same episode index gives the same spellings
        if len(w) >= MIN_RESPELL_LEN and w.isascii() and w.isalpha() and w not in common:
            new = respell(w, rng)
            if new:
                mapping[w] = new
    if not mapping:
        return query, list(demos), {}

    def sub(ex: Example) -> Example:
        if not ex.target:
            return ex
        text = _WORD.sub(lambda m: _match_case(mapping[m.group().lower()], m.group())
                         if m.group().lower() in mapping else m.group(), ex.target)
        return ex if text == ex.target else dataclasses.replace(ex, target=text)

    return sub(query), [sub(d) for d in demos], mapping


class EpisodeSampler:
    """``episode(i)``: the i-th training episode (module docstring)."""

    def __init__(self, tasks: Sequence[TaskData], k: Sequence[int], seed: int = 0, shuffle_demos: bool = False,
                 max_prompt_tokens: int | None = None, length_of: Callable[[Example], int] | None = None,
                 respell_shared: float = 0.0) -> None:
        if not tasks:
            raise SiclError("training needs at least one task")
        if len(k) not in (1, 2) or min(k) < 0 or k[0] > k[-1]:
            raise SiclError(f"k must be one value or a range [min, max] with 0 <= min <= max, got {list(k)}")
        weights = np.asarray([t.weight for t in tasks], dtype=np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise SiclError(f"task weights must be >= 0 and not all 0, got {weights.tolist()}")
        for t in tasks:
            if not t.queries:
                raise SiclError(f"task {t.name!r} has no queries")
        self.tasks = list(tasks)
        self.probs = weights / weights.sum()
        self.k_min, self.k_max = int(k[0]), int(k[-1])
        self.seed = seed
        self.shuffle_demos = shuffle_demos
        self.max_prompt_tokens = max_prompt_tokens
        self.length_of = length_of or (lambda ex: 0)
        self._pools = [{ex.id: ex for ex in t.pool} for t in self.tasks]
        if not 0.0 <= respell_shared <= 1.0:
            raise SiclError(f"respell_shared must be a probability in [0, 1], got {respell_shared}")
        self.respell_shared = respell_shared
        self._common = [common_words(t.pool) if respell_shared > 0 else frozenset() for t in self.tasks]

    def episode(self, index: int) -> Episode:
        rng = np.random.default_rng([self.seed, index])
        ti = int(rng.choice(len(self.tasks), p=self.probs))
        task = self.tasks[ti]
        query = task.queries[int(rng.integers(len(task.queries)))]
        k = int(rng.integers(self.k_min, self.k_max + 1))
        # The leakage guard already removed the query; the id check is a cheap second line of defence.
        ids = [i for i in task.ranked.get(query.id, []) if i != query.id][:k]
        if len(ids) < k:
            raise SiclError(f"task {task.name!r}: query {query.id!r} has {len(ids)} retrieved demos, needs {k}")
        demos = [self._pools[ti][i] for i in ids]  # nearest first
        if self.max_prompt_tokens is not None:
            budget = self.max_prompt_tokens - self.length_of(query)
            while demos and sum(self.length_of(d) for d in demos) > budget:
                demos.pop()  # the farthest demo goes first
        demos = prompt_order(demos)  # farthest first, nearest next to the query
        if self.shuffle_demos:
            demos = [demos[int(j)] for j in rng.permutation(len(demos))]
        meta: dict = {"task": task.name}
        if self.respell_shared > 0 and demos and query.task == "asr":
            # its own generator: episodes with the option off are exactly those of a run without it
            r2 = np.random.default_rng([self.seed, index, 7_919])
            if r2.random() < self.respell_shared:
                query, demos, mapping = respell_shared_words(query, demos, r2, self._common[ti])
                if mapping:
                    meta["respelt"] = mapping
        return Episode(query=query, demos=demos, id=f"{index}:{query.id}", meta=meta)

    def length(self, ep: Episode) -> int:
        """Estimated prompt tokens of an episode (for length grouping)."""
        return sum(self.length_of(ex) for ex in ep.examples)


class EpisodeDataset(Dataset):
    """``n`` episodes, batch-ready: within each chunk of ``batch_size x group_batches`` consecutive indices,
    episodes are sorted by length, cut into batches of ``batch_size`` and the batches are shuffled.

    Consecutive ``batch_size`` indices therefore form a batch of similar lengths (little padding), while
    the order of batches stays random. Read it sequentially (the trainer's sampler does); under DDP each
    process takes whole batches, so the grouping holds for any number of processes."""

    def __init__(self, sampler: EpisodeSampler, n: int, batch_size: int, group_batches: int = 16) -> None:
        self.sampler = sampler
        self.n = n
        self.batch_size = batch_size
        self.chunk = batch_size * max(1, group_batches)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Episode:
        c, r = divmod(index, self.chunk)
        return self._chunk(c)[r]

    @functools.lru_cache(maxsize=4)  # noqa: B019 - a dataset lives as long as its run
    def _chunk(self, c: int) -> list[Episode]:
        start = c * self.chunk
        eps = [self.sampler.episode(i) for i in range(start, min(start + self.chunk, self.n))]
        if self.chunk == self.batch_size:
            return eps
        eps.sort(key=self.sampler.length)
        batches = [eps[i:i + self.batch_size] for i in range(0, len(eps), self.batch_size)]
        order = np.random.default_rng([self.sampler.seed, 1_000_003, c]).permutation(len(batches))
        return [ep for j in order for ep in batches[int(j)]]
