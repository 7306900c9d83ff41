"""Embedded vs Milvus (milvus-lite) backends side by side, on this machine in one run: build, query latency, memory.

    .venv/bin/python scripts/bench_milvus.py                     # corpus/ + ../shared/corpora, built here
    .venv/bin/python scripts/bench_milvus.py --work /tmp/b --repeats 3
    .venv/bin/python scripts/bench_milvus.py --index /tmp/s/size-100000/index   # an index grown by scale.py --keep

Needs the milvus extra (pip install -e ".[milvus]"). Without --index it builds one index
folder (the embedded backend's build, cold: segmentation, BM25, embeddings); with --index
(repeatable) it measures existing folders, e.g. the grown ones `scripts/scale.py --keep`
leaves. Each folder's current build is published to a new milvus-lite file (the Milvus
backend's extra build step: one collection, then the alias or pointer), then each backend is
measured in its own fresh process: load time, search p50/p95 (hybrid, k=5) over the dev
questions and clause headings of the index, the serving process's RSS (and its anonymous
part: the Milvus replica memory-maps the BM25 files), and the RSS of the milvus-lite engine:
milvus-lite 3 runs inside the process, the native milvus-lite 2.5 as a child process, whose
memory is counted separately. Prints one Markdown table on stdout.
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


def memory_mb() -> dict[str, float]:
    """Return this process's peak, current and anonymous RSS and its child processes' RSS (the native engine), MiB."""
    got = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmHWM:", "VmRSS:", "RssAnon:")):
            key, value = line.split(":", 1)
            got[key] = int(value.split()[0]) / 1024
    import psutil

    engine = sum(c.memory_info().rss for c in psutil.Process().children(recursive=True)) / 2**20
    return {"hwm_mb": got.get("VmHWM", float("nan")), "rss_mb": got.get("VmRSS", float("nan")),
            "anon_mb": got.get("RssAnon", float("nan")), "engine_mb": engine}


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
    settings = Settings(index_dir=index_dir, backend=backend, milvus_uri=uri)
    if candidates:
        settings = settings.with_overrides(milvus_lexical_candidates=candidates)
    kb = KnowledgeBase(settings)
    kb.search("专精特新企业", SearchOptions(k=5))  # warm: encoder weights, collection load
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
    index = kb.index()
    print(json.dumps({"backend": backend, "load_s": load_s, "p50_ms": p50, "p95_ms": p95, "n": len(samples),
                      "questions": len(qs), **memory_mb(), "chunks": len(index.chunk_ids),
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
    print(json.dumps({"publish_s": report.seconds, "connect_s": connect_s, "rows": report.rows, **memory_mb()}))


def run_json(args: list[str], env: dict) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], env=env, capture_output=True,
                          text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def measure(index_dir: Path, uri: str, args, env: dict) -> dict:
    """Publish an index folder to a new milvus-lite file, then measure both backends; return the figures."""
    shutil.rmtree(Path(uri).parent, ignore_errors=True)
    log(f"{index_dir}: publishing to milvus-lite")
    pub = run_json(["--child", "publish", "--index", str(index_dir), "--uri", uri], env)
    log(f"publish {pub['publish_s']:.1f}s ({pub['rows'] / max(pub['publish_s'], 1e-9):.0f} rows/s); "
        "measuring each backend in its own process")
    runs = {"publish": pub}
    for backend, candidates in [("embedded", 0)] + [("milvus", c) for c in args.candidates]:
        key = backend if backend == "embedded" else f"milvus-{candidates}"
        runs[key] = run_json(["--child", backend, "--index", str(index_dir), "--uri", uri,
                              "--repeats", str(args.repeats), "--questions", str(args.questions),
                              "--lexical-candidates", str(candidates)], env)
        log(f"{key}: p50 {runs[key]['p50_ms']:.1f} ms")
    runs["folder_mb"] = dir_mb(index_dir / "builds")
    runs["lite_mb"] = dir_mb(Path(uri).parent)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kb-bench-milvus"))
    parser.add_argument("--corpus", type=Path, action="append", help="corpus folders (default corpus/ + ../shared)")
    parser.add_argument("--index", type=Path, action="append", dest="indexes",
                        help="measure this existing index folder instead of building one (repeatable)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--questions", type=int, default=60, help="clause headings used as questions (plus dev)")
    parser.add_argument("--lexical-candidates", default="0",
                        help="rows Milvus returns per lexical channel, comma-separated for one Milvus run each "
                             "(0: the setting's default, 16,384)")
    parser.add_argument("--reuse", action="store_true", help="reuse the index folder in --work (no --index)")
    parser.add_argument("--child", choices=["embedded", "milvus", "publish"], help=argparse.SUPPRESS)
    parser.add_argument("--uri", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.candidates = [int(c) for c in str(args.lexical_candidates).split(",") if c.strip()]
    if args.child == "publish":
        publish_child(args.indexes[0], args.uri)
        return 0
    if args.child:
        child(args.child, args.indexes[0], args.uri, args.repeats, args.questions, args.candidates[0])
        return 0

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KB_")}, "PYTHONPATH": str(ROOT)}
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    folders: list[tuple[Path, float | None]] = []
    if args.indexes:
        folders = [(p.resolve(), None) for p in args.indexes]
    else:
        corpora = [p for p in (args.corpus or CORPORA) if p.is_dir()]
        index_dir = args.work / "index"
        saved = args.work / "build.json"
        if args.reuse and saved.is_file():
            folder_s = json.loads(saved.read_text())[0]
            log(f"reusing {index_dir} (folder build {folder_s:.1f}s, measured before)")
        else:
            shutil.rmtree(args.work, ignore_errors=True)
            log(f"building the index folder from {', '.join(map(str, corpora))} (cold)")
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", "kb.cli", "build", "--quiet", "--index", str(index_dir)]
            for c in corpora:
                cmd += ["--corpus", str(c)]
            subprocess.run(cmd, env=env, check=True, timeout=3600, capture_output=True)
            folder_s = time.perf_counter() - t0
            args.work.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps([folder_s]))
            log(f"folder build {folder_s:.1f}s")
        folders = [(index_dir.resolve(), folder_s)]
    results = []
    for i, (index_dir, folder_s) in enumerate(folders):
        runs = measure(index_dir, str(args.work / f"milvus-{i}" / "kb.db"), args, env)
        runs["folder_s"] = folder_s
        results.append(runs)
    import milvus_lite
    import pymilvus

    print(f"pymilvus {pymilvus.__version__}, milvus-lite {milvus_lite.__version__}; {os.cpu_count()} cores shared, "
          f"load average {load_start} at the start, {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end; "
          f"{args.repeats} repeats of the questions, hybrid, k=5; RSS of the serving process (anonymous part) "
          "and of the milvus-lite engine (a child process of the native milvus-lite 2.5; inside the process "
          "for milvus-lite 3)\n")
    print("| clauses (chunks) | backend | build | load + first query | query p50 / p95 | serving RSS (anon) "
          "| engine RSS | on disk | top-5 identical |")
    print("|---|---|---|---|---|---|---|---|---|")
    for runs in results:
        e, pub = runs["embedded"], runs["publish"]
        size = f"{e['clauses']:,} ({e['chunks']:,})"
        built = f"{runs['folder_s']:.1f} s" if runs["folder_s"] is not None else "(scale.py)"
        print(f"| {size} | embedded | {built} | {e['load_s']:.1f} s | {e['p50_ms']:.1f} / {e['p95_ms']:.1f} ms "
              f"| {e['rss_mb']:.0f} ({e['anon_mb']:.0f}) MiB | — | {runs['folder_mb']:.0f} MiB | |")
        for c in args.candidates:
            m = runs[f"milvus-{c}"]
            same = sum(1 for q in e["tops"] if e["tops"][q] == m["tops"].get(q))
            print(f"| {size} | milvus-lite, {c or 16384:,} lexical candidates | + {pub['publish_s']:.1f} s publish "
                  f"({pub['rows'] / max(pub['publish_s'], 1e-9):.0f} rows/s) | {m['load_s']:.1f} s "
                  f"| {m['p50_ms']:.1f} / {m['p95_ms']:.1f} ms | {m['rss_mb']:.0f} ({m['anon_mb']:.0f}) MiB "
                  f"| {m['engine_mb']:.0f} MiB | + {runs['lite_mb']:.0f} MiB "
                  f"| {same} of {len(e['tops'])} questions |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
