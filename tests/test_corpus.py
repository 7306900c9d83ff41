"""Corpus reader: front matter, errors, stable URL-safe ids across several folders."""

from __future__ import annotations

import re

import pytest

from kb.corpus import CorpusError, assign_doc_ids, list_corpus_files, parse_front_matter, read_corpus, render_document

from conftest import CORPUS, SEED_DOC, SHARED


def test_seed_document_front_matter_and_text_kept_exactly():
    doc = next(d for d in read_corpus([CORPUS]) if d.doc_id == "lianyungang-zjtx-plan-interpretation")  # the seed
    seed_txt = next((SHARED / "seed").glob("*.txt")) if (SHARED / "seed").is_dir() else None
    assert doc.title == "《连云港市专精特新企业培育三年行动计划（2022-2025年）》政策解读"
    assert doc.get("issuer") == "连云港市工业和信息化局"
    assert doc.get("level") == "municipal"
    assert doc.get("status") == "interpretation"
    assert doc.get("doc_type") == "政策解读"
    assert "征求意见稿" in doc.get("source_note") and "2023-2025" in doc.get("source_note")
    if seed_txt:
        assert doc.body == seed_txt.read_text(encoding="utf-8")


def test_front_matter_errors_are_clear():
    with pytest.raises(CorpusError, match="no front matter"):
        parse_front_matter("正文", name="x.md")
    with pytest.raises(CorpusError, match="not closed"):
        parse_front_matter("---\ntitle: a\nissuer: b\n", name="x.md")
    with pytest.raises(CorpusError, match="no 'title'"):
        parse_front_matter("---\nissuer: a\n---\n正文", name="x.md")
    with pytest.raises(CorpusError, match="not 'key: value'"):
        parse_front_matter("---\ntitle: a\n这不是键值\n---\n", name="x.md")


def test_unknown_keys_kept_and_render_round_trip():
    meta, body = parse_front_matter("---\ntitle: 标题\nfoo_bar: 值\n---\n\n正文一\n正文二\n")
    assert meta == {"title": "标题", "foo_bar": "值"}
    again = parse_front_matter(render_document(meta, body))
    assert again == (meta, body)


def test_doc_ids_unique_and_url_safe_across_folders(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.md").write_text("---\ntitle: x\n---\n正文\n", encoding="utf-8")
    (tmp_path / "a" / "政策文件.md").write_text("---\ntitle: y\n---\n正文\n", encoding="utf-8")
    files = list_corpus_files([tmp_path / "a", tmp_path / "b", CORPUS])
    ids = assign_doc_ids(files)
    assert len(set(ids.values())) == len(files)
    for doc_id in ids.values():
        assert re.fullmatch(r"[a-z0-9][a-z0-9\-]*", doc_id), doc_id
    assert ids[SEED_DOC] == "lianyungang-zjtx-plan-interpretation"
    assert assign_doc_ids(list(reversed(files))) == ids  # order does not change ids


def test_bad_files_are_refused_with_the_file_named(tmp_path):
    (tmp_path / "bad.md").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CorpusError, match="bad.md"):
        read_corpus([tmp_path])
    with pytest.raises(CorpusError, match="not found"):
        read_corpus([tmp_path / "missing"])
