"""Episodic training data: a task mixture, per-step episodes, length-grouped batches.

Every episode is a pure function of ``(seed, index)``: pick a task by mixture weight, a query of that
task, ``k`` (fixed, or drawn from ``[k_min, k_max]``), and the query's ``k`` nearest demonstrations from
the retrieval lists computed once, up front, by :func:`sicl.retrieval.retrieve` (the same code path as
evaluation). Being a pure function of the index is what makes a resumed run see exactly the episodes an
uninterrupted one would, and lets every process of a multi-process run agree without communication.

Prompt order: demos farthest first, nearest last (next to the query), unless ``shuffle_demos``. A
prompt-length budget drops the farthest demos first; audio is never truncated.
"""

from __future__ import annotations

import functools
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


class EpisodeSampler:
    """``episode(i)``: the i-th training episode (module docstring)."""

    def __init__(self, tasks: Sequence[TaskData], k: Sequence[int], seed: int = 0, shuffle_demos: bool = False,
                 max_prompt_tokens: int | None = None, length_of: Callable[[Example], int] | None = None) -> None:
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
        return Episode(query=query, demos=demos, id=f"{index}:{query.id}", meta={"task": task.name})

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
