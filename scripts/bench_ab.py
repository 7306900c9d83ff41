"""Benchmark: two checkouts of kb served side by side from one index, requests alternating.

    git worktree add /tmp/kb-base <commit>
    python scripts/bench_ab.py --index /tmp/kb-eval --base /tmp/kb-base \
        [--gold tests/data/dev_voice_laws.jsonl] [--repeats 3]

Starts `kb serve` twice (this checkout and --base, each on its own code through PYTHONPATH, the
same index, free ports), sends every question of --gold to both over keep-alive connections,
one after the other, the order swapped every pass, and prints the HTTP p50 / p95 / mean of each
and their ratio. Both servers see the same machine load, so the ratio means more than either
figure (a machine's speed varies by 10 % or more between runs here).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(code: Path, index: Path, port: int, log) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["PYTHONPATH"] = str(code)
    return subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", "--index", str(index), "--host", "127.0.0.1",
                             "--port", str(port)], cwd=tempfile.gettempdir(), env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def ask(conn: http.client.HTTPConnection, question: str) -> None:
    conn.request("GET", "/api/search?" + urllib.parse.urlencode({"q": question, "k": 10, "mode": "hybrid"}))
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"HTTP {response.status} for {question!r}")


def wait_ready(proc: subprocess.Popen, port: int) -> http.client.HTTPConnection:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kb serve on port {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            ask(conn, "专精特新")
            return conn
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"kb serve on port {port} did not answer within {START_TIMEOUT} s")


def summary(times: list[float]) -> tuple[float, float, float]:
    ordered = sorted(times)
    return (statistics.median(ordered) * 1e3, ordered[int(0.95 * (len(ordered) - 1))] * 1e3,
            statistics.mean(ordered) * 1e3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, help="a built index both checkouts can open")
    parser.add_argument("--base", type=Path, required=True, help="the other checkout (e.g. a git worktree)")
    parser.add_argument("--gold", type=Path, default=ROOT / "tests" / "data" / "dev_voice_laws.jsonl")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the questions (3)")
    args = parser.parse_args(argv)
    if not (args.base / "kb" / "cli.py").is_file():
        parser.error(f"{args.base} is not a checkout of this project (no kb/cli.py)")
    questions = [json.loads(line)["query"] for line in args.gold.read_text(encoding="utf-8").splitlines() if line.strip()]
    sides = {"this checkout": ROOT, "base": args.base.resolve()}
    procs, conns = {}, {}
    with tempfile.TemporaryDirectory(prefix="kb-ab-") as work:
        try:
            for name, code in sides.items():
                port = free_port()
                log = open(Path(work) / f"{port}.log", "wb")
                procs[name] = start(code, args.index, port, log)
                conns[name] = wait_ready(procs[name], port)
            for name in sides:  # one warm-up pass each
                for q in questions:
                    ask(conns[name], q)
            times: dict[str, list[float]] = {name: [] for name in sides}
            order = list(sides)
            for rep in range(args.repeats):
                for q in questions:
                    for name in (order if rep % 2 == 0 else order[::-1]):
                        t0 = time.perf_counter()
                        ask(conns[name], q)
                        times[name].append(time.perf_counter() - t0)
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(timeout=30)
    base_p50 = summary(times["base"])[0]
    print(f"| server ({len(questions)} questions of {args.gold.name} x {args.repeats}, alternating) "
          "| p50 | p95 | mean | p50 / base p50 |")
    print("|---|---|---|---|---|")
    for name, code in sides.items():
        p50, p95, mean = summary(times[name])
        print(f"| {name} ({code}) | {p50:.1f} ms | {p95:.1f} ms | {mean:.1f} ms | {p50 / base_p50:.2f} |")
    load = os.getloadavg()
    print(f"\nLoad average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
