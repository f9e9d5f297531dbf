"""An episode: k demonstration examples followed by one query, the unit SICL-AT trains and tests on.

Episodes are stored as JSON Lines of ids (``{"id", "query", "demos", "meta"}``) next to a run's
results, so the exact demonstrations each query saw can be audited and replayed; the examples themselves
live in the manifests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sicl.data.manifest import Example
from sicl.errors import ManifestError


@dataclass
class Episode:
    """``demos`` (in prompt order) then ``query``; the loss and the generated answer are the query's."""

    query: Example
    demos: list[Example] = field(default_factory=list)
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = self.query.id

    @property
    def k(self) -> int:
        return len(self.demos)

    @property
    def examples(self) -> list[Example]:
        """Demos then query: the order the clips appear in the prompt."""
        return [*self.demos, self.query]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "query": self.query.id, "demos": [d.id for d in self.demos]}
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_dict(cls, row: Mapping[str, Any], examples: Mapping[str, Example]) -> Episode:
        """Rebuild from :meth:`to_dict` output; ``examples`` maps ids to examples (query and demo pools)."""
        try:
            query = examples[row["query"]]
            demos = [examples[i] for i in row.get("demos", [])]
        except KeyError as e:
            raise ManifestError(f"episode {row.get('id')!r}: unknown example id {e.args[0]!r}") from None
        return cls(query=query, demos=demos, id=row.get("id") or query.id, meta=dict(row.get("meta") or {}))


#: prompt tokens per example besides its audio and text (role headers, instruction): for length estimates
TURN_OVERHEAD = 16


def prompt_order(nearest_first: Sequence[Example]) -> list[Example]:
    """Retrieved demonstrations (nearest first) in the order training and evaluation put them in the prompt:
    farthest first, the nearest next to the query."""
    return list(reversed(nearest_first))


def estimated_tokens(ex: Example, audio_tokens: int, with_answer: bool, count_text: Callable[[str], int]) -> int:
    """Estimated prompt tokens of one example: its audio placeholders, its text (answer when ``with_answer``,
    question, choices) as ``count_text`` counts it, and :data:`TURN_OVERHEAD`. Used to group episodes of
    similar length (training and evaluation) and for training's prompt budget."""
    text = " ".join(s for s in (ex.target if with_answer else None, ex.question, *(ex.choices or [])) if s)
    return audio_tokens + count_text(text) + TURN_OVERHEAD


def write_episodes(path: str | Path, episodes: Iterable[Episode]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for ep in episodes:
            fh.write(json.dumps(ep.to_dict(), ensure_ascii=False) + "\n")
    return path


def read_episodes(path: str | Path, examples: Mapping[str, Example]) -> list[Episode]:
    out = []
    with open(path, encoding="utf-8-sig") as fh:  # a BOM written by an editor is skipped
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{line_no}: invalid JSON ({e.msg})") from None
            out.append(Episode.from_dict(row, examples))
    return out
