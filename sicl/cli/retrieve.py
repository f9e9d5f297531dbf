"""`sicl retrieve --queries Q.jsonl --pool P.jsonl --k N --out EP.jsonl`: in-context demonstrations per query.

Writes one line per query, ``{"id": ..., "demos": [pool ids, best first], "scores": [...]}``, and a sidecar
``EP.jsonl.meta.json`` (settings, inputs, package versions). Methods, leakage rule and caches:
docs/retrieval.md. Training and evaluation call the same :func:`sicl.retrieval.retrievers.retrieve`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from sicl.cli import non_negative_int, positive_int, threads_arg
from sicl.data.audio import file_hash
from sicl.data.manifest import read_manifest
from sicl.retrieval.index import INDEX_KINDS
from sicl.retrieval.retrievers import RETRIEVERS, RetrievalConfig, retrieve

#: shown at the end of --help
EXAMPLES = [
    'sicl retrieve --data runs/world/child-science/test.jsonl --pool runs/world/child-science/pool.jsonl --k 3 --out runs/ret.jsonl',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = RetrievalConfig()
    parser.add_argument("--data", "--queries", dest="queries", required=True, metavar="M.jsonl",
                        help="manifest of queries (--queries is the old name)")
    parser.add_argument("--pool", required=True, metavar="M.jsonl",
                        help="manifest of demonstration candidates (every row needs a target); may be the "
                             "queries file: a query is never its own demonstration")
    parser.add_argument("--k", type=int, required=True, help="demonstrations per query")
    parser.add_argument("--out", required=True, metavar="EP.jsonl", help="retrieval file to write")
    parser.add_argument("--retriever", choices=RETRIEVERS, default=d.retriever, help="default: %(default)s")
    parser.add_argument("--pseudo-labeler", default=d.pseudo_labeler, metavar="P",
                        help="query text for ticl/ticl+: backbone | gold | hf-asr:<model> | "
                             "file:<predictions.jsonl> (default: %(default)s)")
    parser.add_argument("--embedder", default=None, metavar="E",
                        help="text embedder: sentence-transformers name or folder, or char-tfidf[:dim] (character "
                             "n-gram TF-IDF fitted on the pool) (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--model", default=d.model, metavar="M",
                        help="backbone for pseudo-labels and audio vectors (default: %(default)s)")
    parser.add_argument("--index", choices=INDEX_KINDS, default=d.index,
                        help="exact (default) or an approximate index for very large pools")
    parser.add_argument("--rerank-factor", type=positive_int, default=d.rerank_factor,
                        help="ticl+: rerank the top k x this many text neighbours (default: %(default)s)")
    parser.add_argument("--rerank-depth", type=positive_int, default=None,
                        help="ticl+: rerank this many text neighbours instead (the TICL+ paper also uses 300)")
    parser.add_argument("--exclude-same-speaker", action="store_true",
                        help="never pick a demonstration by the query's speaker")
    parser.add_argument("--seed", type=non_negative_int, default=d.seed, help="seed of the random retriever")
    parser.add_argument("--max-new-tokens", type=positive_int, default=d.max_new_tokens,
                        help="pseudo-label length limit in tokens (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size,
                        help="clips per model batch (default: %(default)s)")
    parser.add_argument("--device", default=d.device,
                        help="where the pseudo-labeler and embedders run: auto (CUDA when present, bf16) | cpu | "
                             "cuda:N (default: %(default)s)")
    parser.add_argument("--threads", type=threads_arg, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--cache-dir", default=None, help="cache root (default: $SICL_CACHE or ~/.cache/sicl)")
    parser.add_argument("--allow-download", action="store_true", help="allow hub downloads of named models")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = RetrievalConfig(retriever=args.retriever, k=args.k, pseudo_labeler=args.pseudo_labeler,
                          model=args.model, embedder=args.embedder, index=args.index,
                          rerank_factor=args.rerank_factor, rerank_depth=args.rerank_depth,
                          exclude_same_speaker=args.exclude_same_speaker,
                          seed=args.seed, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                          cache_dir=args.cache_dir, allow_download=args.allow_download, device=args.device)
    from pathlib import Path

    from sicl.guard import output_lock

    out = Path(args.out)
    if out.is_dir():
        from sicl.errors import SiclError

        raise SiclError(f"--out {out}: is a folder; give a file name such as {out / 'retrievals.jsonl'}")
    queries = read_manifest(args.queries)
    pool = read_manifest(args.pool, require_target=True)
    with output_lock(out.parent, "sicl retrieve", name=f".{out.name}.lock"):
        return _retrieve_and_write(args, cfg, queries, pool)


def _retrieve_and_write(args: argparse.Namespace, cfg: RetrievalConfig, queries: list, pool: list) -> int:
    start = time.perf_counter()
    used: dict = {}
    results = retrieve(queries, pool, config=cfg, progress=True, info=used)

    from sicl.retrieval.results import write_retrievals  # after the work: nothing is written on failure

    meta = {"settings": dataclasses.asdict(cfg),
            "queries": {"path": args.queries, "sha1": file_hash(args.queries), "rows": len(queries)},
            "pool": {"path": args.pool, "sha1": file_hash(args.pool), "rows": len(pool)},
            "seconds": round(time.perf_counter() - start, 3), **used}
    write_retrievals(args.out, [q.id for q in queries], results, meta)
    print(f"sicl retrieve: {len(queries)} queries x k={cfg.k} ({cfg.retriever}) -> {args.out}", file=sys.stderr)
    return 0
