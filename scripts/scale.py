"""Scale test: the shared-corpora index grown to N clauses, searched with the shipped code; table + docs/scale.png.

    .venv/bin/python scripts/scale.py --sizes 100000,1000000      # ~20 min on 2 cores

Synthetic growth, said in the output too: the real index (corpus/ + ../shared/corpora) is
copied whole as often as needed to reach N clauses, each copy with its own clause and
chunk ids. The first copy keeps the real vectors (the real encoder on the real chunks);
every other copy gets them perturbed by Gaussian noise and re-normalised. BM25 is BM25
over the repeated token lists (built by tiling the real matrices with the IDF of the grown
corpus; checked equal to bm25s.index on the repeated lists). Each size becomes a real
index folder (store.sqlite, bm25 folders, vectors.faiss from kb.ann.build_ann, manifest)
that a fresh process loads through kb.service.KnowledgeBase and searches as the server
would: latency per channel, recall@10 of the ANN against exact search, memory, build time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPORA = (ROOT / "corpus", SHARED / "corpora" / "gov-work-reports", SHARED / "corpora" / "cpc-congress-reports")
GOLD = SHARED / "eval" / "dev.jsonl"
MODES = ("lexical", "dense", "hybrid")
MASK63 = (1 << 63) - 1


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


from bench import p50_p95  # noqa: E402  (same percentile definition as the benchmark table)


def current_build(index_dir: Path) -> Path:
    return Path(index_dir) / "builds" / (Path(index_dir) / "CURRENT").read_text(encoding="utf-8").strip()


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def rss_bytes() -> tuple[int, int]:
    """Return (current RSS via psutil, peak RSS VmHWM) of this process."""
    import psutil

    peak = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return psutil.Process().memory_info().rss, peak


def copy_key(copy: int) -> int:
    """Return the 63-bit constant a copy's chunk ids are XORed with (0 for the real copy)."""
    if copy == 0:
        return 0
    x = (copy * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)  # splitmix64 finaliser: well-spread bits
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (x ^ (x >> 31)) & MASK63


# ---------------------------------------------------------------------------- growing the store
def grow_store(base_db: Path, out_db: Path, copies: int) -> dict:
    """Write a store with `copies` copies of every clause and chunk (varied ids); return counts."""
    db = sqlite3.connect(out_db)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("ATTACH DATABASE ? AS base", (f"file:{base_db}?mode=ro",))
    schema = db.execute("SELECT type, name, sql FROM base.sqlite_master WHERE sql IS NOT NULL "
                        "AND name NOT LIKE 'sqlite_%'").fetchall()
    for kind, _, sql in schema:
        if kind == "table":
            db.execute(sql)
    n_clauses = db.execute("SELECT COUNT(*) FROM base.clauses").fetchone()[0]
    n_chunks = db.execute("SELECT COUNT(*) FROM base.chunks").fetchone()[0]
    clause_ord = db.execute("SELECT COALESCE(MAX(ord), 0) + 1 FROM base.clauses").fetchone()[0]
    chunk_ord = db.execute("SELECT COALESCE(MAX(ord), 0) + 1 FROM base.chunks").fetchone()[0]
    tables = [name for kind, name, _ in schema if kind == "table"]
    for table in tables:
        cols = [r[1] for r in db.execute(f"PRAGMA base.table_info({table})")]
        if table not in ("clauses", "chunks"):
            db.execute(f"INSERT INTO main.{table} SELECT * FROM base.{table}")
            continue
        for copy in range(copies):
            key = copy_key(copy)
            exprs = []
            for col in cols:
                expr = col
                if table == "clauses":
                    expr = {"row": f"row + {copy * n_clauses}",
                            "clause_id": f"clause_id || '~{copy}'" if copy else "clause_id",
                            "ord": f"ord + {copy * clause_ord}"}.get(col, col)
                else:
                    expr = {"row": f"row + {copy * n_chunks}",
                            # XOR as (a | b) - (a & b): SQLite has no ^, and this cannot overflow
                            "chunk_id": f"(chunk_id | {key}) - (chunk_id & {key})" if copy else "chunk_id",
                            "clause_row": f"clause_row + {copy * n_clauses}",
                            "ord": f"ord + {copy * chunk_ord}"}.get(col, col)
                exprs.append(f"{expr} AS {col}" if expr != col else col)
            db.execute(f"INSERT INTO main.{table} ({', '.join(cols)}) SELECT {', '.join(exprs)} "
                       f"FROM base.{table} ORDER BY row")
        db.commit()
    for kind, _, sql in schema:
        if kind != "table":
            db.execute(sql)
    db.commit()
    db.execute("DETACH DATABASE base")
    db.close()
    return {"clauses": n_clauses * copies, "chunks": n_chunks * copies, "base_clauses": n_clauses,
            "base_chunks": n_chunks}


# ---------------------------------------------------------------------------- growing BM25
def lucene_idf(df: np.ndarray, n: int) -> np.ndarray:
    return np.log1p((n - df + 0.5) / (df + 0.5))


def tile_bm25(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_docs: int, copies: int):
    """Return (data, indices, indptr) of BM25 over `copies` repeats of the corpus, from the single corpus's CSC.

    With whole copies the document lengths and their average are unchanged, so each
    score's term-frequency part is too; only the IDF moves (df and N both scale).
    """
    df = np.diff(indptr).astype(np.int64)
    factor = (lucene_idf(df * copies, n_docs * copies) / np.maximum(lucene_idf(df, n_docs), 1e-12)).astype(np.float32)
    token = np.repeat(np.arange(df.size), df)
    local = np.arange(data.size, dtype=np.int64) - indptr[token]
    scaled = data * factor[token]
    start = indptr[token] * copies + local
    out_data = np.empty(data.size * copies, dtype=data.dtype)
    out_indices = np.empty(data.size * copies, dtype=np.int32 if n_docs * copies < 2**31 else np.int64)
    for copy in range(copies):
        pos = start + copy * df[token]
        out_data[pos] = scaled
        out_indices[pos] = indices + copy * n_docs
    return out_data, out_indices, (indptr.astype(np.int64) * copies)


def grow_bm25(src: Path, dst: Path, copies: int) -> None:
    """Write the bm25s folder of `copies` repeats of the corpus indexed in `src`."""
    dst.mkdir(parents=True)
    params = json.loads((src / "params.index.json").read_text(encoding="utf-8"))
    data = np.load(src / "data.csc.index.npy", allow_pickle=False)
    indices = np.load(src / "indices.csc.index.npy", allow_pickle=False)
    indptr = np.load(src / "indptr.csc.index.npy", allow_pickle=False)
    if params.get("method", "lucene") != "lucene" or params.get("idf_method", "lucene") != "lucene":
        raise SystemExit(f"{src}: tiling assumes bm25s method 'lucene', found {params.get('method')}")
    n_docs = int(params["num_docs"])
    out = tile_bm25(data, indices, indptr, n_docs, copies)
    for name, arr in zip(("data", "indices", "indptr"), out):
        np.save(dst / f"{name}.csc.index.npy", arr, allow_pickle=False)
    params["num_docs"] = n_docs * copies
    if out[1].dtype == np.int64:
        params["int_dtype"] = "int64"
    (dst / "params.index.json").write_text(json.dumps(params, indent=4), encoding="utf-8")
    for extra in src.iterdir():
        if extra.name not in ("params.index.json",) and not extra.name.endswith(".csc.index.npy"):
            shutil.copy(extra, dst / extra.name)


def verify_tiling(base_build: Path, copies: int = 2) -> str:
    """Check tiled BM25 against bm25s.index on the repeated bigram lists; return a one-line verdict."""
    import bm25s

    from kb.segment import bigrams

    db = sqlite3.connect(f"file:{base_build / 'store.sqlite'}?mode=ro", uri=True)
    texts = [r[0] for r in db.execute("SELECT index_text FROM chunks ORDER BY row")]
    db.close()
    tokens = [bigrams(t) or [""] for t in texts]
    model = bm25s.BM25(k1=1.2, b=0.75)
    model.index(tokens * copies, show_progress=False)
    single = bm25s.BM25(k1=1.2, b=0.75)
    single.index(tokens, show_progress=False)
    data, indices, indptr = tile_bm25(single.scores["data"], single.scores["indices"],
                                      np.asarray(single.scores["indptr"]), len(tokens), copies)
    worst = 0.0
    columns = len(indptr) - 1
    for token, tid in single.vocab_dict.items():
        other = model.vocab_dict[token]
        if tid >= columns or other >= len(model.scores["indptr"]) - 1:  # bm25s lists "" without a column
            continue
        a = slice(int(indptr[tid]), int(indptr[tid + 1]))
        b = slice(int(model.scores["indptr"][other]), int(model.scores["indptr"][other + 1]))
        if not np.array_equal(indices[a], model.scores["indices"][b]):
            return f"tiled BM25 differs from bm25s.index at {copies} copies (postings of {token!r})"
        worst = max(worst, float(np.max(np.abs(data[a] - model.scores["data"][b]), initial=0.0)))
    return f"tiled BM25 = bm25s.index on the repeated lists at {copies} copies (max score difference {worst:.1e})"


# ---------------------------------------------------------------------------- vectors
def real_vectors(base_build: Path, chunk_ids: np.ndarray) -> np.ndarray:
    """Return the real index's vectors in chunk-row order."""
    import faiss

    stored = faiss.read_index(str(base_build / "vectors.faiss"))
    ids = faiss.vector_to_array(stored.id_map)
    inner = faiss.downcast_index(stored.index)
    vectors = inner.reconstruct_n(0, inner.ntotal)
    position = {int(i): k for k, i in enumerate(ids)}
    return np.ascontiguousarray(vectors[[position[int(c)] for c in chunk_ids]], dtype=np.float32)


def grow_vectors(real: np.ndarray, copies: int, noise: float, seed: int) -> tuple[np.ndarray, float]:
    """Return the vectors of `copies` copies (copy 0 real, others perturbed and re-normalised) and the mean
    cosine of a perturbed copy to its real vector."""
    n, dim = real.shape
    out = np.empty((n * copies, dim), dtype=np.float32)
    out[:n] = real
    rng = np.random.default_rng(seed)
    sigma = np.float32(noise / math.sqrt(dim))  # noise vector norm ~ `noise`
    cosines = []
    for copy in range(1, copies):
        block = real + rng.standard_normal((n, dim), dtype=np.float32) * sigma
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[copy * n:(copy + 1) * n] = block
        if copy <= 3:
            cosines.append(float(np.mean(np.einsum("ij,ij->i", block, real))))
    return out, (statistics.mean(cosines) if cosines else 1.0)


def recall_queries(base_build: Path, gold: list[dict], count: int, seed: int) -> list[str]:
    """Return the dev questions plus `count` query-length snippets of real chunks."""
    db = sqlite3.connect(f"file:{base_build / 'store.sqlite'}?mode=ro", uri=True)
    texts = [r[0] for r in db.execute("SELECT text FROM chunks WHERE length(text) >= 20 ORDER BY row")]
    db.close()
    rng = random.Random(seed)
    snippets = []
    for text in rng.sample(texts, min(count, len(texts))):
        start = rng.randrange(0, max(1, len(text) - 30))
        snippets.append(text[start:start + rng.randrange(12, 30)].strip())
    return [g["query"] for g in gold] + snippets


# ---------------------------------------------------------------------------- workers
def describe(index) -> str:
    """Return the dense index's kind with its main parameters."""
    import faiss

    from kb import ann

    kind = ann.index_kind(index)
    inner = faiss.downcast_index(index.index)
    if kind == ann.IVF:
        return f"ivf {inner.nlist} lists, nprobe {ann.ivf_probe(inner.nlist)}"
    if kind == ann.HNSW:
        return f"hnsw M={ann.HNSW_M} efC={inner.hnsw.efConstruction}"
    return kind


def recall_and_latency(index, queries: np.ndarray, k: int, truth_floor: np.ndarray) -> tuple[float, tuple]:
    """Return recall@10 (a hit is a result at least as similar as the exact 10th) and p50/p95 ms of single queries."""
    samples, hits = [], []
    for q, floor in zip(queries, truth_floor):
        t = time.perf_counter()
        sims, _ = index.search(q[None, :], k)
        samples.append(time.perf_counter() - t)
        hits.append(min(10, int(np.sum(sims[0, :10] >= floor))))
    return float(np.mean(hits) / 10), p50_p95(samples)


def build_worker(args) -> dict:
    """Make the index folder of one size; return build times, ANN recall and latencies."""
    import faiss

    from kb import ann
    from kb.embed import load_encoder
    from kb.search import DEFAULT_TUNING

    base_build = current_build(args.base_index)
    manifest = json.loads((base_build / "manifest.json").read_text(encoding="utf-8"))
    base_clauses = int(manifest["counts"]["clauses"])
    copies = max(1, math.ceil(args.size / base_clauses))
    index_dir = args.workdir / f"size-{args.size}" / "index"
    shutil.rmtree(index_dir.parent, ignore_errors=True)
    name = f"scale-{args.size}"
    build = index_dir / "builds" / name
    build.mkdir(parents=True)
    out: dict = {"size": args.size, "copies": copies}

    start = time.perf_counter()
    out.update(grow_store(base_build / "store.sqlite", build / "store.sqlite", copies))
    out["store_s"] = time.perf_counter() - start
    start = time.perf_counter()
    for folder in ("bm25-words", "bm25-bigrams"):
        grow_bm25(base_build / folder, build / folder, copies)
    out["bm25_s"] = time.perf_counter() - start
    log(f"  store {out['store_s']:.1f}s, bm25 {out['bm25_s']:.1f}s ({out['clauses']} clauses, {out['chunks']} chunks)")

    db = sqlite3.connect(f"file:{base_build / 'store.sqlite'}?mode=ro", uri=True)
    base_ids = np.array([r[0] for r in db.execute("SELECT chunk_id FROM chunks ORDER BY row")], dtype=np.int64)
    db.close()
    real = real_vectors(base_build, base_ids)
    vectors, cosine = grow_vectors(real, copies, args.noise, seed=args.size)
    ids = np.concatenate([base_ids ^ np.int64(copy_key(c)) for c in range(copies)])
    out["copy_cosine"] = cosine
    out["vector_mib"] = vectors.nbytes / 2**20
    dim = vectors.shape[1]

    encoder = load_encoder()
    gold = [json.loads(x) for x in GOLD.read_text(encoding="utf-8").splitlines() if x.strip()]
    queries = encoder.encode_queries(recall_queries(base_build, gold, args.queries, seed=1))
    k = DEFAULT_TUNING.dense_candidates

    # exact search: ground truth (batched) and its single-query latency
    start = time.perf_counter()
    exact = faiss.IndexFlatIP(dim)
    exact.add(vectors)
    out["exact_build_s"] = time.perf_counter() - start
    truth_sims, _ = exact.search(queries, 10)
    faiss.omp_set_num_threads(ann.SEARCH_THREADS)
    samples = []
    for q in queries[:60]:
        t = time.perf_counter()
        exact.search(q[None, :], k)
        samples.append(time.perf_counter() - t)
    out["exact_search_ms"] = p50_p95(samples)
    del exact

    kind = ann.choose_index_kind(len(vectors), args.exact_max)
    log(f"  {kind} index over {len(vectors)} vectors ...")
    start = time.perf_counter()
    index = ann.build_ann(vectors, ids, dim, exact_max=args.exact_max)
    out["ann_build_s"] = time.perf_counter() - start
    out["ann_kind"] = describe(index)
    start = time.perf_counter()
    faiss.write_index(index, str(build / "vectors.faiss"))
    out["ann_write_s"] = time.perf_counter() - start
    truth_floor = truth_sims[:, 9] - 1e-5  # ties at the 10th similarity count as found
    for label, search_k in (("k200", k), ("k10", 10)):
        ann.configure_search(index, search_k)
        out[f"recall10_{label}"], out[f"ann_search_ms_{label}"] = recall_and_latency(index, queries, search_k,
                                                                                     truth_floor)
    out["recall_queries"] = len(queries)
    log(f"  {out['ann_kind']} build {out['ann_build_s']:.1f}s; recall@10 {out['recall10_k200']:.3f} (k={k}), "
        f"{out['recall10_k10']:.3f} (k=10); search {out['ann_search_ms_k200'][0]:.2f} ms, "
        f"exact {out['exact_search_ms'][0]:.2f} ms")
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexIVF):  # the recall / latency trade-off around the shipped nprobe
        shipped = ann.ivf_probe(inner.nlist)
        sweep = []
        for probe in sorted({max(1, shipped // 4), max(1, shipped // 2), shipped, min(inner.nlist, shipped * 2)}):
            inner.nprobe = probe
            recall, ms = recall_and_latency(index, queries, k, truth_floor)
            sweep.append((probe, recall, ms[0]))
        out["sweep"] = {"param": f"nprobe of {inner.nlist}", "points": sweep}
        log("  sweep " + ", ".join(f"nprobe {p}: {r:.3f} {m:.1f} ms" for p, r, m in sweep))
    del index, inner
    if kind != ann.HNSW and len(vectors) <= args.hnsw_max:
        start = time.perf_counter()
        hnsw = ann.build_ann(vectors, ids, dim, kind=ann.HNSW)
        other = {"build_s": time.perf_counter() - start, "kind": describe(hnsw)}
        for label, search_k in (("k200", k), ("k10", 10)):
            ann.configure_search(hnsw, search_k)
            other[f"recall10_{label}"], other[f"search_ms_{label}"] = recall_and_latency(hnsw, queries, search_k,
                                                                                         truth_floor)
        out["hnsw"] = other
        log(f"  for comparison {other['kind']}: build {other['build_s']:.1f}s, recall@10 "
            f"{other['recall10_k200']:.3f} (k={k}) {other['recall10_k10']:.3f} (k=10), "
            f"{other['search_ms_k200'][0]:.2f} ms")
        del hnsw
    del vectors

    manifest["counts"] = {"documents": manifest["counts"]["documents"], "clauses": out["clauses"],
                          "chunks": out["chunks"]}
    manifest["fingerprint"] = f"synthetic-{copies}-copies"
    manifest["synthetic"] = {"copies": copies, "noise": args.noise, "base": str(base_build)}
    (build / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    (index_dir / "CURRENT").write_text(name + "\n", encoding="utf-8")
    out["disk_mib"] = dir_bytes(build) / 2**20
    out["build_peak_rss_mib"] = rss_bytes()[1] / 2**20
    return out


def serve_worker(args) -> dict:
    """Load one size's index as the server does and time searches per channel; return JSON-able results."""
    t0 = time.perf_counter()
    from kb import ann
    from kb.config import Settings
    from kb.search import DEFAULT_TUNING, SearchOptions
    from kb.service import KnowledgeBase

    index_dir = args.workdir / f"size-{args.size}" / "index"
    kb = KnowledgeBase(Settings(corpus_dirs=CORPORA, index_dir=index_dir))
    index = kb.index()
    out: dict = {"load_s": time.perf_counter() - t0}
    if index.faiss is not None:
        ann.configure_search(index.faiss, DEFAULT_TUNING.dense_candidates)  # what kb/search.py is to call
    gold = [json.loads(x) for x in GOLD.read_text(encoding="utf-8").splitlines() if x.strip()]
    questions = [g["query"] for g in gold]
    kb.search(questions[0], SearchOptions(k=10, mode="hybrid"))
    out["first_answer_s"] = time.perf_counter() - t0
    for mode in MODES:
        options = SearchOptions(k=10, mode=mode)
        for q in questions:
            kb.search(q, options)
        samples = []
        for _ in range(args.repeats):
            for q in questions:
                t = time.perf_counter()
                kb.search(q, options)
                samples.append(time.perf_counter() - t)
        out[f"{mode}_ms"] = p50_p95(samples)
        log(f"  {mode}: p50 {out[f'{mode}_ms'][0]:.1f} ms, p95 {out[f'{mode}_ms'][1]:.1f} ms")
    rss, peak = rss_bytes()
    out["serve_rss_mib"] = rss / 2**20
    out["serve_peak_mib"] = peak / 2**20
    return out


def run_worker(kind: str, size: int, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--size", str(size), "--workdir", str(args.workdir),
           "--base-index", str(args.base_index), "--noise", str(args.noise), "--queries", str(args.queries),
           "--repeats", str(args.repeats), "--exact-max", str(args.exact_max), "--hnsw-max", str(args.hnsw_max)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, timeout=3 * 3600)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker for {size} failed with {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- output
def fmt(pair) -> str:
    return f"{pair[0]:.1f} / {pair[1]:.1f}"


def render(rows: list[dict], facts: dict) -> str:
    header = ("clauses (chunks)", "copies", "dense index", "ANN build s", "exact build s", "BM25 s", "store s",
              "load s", "lexical ms p50/p95", "dense ms p50/p95", "hybrid ms p50/p95", "ANN ms p50 (k=200)",
              "exact ms p50 (k=200)", "recall@10 k=200 / k=10", "serve RSS MiB (peak)", "on disk MiB")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join((
            f"{r['clauses']:,} ({r['chunks']:,})", str(r["copies"]), r["ann_kind"], f"{r['ann_build_s']:.1f}",
            f"{r['exact_build_s']:.1f}", f"{r['bm25_s']:.1f}", f"{r['store_s']:.1f}", f"{r['load_s']:.1f}",
            fmt(r["lexical_ms"]), fmt(r["dense_ms"]), fmt(r["hybrid_ms"]), f"{r['ann_search_ms_k200'][0]:.2f}",
            f"{r['exact_search_ms'][0]:.1f}", f"{r['recall10_k200']:.3f} / {r['recall10_k10']:.3f}",
            f"{r['serve_rss_mib']:.0f} ({r['serve_peak_mib']:.0f})", f"{r['disk_mib']:.0f}",
        )) + " |")
    for r in rows:
        if "hnsw" in r:
            h = r["hnsw"]
            lines.append("| " + " | ".join((
                f"{r['clauses']:,} ({r['chunks']:,})", str(r["copies"]), f"{h['kind']} (comparison only)",
                f"{h['build_s']:.1f}", "", "", "", "", "", "", "", f"{h['search_ms_k200'][0]:.2f}", "",
                f"{h['recall10_k200']:.3f} / {h['recall10_k10']:.3f}", "", "")) + " |")
    notes = [
        "SYNTHETIC: the real index (corpus/ + ../shared/corpora) copied whole `copies` times with varied clause "
        "and chunk ids; copy 1 has the real vectors (the real encoder on the real chunks), the others these "
        f"vectors plus Gaussian noise of norm {facts['noise']}, re-normalised (mean cosine to the real vector "
        f"{facts['cosine']:.3f}), so every clause has near-duplicates; BM25 is BM25 over the repeated token "
        f"lists ({facts['tiling']}).",
        f"Dense index chosen by kb.ann.choose_index_kind: exact up to {facts['exact_max']:,} vectors, else "
        f"{facts['ann_kind']}. recall@10 against exact search over {facts['recall_queries']} queries (the dev "
        "questions and real chunk snippets, encoded by the real encoder; results as similar as the exact 10th "
        "count as found), asking k=200 as kb/search.py's dense channel does and k=10; ANN and exact latency: "
        "one query, one thread.",
        "lexical / dense / hybrid: kb.service.KnowledgeBase.search (query encoding included) in a fresh process "
        f"that loaded the grown index folder, {facts['repeats']} passes over the {facts['questions']} dev "
        "questions after a warm-up pass, with kb.ann.configure_search applied (faiss one thread). load s = "
        "process start to loaded index; serve RSS after the searches (peak = VmHWM).",
        "Build times are for the grown parts only (the real vectors are not re-embedded): ANN build "
        "= kb.ann.build_ann (2 threads); BM25 = tiling; store = SQLite copy. Machine: "
        f"{os.cpu_count()} cores, load average {facts['load_start']} at start, {facts['load_end']} at end "
        "(other work on the machine inflates the figures).",
    ]
    for r in rows:
        if "sweep" in r:
            notes.append(f"{r['clauses']:,} clauses, {r['sweep']['param']}: " + ", ".join(
                f"{p} -> recall@10 {rec:.3f}, {ms:.1f} ms" for p, rec, ms in r["sweep"]["points"]))
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def plot(rows: list[dict], path: Path, facts: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["clauses"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    ax = axes[0]
    for key, label in (("lexical_ms", "lexical (BM25 x2)"), ("dense_ms", "dense (encode + ANN)"),
                       ("hybrid_ms", "hybrid (shipped)")):
        ax.plot(x, [r[key][0] for r in rows], "o-", label=label)
    ax.plot(x, [r["ann_search_ms_k200"][0] for r in rows], "s--", label="ANN search alone")
    ax.plot(x, [r["exact_search_ms"][0] for r in rows], "x:", label="exact search alone")
    ax.axhline(50, color="grey", lw=0.8, ls="--", label="50 ms (target at 1M)")
    ax.set(xscale="log", yscale="log", xlabel="clauses", ylabel="p50 latency (ms)", title="search latency (p50)")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(x, [r["serve_rss_mib"] for r in rows], "o-", label="serving process RSS")
    ax.plot(x, [r["disk_mib"] for r in rows], "s--", label="index folder on disk")
    ax.plot(x, [r["vector_mib"] for r in rows], "x:", label="raw vectors (float32)")
    ax.set(xscale="log", yscale="log", xlabel="clauses", ylabel="MiB", title="memory and size")
    ax.legend(fontsize=8)
    ax = axes[2]
    for key, label in (("ann_build_s", "ANN build (kb.ann)"), ("exact_build_s", "exact index build"),
                       ("bm25_s", "BM25 (tiled)"), ("store_s", "store (SQLite copy)"), ("load_s", "index load")):
        ax.plot(x, [max(r[key], 1e-2) for r in rows], "o-", label=label)
    ax.set(xscale="log", yscale="log", xlabel="clauses", ylabel="seconds", title="build and load time")
    ax.legend(fontsize=8)
    fig.suptitle(f"kb at scale (synthetic growth of the real corpora; noise {facts['noise']}; "
                 f"{os.cpu_count()} cores)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def ensure_base_index(index_dir: Path) -> None:
    """Build (or update) the real index over the three corpora with `kb build`."""
    args = [sys.executable, "-m", "kb.cli", "build", *[x for c in CORPORA for x in ("--corpus", str(c))],
            "--index", str(index_dir)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"kb build failed: {done.stderr.strip()[-2000:]}")
    log(f"base index {index_dir}: {done.stdout.strip().splitlines()[0]} ({time.perf_counter() - start:.1f}s)")


def main(argv: list[str] | None = None) -> int:
    from kb import ann

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="clause counts, comma-separated")
    parser.add_argument("--no-real", action="store_true", help="skip the point of the real index itself")
    parser.add_argument("--base-index", type=Path, default=Path(tempfile.gettempdir()) / "kb-scale-base",
                        help="index of the real corpora (built or updated first)")
    parser.add_argument("--workdir", type=Path, help="where the grown indexes go (default: temp, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the grown index folders")
    parser.add_argument("--noise", type=float, default=0.3, help="norm of the noise added to copied vectors")
    parser.add_argument("--queries", type=int, default=200, help="chunk-snippet queries for recall, besides dev")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over the dev questions per channel")
    parser.add_argument("--exact-max", type=int, default=ann.EXACT_MAX_VECTORS, help="exact search up to this")
    parser.add_argument("--hnsw-max", type=int, default=200_000,
                        help="also build HNSW for comparison up to this many vectors (0: never)")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "scale.png")
    parser.add_argument("--skip-verify", action="store_true", help="skip checking tiled BM25 against bm25s")
    parser.add_argument("--worker", choices=("build", "serve"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = build_worker(args) if args.worker == "build" else serve_worker(args)
        print(json.dumps(result))
        return 0
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes takes comma-separated clause counts, not {args.sizes!r}")
    if any(s < 1 for s in sizes):
        parser.error("sizes must be positive")
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    t_all = time.perf_counter()
    args.base_index = args.base_index.resolve()
    ensure_base_index(args.base_index)
    base_clauses = json.loads((current_build(args.base_index) / "manifest.json").read_text())["counts"]["clauses"]
    if not args.no_real:
        sizes = [base_clauses] + [s for s in sizes if s != base_clauses]
    own_workdir = args.workdir is None
    args.workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="kb-scale-"))).resolve()
    tiling = "not verified" if args.skip_verify else verify_tiling(current_build(args.base_index))
    log(tiling)
    rows = []
    try:
        for size in sizes:
            log(f"size {size:,} clauses: growing and building ...")
            row = run_worker("build", size, args)
            log(f"size {size:,}: loading and searching in a fresh process ...")
            row.update(run_worker("serve", size, args))
            rows.append(row)
            if not args.keep:
                shutil.rmtree(args.workdir / f"size-{size}", ignore_errors=True)
    finally:
        if own_workdir and not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    facts = {"noise": args.noise, "cosine": min(r["copy_cosine"] for r in rows), "tiling": tiling,
             "exact_max": args.exact_max, "recall_queries": rows[0]["recall_queries"],
             "ann_kind": (f"IVF (a power of two near 2*sqrt(n) lists, nprobe = lists/"
                          f"{round(1 / ann.IVF_PROBE_FRACTION)} and at least {ann.IVF_MIN_PROBE})"
                          if ann.ANN_KIND == ann.IVF else f"HNSW M={ann.HNSW_M} efC={ann.HNSW_EF_CONSTRUCTION}"),
             "repeats": args.repeats, "questions": sum(1 for x in GOLD.read_text().splitlines() if x.strip()),
             "load_start": load_start, "load_end": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    print(render(rows, facts))
    plot(rows, args.plot, facts)
    print(f"plot: {args.plot}; total {time.perf_counter() - t_all:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
