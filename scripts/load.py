"""Load test: `kb serve --workers N` on a free 127.0.0.1 port, driven by several client processes for a
bounded time while a rebuild publishes a new document in the middle. Prints requests, errors, latency
percentiles and requests/s per kind of request, and whether the new document became searchable.
Zero errors is the bar: exits 1 on any error (an unexpected status, a refused or reset connection, a
timeout, a traceback in the server log) or if the new document never became searchable.

    python scripts/load.py --workers 2 --clients 4 --seconds 30
    KB_DENSE=0 python scripts/load.py --seconds 8 --corpus corpus

Everything runs on loopback in a temporary folder (a copy of the corpus, its own index); the server is
started as a subprocess in its own process group and killed at the end. The document added by the
rebuild is a copy of a corpus document with a made-up clause appended (虚构示例), so it can be found by
a phrase no other document has.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
SHARED_REPORTS = ROOT.parent / "shared" / "corpora" / "gov-work-reports"
NEW_DOC_ID = "load-test-copy"
MARKER = "虚构示例翡翠风车负载标记条款"
QUERIES = ("国家级专精特新小巨人企业到2025年要培育多少家", "数字技术赋能工程", "特色金融助力工程", "优质企业梯度培育",
           "企业上市融资有什么支持", "研发费用加计扣除", "第二十四条", "政府工作报告 2024年 经济增长目标",
           "《连云港市专精特新企业培育三年行动计划（2022-2025年）》", "专精特新")
BAD = (("/api/search?q=", 400), ("/api/search?q=x&k=0", 400), ("/api/search?q=" + "x" * 600, 400),
       ("/search?q=x&k=abc", 400), ("/doc/..%2F..%2Fetc%2Fpasswd", 404), ("/doc/no-such-document", 404),
       ("/api/nope", 404))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def kb_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kb.cli", *args]


def get(port: int, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    """One GET on a new connection; returns (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close", "Accept": "text/html,application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# ---------------------------------------------------------------- client processes


def client(number: int, port: int, plan: list, stop, results) -> None:
    """Send requests from `plan` (kind, path, expected status) in random order until `stop` is set."""
    rng = random.Random(number)
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    samples: list[str] = []
    while not stop.is_set():
        kind, path, expected = rng.choice(plan)
        start = time.perf_counter()
        try:
            status, body = get(port, path)
            problem = "" if status == expected else f"{status} (expected {expected}) for {path[:80]}"
            if not problem and status == 200 and kind == "api search":
                json.loads(body)["results"]  # the contract JSON, not just a 200
        except Exception as exc:  # every failure to get an answer is an error to count
            problem = f"{type(exc).__name__}: {exc} for {path[:80]}"
        latencies.setdefault(kind, []).append(time.perf_counter() - start)
        if problem:
            errors[kind] = errors.get(kind, 0) + 1
            if len(samples) < 5:
                samples.append(problem)
    results.put({"latencies": latencies, "errors": errors, "samples": samples})


def request_plan(doc_ids: list[str]) -> list:
    """The request mix: (kind, path, expected status), repeated by weight."""
    plan = []
    for q in QUERIES:
        plan += [("api search", f"/api/search?q={quote(q)}&k=5", 200)] * 3
        plan += [("search page", f"/search?q={quote(q)}", 200)] * 2
    plan += [("api search", f"/api/search?q={quote(MARKER)}", 200)] * 2
    for doc_id in doc_ids:
        plan += [("document page", f"/doc/{doc_id}", 200)] * 2
    plan += [("other pages", path, 200) for path in ("/", "/docs", "/references", "/static/style.css")]
    plan += [("bad input", path, status) for path, status in BAD]
    return plan


# ---------------------------------------------------------------- the run


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))] if ordered else 0.0


def prepare(work: Path, corpora: list[Path]) -> tuple[Path, Path, Path]:
    """Copy the corpora into one folder and build its index; return (corpus, index, source of the new doc)."""
    corpus, index = work / "corpus", work / "index"
    corpus.mkdir()
    for folder in corpora:
        for path in sorted(Path(folder).glob("*.md")):
            if path.name.lower() != "readme.md":
                shutil.copy(path, corpus / path.name)
    if not any(corpus.glob("*.md")):
        raise SystemExit(f"no documents in {', '.join(map(str, corpora))}")
    source = sorted(corpus.glob("*.md"))[0]
    done = subprocess.run(kb_command("build", "--corpus", str(corpus), "--index", str(index), "--quiet"),
                          env=child_env(), cwd=work, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"kb build failed:\n{done.stderr}")
    return corpus, index, source


def new_document(source: Path) -> str:
    """A copy of `source` under a made-up title, with a made-up clause only it contains."""
    text = source.read_text(encoding="utf-8")
    head, sep, body = text.partition("\n---\n")
    lines = [f"title: 虚构示例负载测试副本{int(time.time())}" if line.startswith("title:") else line
             for line in head.split("\n")]
    return ("\n".join(lines) + sep + body.rstrip("\n")
            + f"\n\n附、{MARKER}\n\n本条为虚构示例（负载测试时复制的文件），{MARKER}用于确认重建后可检索。\n")


def start_server(index: Path, corpus: Path, port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    handle = log.open("wb")
    return subprocess.Popen(
        kb_command("serve", "--index", str(index), "--corpus", str(corpus), "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(workers), "--threads", str(threads)),
        env=child_env(), cwd=index.parent, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)


def wait_ready(port: int, server: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"kb serve exited with {server.returncode}:\n{log.read_text('utf-8', 'replace')[-3000:]}")
        try:
            if get(port, "/api/search?q=" + quote("专精特新"), timeout=5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"kb serve did not answer within {timeout:.0f}s:\n{log.read_text('utf-8', 'replace')[-3000:]}")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM the server's process group (gunicorn master and workers), SIGKILL what is left after 15 s."""
    if server.poll() is None:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=15)
    try:  # workers that outlived their master
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def searchable(port: int) -> bool:
    status, body = get(port, f"/api/search?q={quote(MARKER)}&k=3", timeout=30)
    return status == 200 and any(hit["doc_id"] == NEW_DOC_ID for hit in json.loads(body)["results"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="kb serve --workers (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="kb serve --threads (default 8)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to send load (default 30)")
    parser.add_argument("--rebuild-at", type=float, default=0.3,
                        help="when to start the rebuild, as a share of --seconds (default 0.3)")
    parser.add_argument("--corpus", type=Path, action="append",
                        help="corpus folder(s) to copy (default: ./corpus and two reports from ../shared)")
    parser.add_argument("--ready-timeout", type=float, default=300.0, help="seconds to wait for the server")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.clients < 1 or args.seconds <= 0:
        parser.error("--workers and --clients must be at least 1, --seconds above 0")
    corpora = args.corpus or [ROOT / "corpus"]
    extra = [SHARED_REPORTS / "gwr-2023.md", SHARED_REPORTS / "gwr-2024.md"]
    work = Path(tempfile.mkdtemp(prefix="kb-load-"))
    try:
        if not args.corpus and all(p.is_file() for p in extra):
            (work / "reports").mkdir()
            for path in extra:
                shutil.copy(path, work / "reports" / path.name)
            corpora.append(work / "reports")
        return run(args, work, corpora)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path, corpora: list[Path]) -> int:
    t0 = time.monotonic()
    corpus, index, source = prepare(work, corpora)
    built = time.monotonic() - t0
    port = free_port()
    log = work / "server.log"
    server = start_server(index, corpus, port, args.workers, args.threads, log)
    try:
        wait_ready(port, server, log, args.ready_timeout)
        ready = time.monotonic() - t0 - built
        doc_ids = sorted({hit["doc_id"] for q in QUERIES
                          for hit in json.loads(get(port, f"/api/search?q={quote(q)}&k=5")[1])["results"]})
        ctx = multiprocessing.get_context("fork")
        stop, results = ctx.Event(), ctx.Queue()
        plan = request_plan(doc_ids)
        clients = [ctx.Process(target=client, args=(i, port, plan, stop, results), daemon=True)
                   for i in range(args.clients)]
        start = time.monotonic()
        for proc in clients:
            proc.start()
        rebuild = rebuild_in_the_middle(args, port, corpus, index, source, start)
        while time.monotonic() - start < args.seconds:
            time.sleep(0.05)
        stop.set()
        elapsed = time.monotonic() - start
        collected = [results.get(timeout=60) for _ in clients]
        for proc in clients:
            proc.join(timeout=10)
    finally:
        stop_server(server)
    server_log = log.read_text("utf-8", "replace")
    return report(args, collected, elapsed, rebuild, server_log, built, ready, len(list(corpus.glob("*.md"))))


def rebuild_in_the_middle(args, port: int, corpus: Path, index: Path, source: Path, start: float) -> dict:
    """At --rebuild-at, add the new document and run `kb build`; then probe until every answer finds it."""
    while time.monotonic() - start < args.seconds * args.rebuild_at:
        time.sleep(0.05)
    (corpus / f"{NEW_DOC_ID}.md").write_text(new_document(source), encoding="utf-8")
    began = time.monotonic()
    done = subprocess.run(kb_command("build", "--corpus", str(corpus), "--index", str(index), "--quiet"),
                          env=child_env(), cwd=corpus.parent, capture_output=True, text=True)
    published = time.monotonic()
    info = {"at": began - start, "seconds": published - began, "ok": done.returncode == 0,
            "stderr": done.stderr[-500:], "searchable_after": None, "doc_page": None}
    if not info["ok"]:
        return info
    # every worker switches on its next request: wait until several answers in a row find the document
    in_a_row, first, deadline = 0, 0.0, max(start + args.seconds, published + 5) + 30
    while time.monotonic() < deadline:
        asked = time.monotonic()
        if searchable(port):
            first = first if in_a_row else asked
            in_a_row += 1
        else:
            in_a_row = 0
        if in_a_row >= 4 * args.workers:
            info["searchable_after"] = first - published
            break
        time.sleep(0.1)
    info["doc_page"] = get(port, f"/doc/{NEW_DOC_ID}")[0]
    return info


def report(args, collected: list[dict], elapsed: float, rebuild: dict, server_log: str, built: float,
           ready: float, documents: int) -> int:
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    samples: list[str] = []
    for part in collected:
        for kind, values in part["latencies"].items():
            latencies.setdefault(kind, []).extend(values)
        for kind, count in part["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
        samples += part["samples"]
    tracebacks = server_log.count("Traceback")
    everything = [v for values in latencies.values() for v in values]
    total_errors = sum(errors.values()) + tracebacks
    longer = " (kept up until the rebuild was searchable)" if elapsed > args.seconds + 1 else ""
    print(f"load: kb serve --workers {args.workers} --threads {args.threads}, {args.clients} client processes, "
          f"{elapsed:.1f} s{longer}, {documents} documents, KB_DENSE={os.environ.get('KB_DENSE', '1')}; "
          f"index built in {built:.1f} s, server ready in {ready:.1f} s")
    header = f"{'request':15} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>7}"
    print(header)
    print("-" * len(header))
    for kind in sorted(latencies) + ["all"]:
        values = everything if kind == "all" else latencies[kind]
        count_errors = sum(errors.values()) if kind == "all" else errors.get(kind, 0)
        if kind == "all":
            print("-" * len(header))
        print(f"{kind:15} {len(values):>9} {count_errors:>7} {1000 * percentile(values, 50):>8.1f} "
              f"{1000 * percentile(values, 95):>8.1f} {1000 * percentile(values, 99):>8.1f} "
              f"{len(values) / elapsed:>7.1f}")
    if rebuild["ok"]:
        found = (f"yes, {1000 * rebuild['searchable_after']:.0f} ms after publishing "
                 f"(then {4 * args.workers} answers in a row)"
                 if rebuild["searchable_after"] is not None else "NO")
        print(f"rebuild: started at {rebuild['at']:.1f} s, kb build published in {rebuild['seconds']:.1f} s; "
              f"new document searchable: {found}; /doc/{NEW_DOC_ID} -> {rebuild['doc_page']}")
    else:
        print(f"rebuild: kb build FAILED: {rebuild['stderr']}")
    print(f"server log: {tracebacks} traceback(s)")
    for line in samples[:5]:
        print(f"  error: {line}")
    ok = total_errors == 0 and rebuild["ok"] and rebuild["searchable_after"] is not None and rebuild["doc_page"] == 200
    print(f"RESULT: {'PASS' if ok else 'FAIL'} ({total_errors} errors)")
    if tracebacks:
        print(server_log[server_log.index("Traceback"):][:2000])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
