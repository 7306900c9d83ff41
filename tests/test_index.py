"""Index folder: build, round trip, no-change rebuild, incremental update, atomic publish, mismatch."""

from __future__ import annotations

import json
import shutil

import pytest

from kb.index import BUILDS_DIR, IndexHandle, IndexMismatch, IndexMissing, build_index, read_current
from kb.segment import Segmenter

from conftest import CORPUS, SEED_DOC


@pytest.fixture()
def corpus_copy(tmp_path):
    folder = tmp_path / "corpus"
    shutil.copytree(CORPUS, folder)
    return folder


def test_round_trip_lexical(tmp_path, corpus_copy):
    seg = Segmenter()
    report = build_index([corpus_copy], tmp_path / "idx", None, seg)
    n_docs = len(list(CORPUS.glob("*.md")))
    assert not report.up_to_date and report.documents == n_docs and report.chunks >= report.clauses > 10
    name = read_current(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / BUILDS_DIR / name / "manifest.json").read_text())
    assert manifest["counts"] == {"documents": n_docs, "clauses": report.clauses, "chunks": report.chunks,
                                  "situations": report.situations}
    assert report.situations > 1000  # the bundled table lands in the bundled corpus
    index = IndexHandle(tmp_path / "idx", None).current()
    assert index.n_clauses == report.clauses and len(index.chunk_ids) == report.chunks
    clauses = index.clauses_of("lianyungang-zjtx-plan-interpretation")
    assert any(c.heading == "数字技术赋能工程" for c in clauses)
    doc = index.document("lianyungang-zjtx-plan-interpretation")
    assert "八大工程" in doc.body

    again = build_index([corpus_copy], tmp_path / "idx", None, seg)
    assert again.up_to_date and read_current(tmp_path / "idx") == name


def test_change_and_removal_publish_new_build(tmp_path, corpus_copy):
    seg = Segmenter()
    idx = tmp_path / "idx"
    build_index([corpus_copy], idx, None, seg)
    handle = IndexHandle(idx, None)
    first = handle.current()
    # made-up document for the test (虚构示例, not a real policy)
    (corpus_copy / "extra.md").write_text("---\ntitle: 测试文件\n---\n\n一、测试条款\n虚构示例：海鸥牌测试条款。\n",
                                          encoding="utf-8")
    report = build_index([corpus_copy], idx, None, seg)
    assert report.changed_documents == ["extra"]
    second = handle.current()
    assert second is not first and "extra" in second.doc_row
    (corpus_copy / "extra.md").unlink()
    report = build_index([corpus_copy], idx, None, seg)
    assert report.removed_documents == ["extra"]
    assert "extra" not in handle.current().doc_row
    builds = [p.name for p in (idx / BUILDS_DIR).iterdir()]
    assert len(builds) <= 2  # current and previous only


def test_leftover_partial_build_is_cleaned_and_ignored(tmp_path, corpus_copy):
    seg = Segmenter()
    idx = tmp_path / "idx"
    build_index([corpus_copy], idx, None, seg)
    partial = idx / BUILDS_DIR / ".tmp-dead"
    partial.mkdir()
    (partial / "store.sqlite").write_bytes(b"half")
    build_index([corpus_copy], idx, None, seg, force=True)
    assert not partial.exists()


def test_missing_and_mismatched_index(tmp_path, corpus_copy):
    with pytest.raises(IndexMissing, match="kb build"):
        IndexHandle(tmp_path / "none", None).current()
    build_index([corpus_copy], tmp_path / "idx", None, Segmenter())
    name = read_current(tmp_path / "idx")
    manifest_path = tmp_path / "idx" / BUILDS_DIR / name / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["encoder"]["id"] = "some-other-model"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="rebuild"):
        IndexHandle(tmp_path / "idx", "use-multilingual-v3@x").current()
    manifest["schema_version"] = 999
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="schema"):
        IndexHandle(tmp_path / "idx", None).current()


def test_real_encoder_index_has_vectors_with_stable_ids(built_index):
    index = built_index.index()
    assert index.faiss is not None and index.faiss.ntotal == len(index.chunk_ids)
    rows = index.rows_for_chunk_ids(index.chunk_ids[:5])
    assert list(rows) == [0, 1, 2, 3, 4]
    report = built_index.build()
    assert report.up_to_date


def test_annotations_are_cached_by_what_the_annotator_reads(tmp_path):
    from kb import roles

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seed = corpus / SEED_DOC.name
    shutil.copy(SEED_DOC, seed)
    calls: list[str] = []

    def annotate(doc, clause):
        calls.append(clause.clause_id)
        return roles.annotate_clause(doc, clause)

    seg = Segmenter()
    first = build_index([corpus], tmp_path / "idx", None, seg, annotate=annotate, annotator_version="v1")
    assert len(calls) == first.clauses
    stored = _annotations(tmp_path / "idx")
    calls.clear()
    build_index([corpus], tmp_path / "idx", None, seg, annotate=annotate, annotator_version="v1", force=True)
    assert calls == [] and _annotations(tmp_path / "idx") == stored  # every clause from the cache, unchanged
    build_index([corpus], tmp_path / "idx", None, seg, annotate=annotate, annotator_version="v2", force=True)
    assert len(calls) == first.clauses  # a new annotator version annotates again
    calls.clear()
    text = seed.read_text(encoding="utf-8")
    seed.write_text(text.replace("region: 江苏省连云港市", "region: 连云港市", 1), encoding="utf-8")
    assert seed.read_text(encoding="utf-8") != text
    build_index([corpus], tmp_path / "idx", None, seg, annotate=annotate, annotator_version="v2")
    assert len(calls) == first.clauses  # the metadata changed: the document's clauses are annotated again
    calls.clear()
    build_index([corpus], tmp_path / "idx", None, seg, annotate=annotate, annotator_version="", force=True)
    assert len(calls) == first.clauses  # an annotator without a version is never taken from the cache


def _annotations(index_dir):
    import sqlite3

    build = index_dir / BUILDS_DIR / read_current(index_dir) / "store.sqlite"
    db = sqlite3.connect(build)
    try:
        return [row[0] for row in db.execute("SELECT annotation_json FROM clauses ORDER BY row")]
    finally:
        db.close()
