"""Chunking invariants on real documents: every character is in exactly one chunk of its clause, in order."""

from __future__ import annotations

import pytest

from kb.chunk import MAX_CHUNK_CHARS, chunk_document, is_title_line
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
