"""Demonstration retrieval: the one function training and evaluation both call.

:func:`retrieve` returns, for every query, ``[(pool_id, score), ...]`` best first. Retrievers:

- ``ticl``: pseudo-label the query, embed the label, exact KNN over the embedded pool texts (cosine).
- ``ticl+``: the top ``k x rerank_factor`` TICL candidates (or ``rerank_depth``), reranked by the cosine
  of mean-pooled audio-tower vectors of query and candidate; scores are those audio cosines.
- ``audio``: KNN on the mean-pooled audio-tower vectors alone (the audio-embedding baseline).
- ``random``: ``k`` distinct eligible pool items, seeded per (seed, query id), so a query's demos do not
  change when the query list is reordered or extended; scores are 0.
- ``none``: no demonstrations (zero-shot).

Which text is matched: ASR items by their transcription (pool: gold ``target``; query: pseudo-label), ST
items by the spoken source text (pool: ``transcript``; query: pseudo-label of the source speech, since
the translation is what the model must produce), SQA/AQA items by their ``question`` (known at test time
for query and pool alike, and for AQA, whose audio is not speech, the only text there is). Demos come
from pool items of the query's task (and, for ST, its target language) only. Every retriever applies the
leakage rule of :mod:`sicl.retrieval.leakage`.
"""

from __future__ import annotations

import sys
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sicl.data.lang import base_lang
from sicl.data.manifest import Example, has_text
from sicl.errors import SiclError
from sicl.retrieval import index as ix
from sicl.retrieval.leakage import LeakageGuard, audio_hashes

RETRIEVERS = ("ticl", "ticl+", "random", "audio", "none")
Demos = list[tuple[str, float]]


@dataclass
class RetrievalConfig:
    retriever: str = field(default="ticl", metadata={"help": "ticl | ticl+ | random | audio | none"})
    k: int = field(default=3, metadata={"help": "demonstrations per query"})
    pseudo_labeler: str = field(default="backbone",
                                metadata={"help": "backbone | gold | hf-asr:<model> (query text for ticl/ticl+)"})
    model: str = field(default="tiny-omni", metadata={"help": "backbone for pseudo-labels and audio vectors"})
    embedder: str | None = field(default=None, metadata={
        "help": "sentence-transformers name or folder (default: packaged all-MiniLM-L6-v2), or char-tfidf[:dim] "
                "(character n-gram TF-IDF, IDF fitted on the pool)"})
    index: str = field(default="exact", metadata={"help": "exact | hnsw | ivf (approximate, large pools)"})
    rerank_factor: int = field(default=10, metadata={"help": "ticl+: rerank the top k x this text neighbours"})
    rerank_depth: int | None = field(default=None, metadata={"help": "ticl+: fixed candidate count instead"})
    exclude_same_speaker: bool = field(default=False, metadata={"help": "never use the query's speaker"})
    seed: int = field(default=0, metadata={"help": "random retriever seed"})
    device: str = field(default="auto", metadata={
        "help": "where the pseudo-labeler, text and audio embedders run: auto (CUDA when present) | cpu | cuda:N"})
    max_new_tokens: int = field(default=128, metadata={"help": "pseudo-label length limit (tokens)"})
    batch_size: int = field(default=8, metadata={"help": "clips per pseudo-label / audio-vector batch"})
    cache_dir: str | None = field(default=None, metadata={"help": "cache root (default $SICL_CACHE or ~/.cache/sicl)"})
    allow_download: bool = field(default=False, metadata={"help": "allow hub downloads of named models"})


def retrieve(queries: Sequence[Example], pool: Sequence[Example], k: int | None = None,
             retriever: str | None = None, config: RetrievalConfig | None = None, *, labeler: Any = None,
             embedder: Any = None, audio_embedder: Any = None, progress: bool = False,
             info: dict[str, Any] | None = None) -> list[Demos]:
    """Demonstrations for each query (see module docstring). ``labeler``/``embedder``/``audio_embedder``
    replace the ones ``config`` names (tests, or callers that already hold a loaded model). ``info``, when
    given, receives what was actually used (``text_embedder``: the default embedder gives way to
    ``char-tfidf`` for a pool whose script it cannot read, :func:`check_readable`)."""
    cfg = config or RetrievalConfig()
    k = cfg.k if k is None else k
    retriever = retriever or cfg.retriever
    if retriever not in RETRIEVERS:
        raise SiclError(f"unknown retriever {retriever!r} (expected one of {', '.join(RETRIEVERS)})")
    if k < 0:
        raise SiclError(f"k must be >= 0, got {k}")
    if retriever == "random" and cfg.seed < 0:
        raise SiclError(f"seed must be >= 0, got {cfg.seed}")
    if retriever == "none" or k == 0 or not queries:
        return [[] for _ in queries]
    seen: set[str] = set()
    for ex in pool:
        if ex.id in seen:  # the leakage rule bans by id: two pool items under one id would let one through
            raise SiclError(f"pool id {ex.id!r} is used by two pool items (ids must be unique)")
        seen.add(ex.id)
        if not has_text(ex.target):
            raise SiclError(f"pool item {ex.id!r} has {'a blank' if ex.target else 'no'} target: "
                            "demonstrations need their answers")
    groups = _groups(pool)
    q_groups = [group_key(q) for q in queries]
    for q, g in zip(queries, q_groups, strict=True):
        if g not in groups:
            raise SiclError(f"query {q.id!r}: the pool has no {describe_group(g)} items to use as demonstrations")
    _warn_other_languages(queries, q_groups, pool, groups)
    q_hash = audio_hashes(queries, cfg.cache_dir, progress)
    p_hash = audio_hashes(pool, cfg.cache_dir, progress)
    guard = LeakageGuard(pool, p_hash, cfg.exclude_same_speaker)
    banned = [guard.banned(q, h) for q, h in zip(queries, q_hash, strict=True)]
    for q, g, b in zip(queries, q_groups, banned, strict=True):
        eligible = len(groups[g]) - len(b.intersection(groups[g]))
        if eligible < k:
            raise SiclError(f"k={k} is larger than the {eligible} eligible pool items for query {q.id!r} "
                            f"({describe_group(g)} items, minus the query itself"
                            f"{' and its speaker' if cfg.exclude_same_speaker else ''})")
    if retriever == "random":
        return [_random(q, groups[g], b, pool, k, cfg.seed) for q, g, b in zip(queries, q_groups, banned, strict=True)]

    # Only pool items of the queries' groups are embedded: a mixed pool costs nothing for unused tasks.
    used = sorted(i for g in set(q_groups) for i in groups[g])
    sub_pool, sub_hash = [pool[i] for i in used], [p_hash[i] for i in used]
    if retriever in ("ticl", "ticl+"):
        q_vec, sub_vec = _text_vectors(queries, q_hash, sub_pool, cfg, labeler, embedder, progress, info)
    else:
        q_vec, sub_vec = _audio_vectors(queries, q_hash, sub_pool, sub_hash, cfg, audio_embedder, progress)
    p_vec = np.zeros((len(pool), sub_vec.shape[1]), np.float32)
    p_vec[used] = sub_vec
    depth = k
    if retriever == "ticl+":
        depth = max(k, cfg.rerank_depth if cfg.rerank_depth is not None else k * cfg.rerank_factor)
    ranked = _knn(q_vec, p_vec, q_groups, groups, banned, depth, cfg.index, [ex.id for ex in pool])
    if retriever == "ticl+":
        ranked = _rerank_by_audio(ranked, queries, q_hash, pool, p_hash, cfg, audio_embedder, progress)
    return [[(pool[j].id, float(s)) for j, s in row[:k]] for row in ranked]


# ------------------------------------------------------------------------------------------- grouping
def group_key(ex: Example) -> tuple[str, str | None]:
    """Which pool items can be a query's demonstrations: same task, and for ST the same target language
    (compared without case and ``_``/``-`` differences: ``pt_BR`` is ``pt-br``; ``de`` and ``de-AT`` differ)."""
    if ex.task != "st":
        return ex.task, None
    lang = (ex.target_lang or "").strip().lower().replace("_", "-")
    return ex.task, lang or None


def describe_group(key: tuple[str, str | None]) -> str:
    task, lang = key
    return f"{task} (into {lang})" if lang else task


def _groups(pool: Sequence[Example]) -> dict[tuple[str, str | None], list[int]]:
    out: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for i, ex in enumerate(pool):
        out[group_key(ex)].append(i)
    return dict(out)


def _warn_other_languages(queries: Sequence[Example], q_groups: list, pool: Sequence[Example],
                          groups: dict[tuple[str, str | None], list[int]]) -> None:
    """Demonstrations come from the query's task (module docstring), whatever their language; one line on stderr
    when speech queries have no pool item in their own (source) language, so such a run is not a surprise."""
    langs = {g: {base_lang(pool[i].lang) for i in members} for g, members in groups.items()}
    lonely = [q for q, g in zip(queries, q_groups, strict=True)
              if q.task in ("asr", "st") and base_lang(q.lang) not in langs[g]]
    if lonely:
        q = lonely[0]
        others = ", ".join(sorted(langs[group_key(q)]))
        one = len(lonely) == 1
        print(f"sicl: warning: {len(lonely)} {q.task} {'query' if one else 'queries'} (e.g. {q.id!r}, lang "
              f"{q.lang!r}) {'has' if one else 'have'} no pool item in {'its' if one else 'their'} language; "
              f"{'its' if one else 'their'} demonstrations are in {others}",
              file=sys.stderr)


def retrieval_text(ex: Example) -> str | None:
    """The gold text an item is matched by (module docstring): pool side, and ``gold`` queries."""
    if ex.task in ("asr", "st"):
        return ex.text_for_retrieval
    return ex.question


# ----------------------------------------------------------------------------------------- retrievers
def _random(q: Example, members: list[int], banned: set[int], pool: Sequence[Example], k: int,
            seed: int) -> Demos:
    rng = np.random.default_rng([seed, zlib.crc32(q.id.encode("utf-8"))])
    out: Demos = []
    for j in rng.permutation(len(members)):
        row = members[int(j)]
        if row not in banned:
            out.append((pool[row].id, 0.0))
            if len(out) == k:
                break
    return out


def check_readable(embedder: Any, texts: Sequence[str], default: bool) -> Any:
    """The text embedder to use for a pool: ``embedder`` itself when its vocabulary covers the pool's texts
    (:meth:`~sicl.retrieval.embed.TextEmbedder.unreadable`). When it misses most of at least half of them (a
    Thai pool and the English all-MiniLM-L6-v2: every text would be one unknown token and every query would get
    the same, arbitrary demonstrations), the default embedder gives way to ``char-tfidf`` (any script) with a
    warning on stderr, and an embedder the user named is an error saying what to use instead."""
    check = getattr(embedder, "unreadable", None)
    flags = check(texts) if callable(check) else None
    if not flags:
        return embedder
    bad = [t for t, f in zip(texts, flags, strict=True) if f]
    filled = sum(1 for t in texts if t.strip())
    if not bad or len(bad) * 2 < filled:
        return embedder
    from sicl.retrieval.embed import CHAR_TFIDF, make_text_embedder

    example = bad[0] if len(bad[0]) <= 40 else bad[0][:40] + "..."
    name = getattr(embedder, "name", type(embedder).__name__)
    what = (f"text embedder {name!r} does not know the script of {len(bad)} of {filled} pool texts "
            f"(e.g. {example!r}): their vectors would all be alike")
    if not default:
        raise SiclError(f"{what}; use --embedder {CHAR_TFIDF} (any script) or a multilingual sentence-transformers "
                        "model folder")
    print(f"sicl: warning: {what}; retrieving with {CHAR_TFIDF} instead (--embedder chooses another)",
          file=sys.stderr)
    return make_text_embedder(CHAR_TFIDF)


def _text_vectors(queries, q_hash, pool, cfg, labeler, embedder, progress,
                  info=None) -> tuple[np.ndarray, np.ndarray]:
    from sicl.retrieval.embed import embed_texts, make_text_embedder
    from sicl.retrieval.pseudo_label import make_labeler, pseudo_labels

    for ex in pool:
        if not retrieval_text(ex):
            what = "question" if ex.task in ("sqa", "aqa") else ("target" if ex.task == "asr" else "transcript")
            raise SiclError(f"pool item {ex.id!r} has no {what} to retrieve by")
    q_text: list[str | None] = [None if q.task in ("asr", "st") else retrieval_text(q) for q in queries]
    speech = [i for i, q in enumerate(queries) if q.task in ("asr", "st")]
    missing_q = [q.id for q, t in zip(queries, q_text, strict=True) if t is None and q.task not in ("asr", "st")]
    if missing_q:
        raise SiclError(f"query {missing_q[0]!r} has no question to retrieve by")
    # the embedder first: a name that cannot load, or one that cannot read the pool's script, is an error
    # before minutes of pseudo-labelling
    default = embedder is None and cfg.embedder is None
    embedder = embedder or make_text_embedder(cfg.embedder, allow_download=cfg.allow_download, device=cfg.device)
    pool_text = [retrieval_text(ex) or "" for ex in pool]
    embedder = check_readable(embedder, pool_text, default)
    if info is not None:
        info["text_embedder"] = getattr(embedder, "name", type(embedder).__name__)
    if speech:
        labeler = labeler or make_labeler(cfg.pseudo_labeler, cfg.model, cfg.max_new_tokens, cfg.allow_download,
                                        cfg.device)
        labels = pseudo_labels([queries[i] for i in speech], [q_hash[i] for i in speech], labeler,
                               cfg.cache_dir, cfg.batch_size, progress)
        for i, text in zip(speech, labels, strict=True):
            q_text[i] = text
    if hasattr(embedder, "fit"):  # a lexical embedder learns its IDF from the texts it searches
        embedder.fit(pool_text)
    p_vec = embed_texts(pool_text, embedder, cfg.cache_dir, progress=progress)
    q_vec = embed_texts([t or "" for t in q_text], embedder, cfg.cache_dir, progress=progress)
    return q_vec, p_vec


def _audio_embedder(cfg: RetrievalConfig, audio_embedder: Any) -> Any:
    from sicl.retrieval.embed import AudioEmbedder

    return audio_embedder or AudioEmbedder(cfg.model, cfg.allow_download, device=cfg.device)


def _audio_vectors(queries, q_hash, pool, p_hash, cfg, audio_embedder, progress) -> tuple[np.ndarray, np.ndarray]:
    from sicl.retrieval.embed import embed_audio

    emb = _audio_embedder(cfg, audio_embedder)
    q_vec = embed_audio(queries, q_hash, emb, cfg.cache_dir, cfg.batch_size, progress)
    p_vec = embed_audio(pool, p_hash, emb, cfg.cache_dir, cfg.batch_size, progress)
    return q_vec, p_vec


def _knn(q_vec: np.ndarray, p_vec: np.ndarray, q_groups: list, groups: dict, banned: list[set[int]],
         depth: int, index_kind: str, pool_ids: Sequence[str]) -> list[list[tuple[int, float]]]:
    """Per query, up to ``depth`` (pool row, score) best first, banned rows removed. Each group gets its
    own index; the search asks for ``depth`` plus the most rows any query of the group has banned, so
    filtering never leaves a query short (exact index). An approximate index that still comes back
    short for a query is redone exactly for that query.

    Ties (pool items with the same text or audio have identical vectors) go to the smaller pool id, so a
    query's top k is the prefix of its top k + 1 (evaluation takes prefixes of one retrieval at the largest k),
    does not change when the pool is reordered, and never depends on the order FAISS's heap happens to return
    equal scores in: the hits are rescored one by one in float64 and sorted by (-score, pool id), and a query
    whose near-ties reach past what the index returned is ranked over its whole group instead (:func:`_rank_all`)."""
    out: list[list[tuple[int, float]]] = [[] for _ in q_groups]
    by_group: dict[Any, list[int]] = defaultdict(list)
    for qi, g in enumerate(q_groups):
        by_group[g].append(qi)
    for g, qis in by_group.items():
        members = np.asarray(groups[g])
        vecs = p_vec[members]
        index = ix.build_index(vecs, index_kind)
        extra = max(len(banned[qi].intersection(groups[g])) for qi in qis)
        want = min(len(members), depth + extra + 1)  # one more: a tie at the cut shows as one with the last row
        scores, rows = ix.search(index, q_vec[qis], want)
        for n, qi in enumerate(qis):
            need = min(depth, len(members) - len(banned[qi].intersection(groups[g])))
            got = [(r, float(s)) for r, s in zip(rows[n].tolist(), scores[n].tolist(), strict=True) if r >= 0]
            hits = [(r, s) for r, s in got if int(members[r]) not in banned[qi]]
            last = hits[min(depth, len(hits)) - 1][1] if hits else None  # the score the top depth must reach
            if len(hits) < need or (len(got) < len(members) and last is not None and last - _TIE <= got[-1][1]):
                # too few (approximate index), or a near-tie with the last row returned: rows not returned may tie
                out[qi] = _rank_all(vecs, q_vec[qi], members, banned[qi], depth, pool_ids)
            else:
                out[qi] = _order(vecs, q_vec[qi], members, [r for r, _ in hits], depth, pool_ids)
    return out


#: float32 inner products of unit vectors are good to about 1e-6; scores this close may be the same float64 score
_TIE = 1e-5


def _order(vecs: np.ndarray, q: np.ndarray, members: np.ndarray, local: list[int] | np.ndarray,
           depth: int, pool_ids: Sequence[str]) -> list[tuple[int, float]]:
    """The ``depth`` best of the group rows ``local`` by (-score, pool id). Scores are recomputed per row in
    float64 (an element-wise product summed along the row), so identical vectors get bit-identical scores,
    whichever BLAS kernel or batch position scored them first."""
    local = np.asarray(local, dtype=np.int64)
    sims = (vecs[local].astype(np.float64) * np.asarray(q, np.float64)[None, :]).sum(axis=1)
    order = sorted(range(len(local)), key=lambda i: (-sims[i], pool_ids[int(members[local[i]])]))
    return [(int(members[local[i]]), float(sims[i])) for i in order[:depth]]


def _rank_all(vecs: np.ndarray, q: np.ndarray, members: np.ndarray, banned: set[int],
              depth: int, pool_ids: Sequence[str]) -> list[tuple[int, float]]:
    """:func:`_order` over every eligible row of the group: exact, for queries whose ties the index cut through."""
    approx = vecs @ np.asarray(q, vecs.dtype)  # the whole group at once: no copy of its vectors per query
    if banned:
        approx[np.isin(members, np.fromiter(banned, np.int64, len(banned)))] = -np.inf
    n_ok = int(np.isfinite(approx).sum())
    if n_ok > depth:
        cut = np.partition(approx, len(approx) - depth)[len(approx) - depth]
        eligible = np.flatnonzero(approx >= cut - _TIE)  # every row that may rank in the top depth, ties included
    else:
        eligible = np.flatnonzero(np.isfinite(approx))
    return _order(vecs, q, members, eligible, depth, pool_ids)


def _rerank_by_audio(ranked, queries, q_hash, pool, p_hash, cfg, audio_embedder, progress):
    """TICL+: reorder each query's text candidates by audio cosine; ties keep the text order."""
    from sicl.retrieval.embed import embed_audio

    emb = _audio_embedder(cfg, audio_embedder)
    q_vec = embed_audio(queries, q_hash, emb, cfg.cache_dir, cfg.batch_size, progress)
    # Only candidates are embedded: a large pool never needs all its audio vectors for TICL+.
    cand = sorted({j for row in ranked for j, _ in row})
    c_vec = embed_audio([pool[j] for j in cand], [p_hash[j] for j in cand], emb, cfg.cache_dir,
                        cfg.batch_size, progress)
    where = {j: n for n, j in enumerate(cand)}
    out = []
    for qi, row in enumerate(ranked):
        sims = [float(c_vec[where[j]] @ q_vec[qi]) for j, _ in row]
        order = sorted(range(len(row)), key=lambda n: -sims[n])  # stable: ties keep the text order
        out.append([(row[n][0], sims[n]) for n in order])
    return out
