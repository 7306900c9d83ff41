"""Chunking invariants on real documents: every character is in exactly one chunk of its clause, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.chunk import LEAD_CHARS, MAX_CHUNK_CHARS, chunk_document, is_title_line, item_starts
from kb.corpus import read_corpus
from kb.structure import parse_clauses

from conftest import CORPUS, GWR, shared_available


def _check(doc):
    clauses = parse_clauses(doc)
    chunks = chunk_document(doc, clauses)
    assert "".join(ch.text for ch in chunks) == doc.body
    spans = {c.clause_id: (c.start, c.end) for c in clauses}
    pos = 0
    for ch in chunks:
        assert ch.start == pos
        a, b = spans[ch.clause_id]
        assert a <= ch.start < ch.end <= b
        assert doc.body[ch.start:ch.end] == ch.text
        clause = next(c for c in clauses if c.clause_id == ch.clause_id)
        assert (ch.index_text == "") if is_title_line(doc, clause) else (doc.title in ch.index_text)
        pos = ch.end
    assert len({ch.chunk_id for ch in chunks}) == len(chunks)
    return clauses, chunks


def test_seed_chunks_partition_body():
    doc = next(d for d in read_corpus([CORPUS]) if d.doc_id == "lianyungang-zjtx-plan-interpretation")  # the seed
    clauses, chunks = _check(doc)
    target = next(ch for ch in chunks if "企业25家" in ch.text)
    assert "2.拟定主要目标" in target.index_text
    title_line = next(c for c in clauses if c.text.startswith("《连云港市"))
    assert is_title_line(doc, title_line)  # the body's repeat of the title is not retrieved on its own


@pytest.mark.skipif(not shared_available(), reason="../shared/corpora missing")
def test_all_government_reports_partition_and_stay_short():
    docs = read_corpus([GWR])
    assert len(docs) > 50
    long_chunks = 0
    for doc in docs:
        _, chunks = _check(doc)
        long_chunks += sum(1 for ch in chunks if len(ch.text) > 2 * MAX_CHUNK_CHARS)
    assert long_chunks == 0


def _doc(stem):
    return next(d for d in read_corpus([CORPUS]) if Path(d.source_path).stem == stem)


def test_a_clause_listing_items_is_chunked_per_item_with_its_lead_in():
    # 就业促进法 第十七条 (real text): "…对下列企业、人员依法给予税收优惠:" then （一） to （六）
    from kb.index import _dense_text

    doc = _doc("jiuye-cujinfa-2015")
    clauses, chunks = _check(doc)
    clause = next(c for c in clauses if c.text.startswith("第十七条"))
    mine = [ch for ch in chunks if ch.clause_id == clause.clause_id]
    assert [ch.text.strip()[:3] for ch in mine] == ["第十七", "（一）", "（二）", "（三）", "（四）", "（五）", "（六）"]
    lead, first = mine[0], mine[1]
    assert lead.context == "" and "吸纳" not in lead.text
    assert first.context.endswith("对下列企业、人员依法给予税收优惠:") and len(first.context) <= LEAD_CHARS
    assert first.text.strip().startswith("（一）吸纳符合国家规定条件的失业人员达到规定要求的企业")
    assert first.context in first.index_text and doc.title in first.index_text  # BM25 reads the lead-in
    assert f"{first.context} {first.text.strip()}" in _dense_text(doc, clause, first)  # and so does the encoder


def test_item_markers_must_start_a_list_in_order():
    assert item_starts("（二）乙；（三）丙") == []  # a list starts at 一
    assert item_starts("对下列企业：（一）甲；") == []  # one item is no list
    text = "有下列情形之一的：（一）甲；（二）乙；（三）丙。"
    assert [text[i:i + 3] for i in item_starts(text)] == ["（一）", "（二）", "（三）"]
    # references are not items: "前款第（一）项、第（二）项" (专利法, real text) stays one piece
    doc = _doc("zhuanlifa-2020")
    clauses, chunks = _check(doc)
    ref = next(ch for ch in chunks if "前款第（一）项、第（二）项" in ch.text)
    assert ref.text.strip().startswith("（五）")  # the list's last item, with the paragraph after it
    assert not any(ch.text.lstrip().startswith(("（一）项", "（二）项")) for ch in chunks)
    # 一是 …二是 …三是 … in the seed (real text): one chunk per principle, each read with the heading
    seed = next(d for d in read_corpus([CORPUS]) if d.doc_id == "lianyungang-zjtx-plan-interpretation")
    clauses, chunks = _check(seed)
    principles = [ch for ch in chunks if "三大基本原则" in ch.index_text and "是" in ch.text[:3]]
    assert [ch.text[:2] for ch in principles] == ["一是", "二是", "三是"]
