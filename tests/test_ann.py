"""kb.ann: exact index below the size threshold, IVF (or HNSW) above it with recall@10 >= 0.95, ids kept.

Vectors are random (clustered, like sentence embeddings of related clauses): recall is a
property of the index, not of the text, and this keeps the test to seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

import faiss  # noqa: E402

from kb import ann  # noqa: E402

DIM = 512


def clustered(n: int, seed: int, clusters: int = 400, spread: float = 0.6, dim: int = DIM) -> np.ndarray:
    """Return n unit vectors around `clusters` random centres (cosine to the centre ~0.85)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((n, dim)).astype(np.float32) * (spread / np.sqrt(dim))
    x = centres[rng.integers(0, clusters, n)] + noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def chunk_like_ids(n: int, seed: int) -> np.ndarray:
    """Return n distinct positive 63-bit ids, like kb.chunk.chunk_id_for makes."""
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(1 << 40, (1 << 63) - 1, size=n + 100, dtype=np.int64))[:n]
    return rng.permutation(ids)


def test_choose_index_kind_by_size():
    assert ann.choose_index_kind(0) == ann.FLAT
    assert ann.choose_index_kind(ann.EXACT_MAX_VECTORS) == ann.FLAT
    assert ann.choose_index_kind(ann.EXACT_MAX_VECTORS + 1) == ann.ANN_KIND
    assert ann.choose_index_kind(500, exact_max=100) == ann.ANN_KIND
    assert ann.ivf_lists(1_000_000) == 2048 and ann.ivf_probe(2048) == 64
    assert ann.ivf_lists(10) == ann.IVF_MIN_LISTS and ann.ivf_lists(10**9) == ann.IVF_MAX_LISTS


def test_below_threshold_is_exact_and_returns_the_given_ids():
    x = clustered(3000, seed=1)
    ids = chunk_like_ids(3000, seed=2)
    index = ann.build_ann(x, ids, DIM)
    assert ann.index_kind(index) == ann.FLAT
    q = clustered(20, seed=3)
    ann.configure_search(index, 10)
    sims, got = index.search(q, 10)
    exact = np.argsort(-(q @ x.T), axis=1)[:, :10]
    assert np.array_equal(got, ids[exact])
    assert np.allclose(sims, np.take_along_axis(q @ x.T, exact, axis=1), atol=1e-4)


def recall_at_10(index, x: np.ndarray, ids: np.ndarray, k: int) -> float:
    rng = np.random.default_rng(6)
    dim = x.shape[1]
    q = x[rng.integers(0, len(x), 300)] + rng.standard_normal((300, dim)).astype(np.float32) * (0.3 / np.sqrt(dim))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    exact = faiss.IndexFlatIP(dim)
    exact.add(x)
    _, truth = exact.search(q, 10)
    ann.configure_search(index, k)
    _, got = index.search(q, k)
    assert set(got.ravel()) - {-1} <= set(ids)
    return float(np.mean([len(set(got[i, :10]) & set(ids[truth[i]])) / 10 for i in range(len(q))]))


# (kind, vectors, dimension): the default kind at full width; HNSW, slower to build, smaller
@pytest.mark.parametrize("kind, n, dim", [(None, 20_000, DIM), (ann.HNSW, 10_000, 256)])
def test_above_lowered_threshold_ann_recall_at_10(tmp_path, kind, n, dim):
    x = clustered(n, seed=4, dim=dim)
    ids = chunk_like_ids(n, seed=5)
    index = ann.build_ann(x, ids, dim, exact_max=5_000, kind=kind)
    assert ann.index_kind(index) == (kind or ann.ANN_KIND)
    # what kb/index.py does: written to disk, read back by the server
    path = tmp_path / "vectors.faiss"
    faiss.write_index(index, str(path))
    index = faiss.read_index(str(path))
    assert ann.index_kind(index) == (kind or ann.ANN_KIND)
    assert np.allclose(index.reconstruct(int(ids[123])), x[123], atol=1e-6)
    for k in (10, 200):  # what a caller asks, and what kb/search.py's dense channel asks
        recall = recall_at_10(index, x, ids, k)
        assert recall >= 0.95, (k, recall)


def test_configure_search_sets_the_search_beam():
    x = clustered(600, seed=7)
    index = ann.build_ann(x, np.arange(600, dtype=np.int64), DIM, kind=ann.HNSW)
    ann.configure_search(index, 300)
    assert faiss.downcast_index(index.index).hnsw.efSearch == 600
    assert faiss.omp_get_max_threads() == ann.SEARCH_THREADS
    ivf = ann.build_ann(clustered(5000, seed=8), np.arange(5000, dtype=np.int64), DIM, kind=ann.IVF)
    inner = faiss.downcast_index(ivf.index)
    inner.nprobe = 1
    ann.configure_search(ivf, 10)
    assert inner.nprobe == ann.ivf_probe(inner.nlist)


def test_empty_and_mismatched_input():
    index = ann.build_ann(np.zeros((0, DIM), np.float32), np.zeros(0, np.int64), DIM)
    assert index.ntotal == 0
    _, got = index.search(clustered(1, seed=8), 5)
    assert (got == -1).all()
    with pytest.raises(ValueError, match="3 vectors but 2 ids"):
        ann.build_ann(clustered(3, seed=9), np.arange(2), DIM)
    with pytest.raises(ValueError, match="unknown index kind"):
        ann.build_ann(clustered(3, seed=9), np.arange(3), DIM, kind="pq")


def test_a_split_scan_finds_what_the_index_finds():
    # kb.ann.search scans a large exact index in parts, side by side: same scores, same vectors (tied vectors
    # may come in another order; a tie at the k-th place may bring another of the tied vectors)
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((ann.SPLIT_MIN_VECTORS + 1000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[100] = vectors[-1]
    vectors[200] = vectors[-1]  # three identical vectors
    ids = rng.permutation(10 ** 6)[:len(vectors)].astype(np.int64)
    index = ann.build_ann(vectors, ids, 32, kind="flat")
    with ThreadPoolExecutor(4) as pool:
        for t in range(40):
            query = vectors[-1][None] if t % 4 == 0 else rng.standard_normal((1, 32)).astype(np.float32)
            for k in (1, 3, 10, 400):
                want_scores, want_ids = index.search(query, k)
                scores, found = ann.search(index, query, k, pool)
                assert np.array_equal(scores, want_scores)
                last = want_scores[0][-1]
                assert set(found[0][scores[0] > last]) == set(want_ids[0][want_scores[0] > last])
                every_score, every_id = index.search(query, len(vectors))
                tied = set(every_id[0][every_score[0] == last])
                assert set(found[0][scores[0] == last]) <= tied
    assert ann.search(index, vectors[:1], 5)[1][0][0] == ids[0]  # without a pool: the index's own search
