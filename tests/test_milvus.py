"""The Milvus backend is the same search: channel scores and top-5 equal the embedded backend's, filters run inside
Milvus, the alias switches under queries with no failure, and a crashed build leaves the alias on the old build.

Runs on milvus-lite (a local file) with the same pymilvus calls a server gets; skipped when pymilvus or
milvus-lite are not installed (pip install -e ".[milvus]"). With KB_TEST_MILVUS_URI=http://host:19530 the same
tests run against that Milvus server instead (they drop its kb_* collections first: use a server of your own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the milvus extra is not installed (pip install -e \".[milvus]\")")
if not os.environ.get("KB_TEST_MILVUS_URI"):
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install -e \".[milvus]\")")

from kb.backends import Where  # noqa: E402
from kb.backends import milvus  # noqa: E402
from kb.config import Settings  # noqa: E402
from kb.search import Filters, SearchOptions  # noqa: E402
from kb.service import KnowledgeBase  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared"
GWR = SHARED / "corpora" / "gov-work-reports"
DEV = SHARED / "eval" / "dev.jsonl"
# a few real documents of corpus/ (the seed and both versions of one regulation): milvus-lite 3.x is a
# Python engine, so the whole bundled corpus would take minutes per build
SMALL = ("lianyungang-zjtx-plan-interpretation.md", "baozhang-zhongxiaoqiye-kuanxiang-zhifu-tiaoli-2020.md",
         "baozhang-zhongxiaoqiye-kuanxiang-zhifu-tiaoli-2025.md")


SERVER = os.environ.get("KB_TEST_MILVUS_URI", "")


def _uri(folder: Path) -> str:
    """Return where the test's Milvus lives: a milvus-lite file in `folder`, or the test server emptied of kb_* data."""
    if not SERVER:
        return str(folder / "m.db")
    mc = milvus.client(SERVER)
    if milvus.supports_aliases(mc) and milvus.ALIAS in milvus._aliases(mc):
        mc.drop_alias(milvus.ALIAS)
    for name in mc.list_collections():
        if name.startswith(milvus.PREFIX) or name == milvus.POINTER:
            mc.drop_collection(name)
    return SERVER


def _small_corpus(folder: Path) -> Path:
    """Copy the SMALL documents of corpus/ into `folder` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SMALL:
        (folder / name).write_bytes((CORPUS / name).read_bytes())
    return folder


def _questions(kb: KnowledgeBase) -> list[str]:
    """The dev questions when ../shared is there, and the clause headings of the index (no answers written here)."""
    qs = [json.loads(line)["query"] for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if DEV.is_file() else []
    index = kb.index()
    heads = [index.clause_at(r).heading for r in range(min(index.n_clauses, 200))]
    qs += [h for h in dict.fromkeys(heads) if len(h) >= 4][:40]
    return qs


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """One real index (a few documents of corpus/, plus two reports when ../shared is there) served by both backends."""
    corpus = _small_corpus(tmp_path_factory.mktemp("corpus"))
    for name in ("gwr-2024.md", "gwr-1954.md"):
        if (GWR / name).is_file():
            (corpus / name).write_bytes((GWR / name).read_bytes())
    index_dir = tmp_path_factory.mktemp("index")
    uri = _uri(index_dir)
    mkb = KnowledgeBase(Settings(corpus_dirs=(corpus,), index_dir=index_dir, backend="milvus", milvus_uri=uri))
    mkb.build()
    ekb = KnowledgeBase(Settings(corpus_dirs=(corpus,), index_dir=index_dir))
    assert mkb.index().build_dir == ekb.index().build_dir
    yield ekb, mkb, uri
    milvus.close(uri)


def test_channel_scores_equal(pair):
    ekb, mkb, _ = pair
    es, ms = ekb.searcher(), mkb.searcher()
    assert ms.backend.name == "milvus" and es.backend.name == "embedded"
    compared = 0
    for question in _questions(ekb):
        q = es.analyse(question)
        for channel, weights in (("words", dict(q.word_query)), ("bigrams", dict(q.bigram_query)),
                                 ("everyday", {w: 1.0 for w in q.user_words})):
            if not es.backend.has_channel(channel):
                continue
            a = es.backend.lexical(channel, weights)
            b = ms.backend.lexical(channel, weights)
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5, err_msg=f"{channel} for {question}")
            compared += int(np.count_nonzero(a))
        da = es.backend.dense(question, 10_000)
        db = ms.backend.dense(question, 10_000)
        np.testing.assert_allclose(db, da, rtol=1e-5, atol=1e-5, err_msg=f"dense for {question}")
    assert compared > 0


def test_serving_is_lean(pair):
    """A Milvus-backed replica reads neither the FAISS file nor the BM25 matrices into memory; Milvus scores."""
    ekb, mkb, _ = pair
    index, searcher = mkb.index(), mkb.searcher()
    assert index.lean and index.faiss is None and index.has_vectors
    assert isinstance(index.bm25_words.scores["indices"], np.memmap)
    assert searcher.backend.dense_available()
    assert searcher.backend.lexical_candidates == mkb.settings.milvus_lexical_candidates
    assert not ekb.index().lean and ekb.index().faiss is not None


def test_top5_identical(pair):
    ekb, mkb, _ = pair
    questions = _questions(ekb)
    same = 0
    for question in questions:
        a = ekb.search(question, SearchOptions(k=5))
        b = mkb.search(question, SearchOptions(k=5))
        ka = [(h.doc.doc_id, h.clause.clause_id) for h in a.hits]
        kb_ = [(h.doc.doc_id, h.clause.clause_id) for h in b.hits]
        if ka == kb_ and a.confidence == b.confidence:
            same += 1
            assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits], abs=2e-4)
    assert same >= 0.95 * len(questions), f"{same} of {len(questions)} identical"


def test_filters_run_inside_milvus(pair):
    ekb, mkb, _ = pair
    index = ekb.index()
    if len(index.documents) < 2:
        pytest.skip("filters need more than one document (../shared is not present)")
    es, ms = ekb.searcher(), mkb.searcher()
    first = index.documents[0]
    for filters in (Filters(doc_ids=(first.doc_id,)), Filters(level=("national",)), Filters(year_from=2000),
                    Filters(active_only=True)):
        mask = es.doc_mask(filters)
        expr = milvus.filter_expression(filters, mask)
        assert expr
        q = es.analyse("企业 发展 创新")
        where = Where(filters, mask)
        b = ms.backend.lexical("words", dict(q.word_query), where)
        a = es.backend.lexical("words", dict(q.word_query), where)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
        inside = mask[index.chunk_doc]
        assert not np.any(b[~inside]), f"Milvus returned rows outside {filters}"
        # what Milvus answers for the filter alone is exactly the mask's rows
        got = mkb.milvus().query(ms.backend.collection, filter=expr, output_fields=["row"], limit=16384)
        assert sorted(int(r["row"]) for r in got) == sorted(np.flatnonzero(inside).tolist())
        ra = ekb.search("企业 发展 创新", SearchOptions(k=5, filters=filters, mode="lexical"))
        rb = mkb.search("企业 发展 创新", SearchOptions(k=5, filters=filters, mode="lexical"))
        assert [h.clause.clause_id for h in ra.hits] == [h.clause.clause_id for h in rb.hits]
        assert all(mask[index.doc_row[h.doc.doc_id]] for h in rb.hits)


def test_clause_row_by_id(pair):
    ekb, mkb, _ = pair
    index = ekb.index()
    for row in (0, index.n_clauses - 1):
        doc = index.documents[int(index.clause_doc[row])]
        clause = index.clause_at(row)
        assert mkb.searcher().backend.clause_row(doc.doc_id, clause.clause_id) == row
    assert mkb.searcher().backend.clause_row("no-such-doc", "c1") is None


@pytest.fixture()
def seed_kb(tmp_path):
    """A milvus-backed knowledge base over a few documents of corpus/ (quick to rebuild)."""
    uri = _uri(tmp_path)
    kb = KnowledgeBase(Settings(corpus_dirs=(_small_corpus(tmp_path / "corpus"),), index_dir=tmp_path / "index", backend="milvus", milvus_uri=uri))
    kb.build()
    yield kb, uri
    milvus.close(uri)


def test_alias_switch_under_queries(seed_kb):
    kb, _ = seed_kb
    question = kb.index().clause_at(1).heading or "专精特新"
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                result = kb.search(question, SearchOptions(k=3))
                assert result.hits
                answered[0] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                failures.append(repr(exc))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    builds = []
    try:
        for _ in range(2):
            builds.append(kb.build(force=True).build_name)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert answered[0] > 0
    mc = kb.milvus()
    assert milvus.build_of_alias(mc) == builds[-1]
    kept = sorted(c for c in mc.list_collections() if c.startswith(milvus.PREFIX))
    assert kept == sorted(milvus.collection_name(b) for b in builds)  # the first build's collection was dropped


def test_exception_during_build_keeps_alias(seed_kb, monkeypatch):
    kb, _ = seed_kb
    mc = kb.milvus()
    before = milvus.build_of_alias(mc)
    monkeypatch.setattr(milvus, "INSERT_BATCH", 5)

    def boom(done, total):
        raise RuntimeError("simulated crash")

    from kb.index import build_index

    report = build_index(list(kb.settings.corpus_dirs), kb.settings.index_dir, kb.encoder(), kb.segmenter, force=True)
    with pytest.raises(RuntimeError, match="simulated crash"):
        milvus.publish_build(mc, kb.settings.index_dir, report.build_name, kb.encoder_id(), on_batch=boom)
    assert milvus.build_of_alias(mc) == before
    assert kb.search("专精特新", SearchOptions(k=3)).hits
    assert mc.has_collection(milvus.collection_name(report.build_name))  # the half-built one, until the next publish
    done = milvus.publish_build(mc, kb.settings.index_dir, report.build_name, kb.encoder_id())
    assert milvus.build_of_alias(mc) == report.build_name and done.rows == len(kb.index().chunk_ids)


KILL_SCRIPT = r"""
import os, signal, sys
from pathlib import Path
from kb.backends import milvus
from kb.index import read_current
index_dir, uri = Path(sys.argv[1]), sys.argv[2]
milvus.INSERT_BATCH = 5
mc = milvus.client(uri)
def die(done, total):
    os.kill(os.getpid(), signal.SIGKILL)
milvus.publish_build(mc, index_dir, read_current(index_dir), None, on_batch=die)
"""


def test_kill_during_build_keeps_alias(seed_kb):
    kb, uri = seed_kb
    before = milvus.build_of_alias(kb.milvus())
    from kb.index import build_index

    build_index(list(kb.settings.corpus_dirs), kb.settings.index_dir, kb.encoder(), kb.segmenter, force=True)  # a new build, not published
    milvus.close(uri)  # a milvus-lite file is open in one process at a time
    # no KB_* settings of the caller; HOME and the rest stay (the native milvus-lite server needs them)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KB_")}, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(kb.settings.index_dir), uri], env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    mc = None
    for _ in range(50):  # the killed process's milvus-lite server lets go of the file shortly after
        try:
            mc = milvus.client(uri)
            break
        except Exception:  # noqa: BLE001
            import time

            time.sleep(0.2)
    assert mc is not None
    assert milvus.build_of_alias(mc) == before
    fresh = KnowledgeBase(kb.settings)
    assert fresh.search("专精特新", SearchOptions(k=3)).hits
