"""The question's vector computed beside the lexical stages (kb.retrieval.dense.PendingVector) and the
stages rewritten for speed: each must give exactly what the plain version gives.

Texts are made up for the test, except where a test says it reads the bundled corpus.
"""

from __future__ import annotations

import difflib
import threading

import numpy as np
import pytest

from kb.embed import EncoderError, EncodingStopped, Stop
from kb.retrieval.dense import QUESTION_WORKERS, PendingVector
from kb.retrieval.fusion import best_chunk_per_clause, top_rows


class _Plain:
    """An encoder with only encode_queries (no stop, no question_job): the pool runs it as it is."""

    dim = 4

    def __init__(self, fail: bool = False, gate: threading.Event | None = None) -> None:
        self.fail, self.gate, self.calls = fail, gate, 0

    def encode_queries(self, texts):
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise EncoderError("no model here")
        return np.tile(np.array([[0.5, 0.5, 0.5, 0.5]], np.float32), (len(texts), 1))


def test_a_pending_vector_is_the_encoders_vector():
    pending = PendingVector(_Plain(), "小企业贷款")
    assert pending.result().tolist() == [[0.5, 0.5, 0.5, 0.5]]
    pending.cancel()  # after the result: nothing happens


def test_the_encoders_error_comes_out_of_result():
    with pytest.raises(EncoderError, match="no model"):
        PendingVector(_Plain(fail=True), "小企业贷款").result()


def test_a_cancelled_vector_is_never_used():
    gate = threading.Event()
    busy = [PendingVector(_Plain(gate=gate), f"占住线程{i}") for i in range(QUESTION_WORKERS)]  # every worker waits
    queued_encoder = _Plain()
    queued = PendingVector(queued_encoder, "排队的问题")
    queued.cancel()
    gate.set()
    for p in busy:
        p.result()
    with pytest.raises(EncodingStopped):
        queued.result()
    assert queued_encoder.calls == 0  # cancelled before a worker was free: never encoded


def test_stop_runs_hooks_once_and_late_hooks_at_once():
    stop, seen = Stop(), []
    stop.on_stop(lambda: seen.append("early"))
    stop.stop()
    stop.stop()
    stop.on_stop(lambda: seen.append("late"))
    assert seen == ["early", "late"] and stop.stopped


def _best_chunk_reference(score, chunk_clause, m):
    """best_chunk_per_clause as it was written first: a loop over the best rows."""
    best = {}
    for row in top_rows(score, m * 4):
        if not np.isfinite(score[row]) or score[row] <= 0:
            break
        best.setdefault(int(chunk_clause[row]), int(row))
        if len(best) >= m:
            break
    return best


def test_best_chunk_per_clause_is_the_loop_it_replaced():
    rng = np.random.default_rng(7)
    for trial in range(200):
        n = int(rng.integers(1, 400))
        score = rng.random(n).astype(np.float32) - 0.3  # some at or below zero
        score[rng.random(n) < 0.05] = -np.inf  # filtered out
        score[rng.random(n) < 0.1] = 0.25  # ties
        chunk_clause = np.sort(rng.integers(0, max(1, n // 2), n))
        m = int(rng.integers(1, 60))
        got = best_chunk_per_clause(score, chunk_clause, m)
        want = _best_chunk_reference(score, chunk_clause, m)
        assert got == want and list(got) == list(want), trial


def test_ratio_is_difflibs_with_its_bounds():
    from kb.versions import _ratio

    def reference(a, b):
        sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
        if sm.real_quick_ratio() < 0.5 or sm.quick_ratio() < 0.5:
            return 0.0
        return sm.ratio()

    rng = np.random.default_rng(3)
    alphabet = list("企业应当按照规定缴纳税款中小型专利权期限年")
    for _ in range(300):
        a = "".join(rng.choice(alphabet, int(rng.integers(0, 40))))
        b = "".join(rng.choice(alphabet, int(rng.integers(0, 40)))) if rng.random() < 0.5 else a[::-1] + a[:5]
        assert _ratio.__wrapped__(a, b) == reference(a, b), (a, b)


# made-up questions: everyday ones (the dense channel is needed) and ones in the documents' words (lexically sure)
QUESTIONS = ["我们是小公司，大企业拖着货款不给怎么办", "研发费用能不能多抵一些税", "发明专利权的期限为多少年",
             "专精特新中小企业认定有什么条件", "企业所得税的税率是多少", "招投标的时候能不能照顾小企业", "葡萄怎么种"]


def test_search_with_the_early_vector_is_search_without_it(built_index, monkeypatch):
    import kb.search as search_module
    from kb.search import SearchOptions

    searcher = built_index.searcher()
    used = []
    real_result = PendingVector.result
    monkeypatch.setattr(PendingVector, "result", lambda self: used.append(self.text) or real_result(self))
    early = {(q, m): searcher.search(q, SearchOptions(k=10, mode=m)) for q in QUESTIONS for m in ("hybrid", "dense")}
    assert used and len(used) < 2 * len(QUESTIONS)  # some questions took the dense channel, some were sure without
    monkeypatch.setattr(searcher, "_question_encoder", None)  # the vector computed where it is needed
    monkeypatch.setattr(search_module, "PendingVector", None)
    for (q, m), before in early.items():
        after = searcher.search(q, SearchOptions(k=10, mode=m))
        assert (after.confidence, after.coverage) == (before.confidence, before.coverage), q
        assert [(h.doc.doc_id, h.clause.clause_id, h.score, h.channels) for h in after.hits] == \
               [(h.doc.doc_id, h.clause.clause_id, h.score, h.channels) for h in before.hits], q


def test_clauses_at_fetches_in_the_order_given(built_index):
    index = built_index.searcher().index
    rows = [5, 0, index.n_clauses - 1, 5]
    assert index.clauses_at(rows) == [index.clause_at(r) for r in rows]
    assert index.clauses_at([]) == []


def test_eligibility_candidates_are_those_of_the_full_scan(built_index):
    from kb.eligibility import NEEDS, RETRIEVAL_ONLY_FLOOR, _match_table, _clause_relevance, need_query, Profile

    searcher = built_index.searcher()
    table = _match_table(searcher.index)
    found = 0
    for kind in NEEDS:
        rel = _clause_relevance(searcher, need_query(kind, Profile()))
        want = [e for e in table.entries if e.annotation.get("role", "task") != "background" and (
            kind in e.annotation.get("kinds", []) or (e.annotation.get("role") == "support"
                                                       and float(rel[e.row]) >= RETRIEVAL_ONLY_FLOOR))]
        assert table.candidates(kind, rel) == want, kind
        found += len(want)
    assert found > 0
