import numpy as np
import pytest

from sicl.retrieval.index import brute_force, build_index, normalize, search


def clustered(n: int, dim: int, centers: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim)).astype(np.float32)
    return c[rng.integers(centers, size=n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)


def test_exact_faiss_equals_numpy_brute_force():
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((700, 48)).astype(np.float32) * rng.uniform(0.1, 5, (700, 1)).astype(np.float32)
    queries = rng.standard_normal((60, 48)).astype(np.float32)
    scores, rows = search(build_index(pool, "exact"), queries, 10)
    ref_scores, ref_rows = brute_force(pool, queries, 10)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    # Scores are cosines: the vectors' scale must not matter.
    np.testing.assert_allclose(scores[:, 0], (normalize(queries) @ normalize(pool).T).max(1), atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_have_high_recall(kind):
    pool, queries = clustered(4000, 32, 40, 1), clustered(100, 32, 40, 2)
    _, approx = search(build_index(pool, kind), queries, 10)
    _, exact = brute_force(pool, queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall > 0.9


def test_k_is_capped_at_the_index_size_and_zero_vectors_are_safe():
    pool = np.zeros((3, 4), np.float32)
    pool[0, 0] = 1.0
    scores, rows = search(build_index(pool), np.ones((2, 4), np.float32), 10)
    assert rows.shape == (2, 3) and rows[0, 0] == 0 and np.isfinite(scores).all()
