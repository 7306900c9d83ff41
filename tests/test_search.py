"""Search over a real index (corpus/ plus two real government work reports when ../shared is present, real encoder)."""

from __future__ import annotations

import pytest

from kb.search import Filters, QueryError, SearchOptions, clean_query

from conftest import needs_reports


def test_target_question_returns_targets_clause_first(built_index):
    result = built_index.search("国家级专精特新小巨人企业到2025年要培育多少家", SearchOptions(k=5))
    top = result.hits[0]
    assert "企业25家" in top.clause.text
    assert top.clause.path == ("二、主要内容", "2.拟定主要目标")
    assert top.doc.doc_id == "lianyungang-zjtx-plan-interpretation"


@pytest.mark.parametrize("mode", ["lexical", "dense", "hybrid"])
def test_every_mode_returns_whole_clauses(built_index, mode):
    result = built_index.search("数字技术赋能工程", SearchOptions(k=3, mode=mode))
    assert result.hits
    for hit in result.hits:
        clause = built_index.index().clause(hit.doc.doc_id, hit.clause.clause_id)
        assert clause.text == hit.clause.text  # the whole clause, not a window


@needs_reports
def test_year_named_in_question_finds_that_report(built_index):
    result = built_index.search("制造业和科技型中小企业的研发费用加计扣除比例，2023年提高到了多少", SearchOptions(k=5))
    assert any("提高至100%" in h.clause.text and h.doc.doc_id == "gwr-2023" for h in result.hits[:3])


def test_nothing_relevant_is_never_a_confident_answer(built_index):
    # 量子 occurs in the reports (量子科技), so weak matches may come back, flagged; the rest is unknown
    result = built_index.search("量子色动力学夸克禁闭", SearchOptions(k=5))
    assert result.confidence in ("low", "none") and result.message


def test_filters_never_return_outside_documents(built_index):
    result = built_index.search("中小企业", SearchOptions(k=20, filters=Filters(level=("municipal",))))
    assert result.hits and all(h.doc.get("level") == "municipal" for h in result.hits)
    result = built_index.search("中小企业", SearchOptions(k=20, filters=Filters(year_from=2024, year_to=2024)))
    assert result.hits and all(h.doc.get("published").startswith("2024") or h.doc.doc_id == "gwr-2024"
                               for h in result.hits)


@pytest.mark.parametrize("bad", ["", "   ", "\x00\x01", "字" * 600])
def test_bad_queries_are_refused(bad):
    with pytest.raises(QueryError):
        clean_query(bad)


def test_control_characters_and_surrogates_are_dropped():
    assert clean_query("专精\x00特新\ud800") == "专精 特新"


@pytest.mark.parametrize("question", ["红烧肉怎么做才好吃", "What is the capital of France?", "昨晚湖人队的比分是多少", "啊啊啊啊"])
def test_off_topic_questions_are_refused(built_index, question):
    result = built_index.search(question, SearchOptions(k=5))
    assert result.hits == () and result.confidence == "none" and result.message


def test_a_weak_match_is_answered_and_flagged(built_index):
    # 租金 is a word of the policies, but nothing in the seed or the two reports answers this
    result = built_index.search("商铺租金太高能找谁反映", SearchOptions(k=5))
    assert result.hits and result.confidence == "low" and result.message
    sure = built_index.search("国家级专精特新小巨人企业到2025年要培育多少家", SearchOptions(k=5))
    assert sure.confidence == "high" and not sure.message


def test_analysis_is_what_search_used(built_index):
    result = built_index.search("我们企业有没有融资方面的支持", SearchOptions(k=3))
    q = result.understanding
    assert "有没有" in q.frames and "有没有" not in result.terms and "有没有" not in dict(q.word_query)
    assert result.hits and all(e.weight < 1 for e in q.expansions)
    assert built_index.searcher().relevance("融资").max() == pytest.approx(1.0)


def test_a_how_long_question_lifts_the_clauses_stating_a_time_limit(built_index):
    """专利权多久 asks for a time: clauses whose text states one (专利法 第四十二条: 期限为二十年) score
    1 + slot_weight times what they score without slots; the others score the same."""
    from dataclasses import replace

    from kb.retrieval.fusion import Tuning
    from kb.retrieval.slots import BITS, TIME, chunk_slots

    index = built_index.index()
    assert index.slot_bits is not None and len(index.slot_bits) == len(index.chunk_ids)
    # the everyday situations off in both runs: they add after the factors, and this is about the slot factor
    # (with them, 专利法实施细则 第六十三条, 专利权评价报告 … 2个月内, ranks first and 第四十二条 second)
    no_situations = dict(situation_weight=0.0, situation_dense_weight=0.0)
    on = built_index.search("专利权多久", replace(SearchOptions(k=100), tuning=Tuning(**no_situations)))
    assert on.understanding.slot == TIME
    assert on.hits[0].clause.text.startswith("第四十二条")
    off = built_index.search("专利权多久", replace(SearchOptions(k=100), tuning=Tuning(slot_weight=0.0, **no_situations)))
    before = {(h.doc.doc_id, h.clause.clause_id): h.score for h in off.hits}
    lifted = same = 0
    for h in on.hits:
        old = before.get((h.doc.doc_id, h.clause.clause_id))
        if not old or not h.clause.text == index.clause(h.doc.doc_id, h.clause.clause_id).text:
            continue
        if len(h.clause.text) < 300:  # one chunk: the clause's text is the chunk's
            if chunk_slots(h.clause.text) & BITS[TIME]:
                assert h.score == pytest.approx(old * 1.3, rel=1e-3)
                lifted += 1
            else:
                assert h.score == pytest.approx(old, rel=1e-3)
                same += 1
    assert lifted and same
