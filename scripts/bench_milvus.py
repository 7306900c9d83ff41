"""Embedded vs Milvus (milvus-lite) backends side by side, on this machine in one run: build, query latency, memory.

    .venv/bin/python scripts/bench_milvus.py                     # corpus/ + ../shared/corpora
    .venv/bin/python scripts/bench_milvus.py --work /tmp/b --repeats 3

Needs the milvus extra (pip install -e ".[milvus]"). Builds one index folder (the embedded
backend's build, cold: segmentation, BM25, embeddings), publishes it to a milvus-lite file
(the Milvus backend's extra build step: one collection, then the alias), then measures each
backend in its own fresh process: load time, search p50/p95 (hybrid, k=5) over the dev
questions and clause headings of the index, and the process's peak and final RSS (milvus-lite
runs inside the process, so its memory is counted). Prints one Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPORA = (ROOT / "corpus", SHARED / "corpora" / "gov-work-reports", SHARED / "corpora" / "cpc-congress-reports")
DEV = SHARED / "eval" / "dev.jsonl"
sys.path.insert(0, str(ROOT))


def log(message: str) -> None:
    print(f"[bench-milvus {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def memory_mb() -> tuple[float, float]:
    """Return (peak RSS, current RSS) of this process in MiB, from /proc."""
    got = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            key, value = line.split(":", 1)
            got[key] = int(value.split()[0]) / 1024
    return got.get("VmHWM", float("nan")), got.get("VmRSS", float("nan"))


def p50_p95(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered) * 1000, p95 * 1000


def questions(kb, limit: int) -> list[str]:
    """The dev questions (when ../shared is there) and clause headings spread over the index."""
    qs = [json.loads(x)["query"] for x in DEV.read_text(encoding="utf-8").splitlines() if x.strip()] \
        if DEV.is_file() else []
    index = kb.index()
    step = max(1, index.n_clauses // limit)
    heads = [index.clause_at(r).heading for r in range(0, index.n_clauses, step)]
    return qs + [h for h in dict.fromkeys(heads) if len(h) >= 4][:limit]


def child(backend: str, index_dir: Path, uri: str, repeats: int, limit: int, candidates: int) -> None:
    """Load one backend in this fresh process, time searches, print a JSON line."""
    from kb.config import Settings
    from kb.search import SearchOptions
    from kb.service import KnowledgeBase

    t0 = time.perf_counter()
    kb = KnowledgeBase(Settings(index_dir=index_dir, backend=backend, milvus_uri=uri))
    searcher = kb.searcher()
    if candidates and backend == "milvus":
        searcher.backend.lexical_candidates = candidates
    searcher.search("专精特新企业", SearchOptions(k=5))  # warm: encoder weights, collection load
    load_s = time.perf_counter() - t0
    qs = questions(kb, limit)
    samples = []
    tops = {}
    for _ in range(repeats):
        for q in qs:
            t = time.perf_counter()
            result = kb.search(q, SearchOptions(k=5))
            samples.append(time.perf_counter() - t)
            tops[q] = [(h.doc.doc_id, h.clause.clause_id) for h in result.hits]
    p50, p95 = p50_p95(samples)
    hwm, rss = memory_mb()
    index = kb.index()
    print(json.dumps({"backend": backend, "load_s": load_s, "p50_ms": p50, "p95_ms": p95, "n": len(samples),
                      "questions": len(qs), "hwm_mb": hwm, "rss_mb": rss, "chunks": len(index.chunk_ids),
                      "clauses": index.n_clauses, "documents": len(index.documents), "tops": tops},
                     ensure_ascii=False))


def publish_child(index_dir: Path, uri: str) -> None:
    """Publish the folder's current build to Milvus in this fresh process; print a JSON line."""
    from kb.backends import milvus
    from kb.index import read_current

    t0 = time.perf_counter()
    mc = milvus.client(uri)
    connect_s = time.perf_counter() - t0
    report = milvus.publish_build(mc, index_dir, read_current(index_dir), None)
    hwm, rss = memory_mb()
    print(json.dumps({"publish_s": report.seconds, "connect_s": connect_s, "rows": report.rows, "hwm_mb": hwm,
                      "rss_mb": rss}))


def run_json(args: list[str], env: dict) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], env=env, capture_output=True,
                          text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kb-bench-milvus"))
    parser.add_argument("--corpus", type=Path, action="append", help="corpus folders (default corpus/ + ../shared)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--questions", type=int, default=60, help="clause headings used as questions (plus dev)")
    parser.add_argument("--lexical-candidates", type=int, default=0,
                        help="rows Milvus returns per lexical channel (default: the backend's, 16,384)")
    parser.add_argument("--reuse", action="store_true", help="reuse the index folder and milvus file in --work")
    parser.add_argument("--child", choices=["embedded", "milvus", "publish"], help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--uri", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "publish":
        publish_child(args.index, args.uri)
        return 0
    if args.child:
        child(args.child, args.index, args.uri, args.repeats, args.questions, args.lexical_candidates)
        return 0

    corpora = [p for p in (args.corpus or CORPORA) if p.is_dir()]
    index_dir = args.work / "index"
    uri = str(args.work / "milvus" / "kb.db")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    saved = args.work / "build.json"
    if args.reuse and saved.is_file():
        folder_s, pub = json.loads(saved.read_text())
        log(f"reusing {args.work} (folder build {folder_s:.1f}s, publish {pub['publish_s']:.1f}s measured before)")
    else:
        shutil.rmtree(args.work, ignore_errors=True)
        log(f"building the index folder from {', '.join(map(str, corpora))} (cold)")
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "kb.cli", "build", "--quiet", "--index", str(index_dir)]
        for c in corpora:
            cmd += ["--corpus", str(c)]
        subprocess.run(cmd, env=env, check=True, timeout=3600, capture_output=True)
        folder_s = time.perf_counter() - t0
        log(f"folder build {folder_s:.1f}s; publishing to milvus-lite")
        pub = run_json(["--child", "publish", "--index", str(index_dir), "--uri", uri], env)
        saved.write_text(json.dumps([folder_s, pub]))
        log(f"publish {pub['publish_s']:.1f}s; measuring each backend in its own process")
    runs = {}
    for backend in ("embedded", "milvus"):
        runs[backend] = run_json(["--child", backend, "--index", str(index_dir), "--uri", uri,
                                  "--repeats", str(args.repeats), "--questions", str(args.questions),
                                  "--lexical-candidates", str(args.lexical_candidates)], env)
        log(f"{backend}: p50 {runs[backend]['p50_ms']:.1f} ms")
    e, m = runs["embedded"], runs["milvus"]
    same = sum(1 for q in e["tops"] if e["tops"][q] == m["tops"].get(q))
    builds = index_dir / "builds"
    folder_size = dir_mb(builds)
    lite_size = dir_mb(Path(uri).parent)
    import pymilvus
    import milvus_lite

    print(f"corpus: {e['documents']} documents, {e['clauses']} clauses, {e['chunks']} chunks; "
          f"{e['questions']} questions x {args.repeats} repeats, hybrid, k=5; "
          f"pymilvus {pymilvus.__version__}, milvus-lite {milvus_lite.__version__}; {os.cpu_count()} cores shared; "
          f"Milvus lexical candidates per channel: {args.lexical_candidates or 'backend default (16,384)'}\n")
    print("| | embedded (index folder) | milvus-lite |")
    print("|---|---|---|")
    print(f"| build | {folder_s:.1f} s (segment, BM25, embed, store) | + {pub['publish_s']:.1f} s publish "
          f"(collection of {pub['rows']} rows, index, load, alias) |")
    print(f"| on disk | {folder_size:.1f} MiB (builds/) | {lite_size:.1f} MiB (milvus-lite file) + the folder |")
    print(f"| load + first query | {e['load_s']:.1f} s | {m['load_s']:.1f} s |")
    print(f"| query p50 / p95 | {e['p50_ms']:.1f} / {e['p95_ms']:.1f} ms | {m['p50_ms']:.1f} / {m['p95_ms']:.1f} ms |")
    print(f"| peak / final RSS (serving process) | {e['hwm_mb']:.0f} / {e['rss_mb']:.0f} MiB | "
          f"{m['hwm_mb']:.0f} / {m['rss_mb']:.0f} MiB |")
    print(f"| publishing process peak RSS | — | {pub['hwm_mb']:.0f} MiB |")
    print(f"| top-5 identical | {same} of {len(e['tops'])} questions | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
