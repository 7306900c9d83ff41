"""`kb serve` keeps answering while `kb build` publishes new builds: a real server subprocess on a free
local port, queried without pause from threads while rebuilds (real subprocesses over copies of real
regulations from corpus/) add and remove documents. Zero failed requests; changes show without a restart.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import CORPUS, ROOT

BASE_DOCS = ("cujin-geti-gongshanghu-fazhan-tiaoli-2022.md", "baozhang-zhongxiaoqiye-kuanxiang-zhifu-tiaoli-2020.md")
# one per rebuild; the second publish also prunes the oldest build. Each is asked for by its title.
ADDED_DOCS = {"shuju-anquanfa-2021.md": "中华人民共和国数据安全法", "biaozhunhua-fa-2017.md": "中华人民共和国标准化法"}
QUERIES = ("个体工商户", "款项支付", "中小企业 合同", *ADDED_DOCS.values())
MAX_SECONDS = 30
MAX_REQUESTS = 5000
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for a local server


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["KB_DENSE"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(base: str, path: str, **params) -> tuple[int, bytes]:
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with _OPENER.open(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _found(base: str, doc_id: str, query: str) -> bool:
    status, body = _get(base, "/api/search", q=query, k=5)
    assert status == 200, body[:300]
    return doc_id in [hit["doc_id"] for hit in json.loads(body)["results"]]


TITLES = {**ADDED_DOCS, "cujin-geti-gongshanghu-fazhan-tiaoli-2022.md": "促进个体工商户发展条例",
          "baozhang-zhongxiaoqiye-kuanxiang-zhifu-tiaoli-2020.md": "保障中小企业款项支付条例"}


def _title_query(name: str) -> str:
    return TITLES[name]


def _rebuild(corpus: Path, index: Path) -> tuple[float, float]:
    """Run `kb build` as a subprocess; return when it started and ended."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "kb.cli", "build", "--corpus", str(corpus), "--index", str(index)],
                          env=_env(), cwd=corpus.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "built" in done.stdout
    return start, time.monotonic()


class Load:
    """Runs probes from threads until stopped (bounded by time and count), recording failures.

    A probe raises AssertionError for a wrong answer; any exception (HTTP error, refused
    connection, timeout) counts as a failed request.
    """

    def __init__(self, probes) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.failures: list[str] = []
        self.statuses: dict[int, int] = {}
        self.threads = [threading.Thread(target=self._run, args=(probe, n), daemon=True)
                        for n, probe in enumerate(probes)]

    def status(self, code: int) -> int:
        with self.lock:
            self.statuses[code] = self.statuses.get(code, 0) + 1
        return code

    def _run(self, probe, n: int) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while not self.stop.is_set() and time.monotonic() < deadline:
            with self.lock:
                if len(self.times) + len(self.failures) >= MAX_REQUESTS:
                    return
            try:
                probe(self, n)
            except Exception as exc:
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
            else:
                with self.lock:
                    self.times.append(time.monotonic())
            n += 1

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)

    def done_between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(start <= t <= end for t in self.times)


def _search_and_read(base: str, stable: tuple[str, ...]):
    """A probe: JSON search, the search page, and the page of the top result that no rebuild removes."""

    def probe(load: Load, n: int) -> None:
        query = QUERIES[n % len(QUERIES)]
        status, body = _get(base, "/api/search", q=query, k=3)
        if load.status(status) != 200:
            raise AssertionError(f"/api/search {query!r}: HTTP {status} {body[:200]!r}")
        results = json.loads(body)["results"]
        if not results and query not in map(_title_query, ADDED_DOCS):  # the base documents answer the others
            raise AssertionError(f"/api/search {query!r}: no results")
        status, body = _get(base, "/search", q=query)
        if load.status(status) != 200:
            raise AssertionError(f"/search {query!r}: HTTP {status}")
        kept = [r for r in results if r["doc_id"] + ".md" in stable]
        if kept:
            status, body = _get(base, kept[0]["url"].split("#")[0])
            if load.status(status) != 200 or kept[0]["clause_id"].encode() not in body:
                raise AssertionError(f"{kept[0]['url']}: HTTP {status}")

    return probe


@pytest.fixture()
def server(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    for name in BASE_DOCS:
        shutil.copy(CORPUS / name, corpus / name)
    _rebuild(corpus, index)
    port = _free_port()
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", "--index", str(index), "--corpus", str(corpus),
                             "--host", "127.0.0.1", "--port", str(port)],
                            env=_env(), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (log.seek(0), log.read())[1]
            try:
                if _get(base, "/api/search", q="个体工商户")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield base, corpus, index, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_rebuilds_publish_while_the_server_keeps_answering(server):
    base, corpus, index, proc = server
    for name in ADDED_DOCS:
        assert not _found(base, name[:-3], _title_query(name))
    builds = []
    with Load([_search_and_read(base, BASE_DOCS + tuple(ADDED_DOCS))] * 2) as load:
        time.sleep(1.0)  # queries are flowing before the first rebuild starts
        for name in ADDED_DOCS:
            shutil.copy(CORPUS / name, corpus / name)
            builds.append(_rebuild(corpus, index))
            # the very next request sees the new build: no restart, no waiting
            assert _found(base, name[:-3], _title_query(name)), name
            time.sleep(0.5)  # keep querying the freshly loaded build for a moment
    assert proc.poll() is None, "the server stopped"
    assert load.failures == [], load.failures[:5]
    assert len(load.times) >= 20 and set(load.statuses) == {200}
    for start, end in builds:
        assert load.done_between(start, end + 0.5) > 0  # requests were answered across each publish
    for name in BASE_DOCS + tuple(ADDED_DOCS):
        assert _found(base, name[:-3], _title_query(name)), name
    assert len(list((index / "builds").iterdir())) == 2  # current + previous; the oldest was pruned


def test_removing_a_document_while_it_is_being_read(server):
    base, corpus, index, proc = server
    removed = BASE_DOCS[1]
    doc_id = removed[:-3]

    def read_removed(load: Load, n: int) -> None:
        # before the removal is published the page is there, after it is gone: 200 and 404 are both right
        status, body = _get(base, f"/doc/{doc_id}")
        if load.status(status) not in (200, 404):
            raise AssertionError(f"/doc/{doc_id}: HTTP {status} {body[:200]!r}")
        for path in ("/api/search", "/search"):
            status, body = _get(base, path, q=_title_query(removed))
            if load.status(status) != 200:
                raise AssertionError(f"{path} {_title_query(removed)!r}: HTTP {status} {body[:200]!r}")

    builds = []
    with Load([read_removed, read_removed, _search_and_read(base, BASE_DOCS[:1])]) as load:
        time.sleep(1.0)
        trash = corpus / ".trash"
        trash.mkdir()
        for _ in range(2):  # remove, put back, remove again: the document disappears under readers twice
            (corpus / removed).rename(trash / removed)  # what the admin page's "remove" does
            builds.append(_rebuild(corpus, index))
            assert not _found(base, doc_id, _title_query(removed))
            assert _get(base, f"/doc/{doc_id}")[0] == 404
            time.sleep(0.3)
            (trash / removed).rename(corpus / removed)
            builds.append(_rebuild(corpus, index))
            assert _found(base, doc_id, _title_query(removed))
            time.sleep(0.3)
    assert proc.poll() is None, "the server stopped"
    assert load.failures == [], load.failures[:5]
    assert load.statuses.get(200) and load.statuses.get(404)
    for start, end in builds:
        assert load.done_between(start, end + 0.3) > 0
