"""Retrieval index benchmark: exact (IndexFlatIP) vs approximate (HNSW, IVF) KNN at pool scale.

    .venv/bin/python bench/retrieval.py                      # 100k pool, 10k queries, dim 384, k 10
    .venv/bin/python bench/retrieval.py --pool 20000 --queries 2000   # a quick look

Embeddings are random but clustered (like sentence embeddings of templated text: many near-duplicates
around topic centres), generated once and cached in ``--cache`` so repeated runs time only the index.
Reports build time, search time (median of ``--repeats``), queries per second and recall@k of each
approximate setting against the exact result, and ratios to exact. Machines here are shared and noisy:
compare the ratios of one run, not absolute seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sicl.retrieval.index import build_index, normalize, search  # noqa: E402


def embeddings(n_pool: int, n_queries: int, dim: int, centers: int, spread: tuple[float, float], seed: int,
               cache: Path) -> tuple:
    key = f"pool{n_pool}-q{n_queries}-d{dim}-c{centers}-sp{spread[0]:g}_{spread[1]:g}-s{seed}"
    path = cache / f"retrieval-{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["pool"], z["queries"], True
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim)).astype(np.float32)

    def draw(n: int) -> np.ndarray:
        # Spread within clusters varies, so some queries have tight neighbourhoods and some diffuse ones.
        spread_ = rng.uniform(*spread, (n, 1)).astype(np.float32)
        return normalize(c[rng.integers(centers, size=n)] + spread_ * rng.standard_normal((n, dim)).astype(np.float32))

    pool, queries = draw(n_pool), draw(n_queries)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, pool=pool, queries=queries)
    return pool, queries, False


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    k = exact.shape[1]
    return float(np.mean([len(set(a.tolist()) & set(e.tolist())) / k for a, e in zip(approx, exact, strict=True)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pool", type=int, default=100_000, help="pool vectors")
    p.add_argument("--queries", type=int, default=10_000, help="query vectors")
    p.add_argument("--dim", type=int, default=384, help="dimension (all-MiniLM-L6-v2: 384)")
    p.add_argument("--k", type=int, default=10, help="neighbours per query (recall@k)")
    p.add_argument("--centers", type=int, default=2000, help="clusters in the synthetic embeddings")
    p.add_argument("--spread", default="0.3,0.9",
                   help="noise scale range around a centre (centre norm ~1 per dim); larger: clusters overlap")
    p.add_argument("--repeats", type=int, default=3, help="search repeats (median reported)")
    p.add_argument("--threads", type=int, default=0, help="FAISS OpenMP threads (0: FAISS default)")
    p.add_argument("--hnsw-ef", default="64,128,256", help="HNSW efSearch values to try")
    p.add_argument("--ivf-nprobe", default="8,16,32", help="IVF nprobe values to try")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / ".cache",
                   help="folder for the generated embeddings")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()

    import faiss

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    pool, queries, cached = embeddings(args.pool, args.queries, args.dim, args.centers,
                                       tuple(float(x) for x in args.spread.split(",")), args.seed, args.cache)
    print(f"pool {len(pool):,} x {args.dim}, queries {len(queries):,}, k={args.k}, spread {args.spread}, "
          f"faiss {faiss.__version__}, "
          f"threads {faiss.omp_get_max_threads()}, embeddings {'from cache' if cached else 'generated'}")

    rows = []
    t = time.perf_counter()
    exact_index = build_index(pool, "exact")
    build = time.perf_counter() - t
    secs, (_, exact) = timed(lambda: search(exact_index, queries, args.k), args.repeats)
    rows.append({"index": "exact (IndexFlatIP)", "build_s": build, "search_s": secs, "recall": 1.0})
    for kind, param, values in (("hnsw", "efSearch", args.hnsw_ef), ("ivf", "nprobe", args.ivf_nprobe)):
        t = time.perf_counter()
        index = build_index(pool, kind)
        build = time.perf_counter() - t
        for v in (int(x) for x in values.split(",")):
            if kind == "hnsw":
                index.hnsw.efSearch = v
            else:
                index.nprobe = v
            secs, (_, rows_found) = timed(lambda index=index: search(index, queries, args.k), args.repeats)
            label = f"{kind} ({param}={v}" + (f", nlist={index.nlist})" if kind == "ivf" else ", M=32)")
            rows.append({"index": label, "build_s": build, "search_s": secs, "recall": recall(rows_found, exact)})
        del index

    base = rows[0]["search_s"]
    print(f"\n| index | build s | search s ({len(queries):,} q) | queries/s | search speed-up vs exact | recall@{args.k} |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        r["qps"] = len(queries) / r["search_s"]
        r["speedup"] = base / r["search_s"]
        print(f"| {r['index']} | {r['build_s']:.2f} | {r['search_s']:.2f} | {r['qps']:,.0f} | "
              f"{r['speedup']:.1f}x | {r['recall']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
