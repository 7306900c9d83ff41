"""The dense channel's FAISS index: exact inner product up to a size threshold, IVF (or HNSW) above it.

Every index is a faiss.IndexIDMap2, so searches return chunk ids (stable 63-bit ints).
Thresholds and parameters are measured by scripts/scale.py on this project's vectors.
"""

from __future__ import annotations

import math
import os

import numpy as np

# Exact search scans every vector: ~0.1 µs per vector and query on one core, so 100k
# vectors cost ~10 ms, rebuilds cost nothing and recall is 1. Above it, an ANN index.
EXACT_MAX_VECTORS = 100_000

FLAT = "flat"
IVF = "ivf"
HNSW = "hnsw"
# The ANN kind used above the threshold: IVF. Measured on the shared corpora grown to
# 1.1M chunks (scripts/scale.py, 2 cores, every clause with near-duplicates): 2048
# lists probed 64 at a time give recall@10 0.97 at ~8 ms a query, built in ~1.5 min.
# HNSW (M=16, efConstruction=128) answers in ~1 ms with recall@10 ~0.98 at 114k
# chunks, but took 84 s to build there, i.e. ~15 min at 1.1M on 2 cores, and
# kb/index.py rebuilds the dense index on every build; it also holds a graph on top of
# the vectors. HNSW stays available (kind="hnsw") for indexes that are rarely rebuilt.
ANN_KIND = IVF

# IVF: a power of two near 2*sqrt(n) lists (within [IVF_MIN_LISTS, IVF_MAX_LISTS]),
# trained on up to IVF_TRAIN_PER_LIST vectors per list; a query scans 1/32 of the lists
# and at least IVF_MIN_PROBE (at 1024 lists and 64 probes recall@10 was 0.945).
IVF_MIN_LISTS = 64
IVF_MAX_LISTS = 8192
IVF_TRAIN_PER_LIST = 64
IVF_PROBE_FRACTION = 1 / 32
IVF_MIN_PROBE = 64
IVF_SEED = 1234

# HNSW (on request): graph degree and build beam chosen for recall on clustered
# vectors; the search beam is at least HNSW_EF_SEARCH_MIN and twice the results asked.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
HNSW_EF_SEARCH_MIN = 256

# One query at a time: faiss's OpenMP pool and torch's (two separate libgomp copies)
# spin-wait on the same cores, which turns a 1 ms search into 20-130 ms. Requests get
# their parallelism from the server's threads instead.
SEARCH_THREADS = 1


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a declared dependency
        raise ImportError("the dense channel needs faiss: pip install faiss-cpu") from exc
    return faiss


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def choose_index_kind(n: int, exact_max: int = EXACT_MAX_VECTORS) -> str:
    """Return "flat" (exact) for up to `exact_max` vectors, else ANN_KIND ("ivf")."""
    return FLAT if n <= exact_max else ANN_KIND


def ivf_lists(n: int) -> int:
    """Return the number of IVF lists for n vectors: a power of two near 2*sqrt(n), within the bounds."""
    lists = 2 ** round(math.log2(max(1.0, 2 * math.sqrt(n))))
    return int(min(IVF_MAX_LISTS, max(IVF_MIN_LISTS, lists)))


def ivf_probe(lists: int) -> int:
    """Return how many IVF lists a query scans."""
    return int(min(lists, max(IVF_MIN_PROBE, round(lists * IVF_PROBE_FRACTION))))


def build_ann(vectors: np.ndarray, ids: np.ndarray, dim: int, *, exact_max: int = EXACT_MAX_VECTORS,
              kind: str | None = None, threads: int | None = None):
    """Return a faiss.IndexIDMap2 over `vectors` (L2-normalised, so inner product is cosine).

    `search(q, k)` on the result returns the given `ids`. The inner index is IndexFlatIP,
    IndexIVFFlat or IndexHNSWFlat (all inner product), as `choose_index_kind(len(vectors),
    exact_max)` decides unless `kind` says. `threads` is the OpenMP thread count while
    building (default: all usable cores); the process-wide setting is restored after.
    """
    faiss = _faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
    ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    if vectors.shape[0] != ids.shape[0]:
        raise ValueError(f"{vectors.shape[0]} vectors but {ids.shape[0]} ids")
    n = vectors.shape[0]
    kind = kind or choose_index_kind(n, exact_max)
    if kind not in (FLAT, IVF, HNSW):
        raise ValueError(f"unknown index kind {kind!r}; use {FLAT!r}, {IVF!r} or {HNSW!r}")
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads or _usable_cores())
    try:
        if kind == FLAT:
            inner = faiss.IndexFlatIP(dim)
        elif kind == HNSW:
            inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH_MIN
        else:
            lists = ivf_lists(n)
            inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
            inner.cp.seed = IVF_SEED
            if n:
                rng = np.random.default_rng(IVF_SEED)
                train = vectors if n <= lists * IVF_TRAIN_PER_LIST else vectors[
                    np.sort(rng.choice(n, lists * IVF_TRAIN_PER_LIST, replace=False))]
                inner.train(train)
            inner.nprobe = ivf_probe(lists)
        index = faiss.IndexIDMap2(inner)
        if n:
            index.add_with_ids(vectors, ids)
        if kind == IVF and n:
            inner.make_direct_map()  # so the index can give a chunk's vector back by id
    finally:
        faiss.omp_set_num_threads(previous)
    return index


def _inner(index):
    faiss = _faiss()
    return faiss.downcast_index(index.index) if hasattr(index, "id_map") else faiss.downcast_index(index)


def index_kind(index) -> str:
    """Return "flat", "ivf", "hnsw" or the inner class name of a faiss index (IDMap-wrapped or not)."""
    faiss = _faiss()
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        return HNSW
    if isinstance(inner, faiss.IndexIVF):
        return IVF
    if isinstance(inner, faiss.IndexFlat):
        return FLAT
    return type(inner).__name__


def configure_search(index, k: int) -> None:
    """Prepare `index` for single-query searches returning `k` results.

    Sets faiss's OpenMP threads to SEARCH_THREADS (process-wide: see the constant's
    note), HNSW's efSearch to max(HNSW_EF_SEARCH_MIN, 2k) and IVF's nprobe to its
    default for the list count; nothing else for exact indexes. Cheap; call it before
    searching (idempotent).
    """
    faiss = _faiss()
    if faiss.omp_get_max_threads() != SEARCH_THREADS:
        faiss.omp_set_num_threads(SEARCH_THREADS)
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        ef = max(HNSW_EF_SEARCH_MIN, 2 * int(k))
        if inner.hnsw.efSearch != ef:
            inner.hnsw.efSearch = ef
    elif isinstance(inner, faiss.IndexIVF):
        probe = ivf_probe(inner.nlist)
        if inner.nprobe != probe:
            inner.nprobe = probe


# An exact index of at least SPLIT_MIN_VECTORS is scanned in one row range per usable core, side by side
# (one range in the caller's thread, the others in `pool`): a question reads every vector, and one core
# streams them at about 8 GB/s. Measured on the 116-document index (13,544 x 384): 2.6 ms on one core,
# 1.4 ms split in two. Each range gives its own k best; the merge keeps the k best, ties by row.
SPLIT_MIN_VECTORS = 4096


def search(index, query: np.ndarray, k: int, pool=None) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores, ids), each shape (1, k), of the k best vectors for one query, as index.search does;
    an exact index this large is scanned in parts, in `pool` (a concurrent.futures executor) and here."""
    faiss = _faiss()
    configure_search(index, k)
    query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, index.d)
    inner = _inner(index)
    n = int(index.ntotal)
    parts = min(_usable_cores(), 8) if pool is not None else 1
    if parts < 2 or n < SPLIT_MIN_VECTORS or not isinstance(inner, faiss.IndexFlat) or not hasattr(index, "id_map"):
        return index.search(query, k)
    vectors = faiss.rev_swig_ptr(inner.get_xb(), n * inner.d).reshape(n, inner.d)  # the index's own memory
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)
    ranges = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))

    def scan(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = faiss.knn(query, vectors[a:b], min(k, b - a), faiss.METRIC_INNER_PRODUCT)
        return scores[0], rows[0] + a

    futures = [pool.submit(scan, a, b) for a, b in ranges[1:]]
    found = [scan(*ranges[0])] + [f.result() for f in futures]
    scores = np.concatenate([s for s, _ in found])
    rows = np.concatenate([r for _, r in found])
    best = np.lexsort((rows, -scores))[:k]  # best score first, ties by row
    ids = faiss.rev_swig_ptr(index.id_map.data(), n)
    return scores[best][None, :], np.asarray(ids[rows[best]], dtype=np.int64)[None, :]
