"""Everyday situations (kb/retrieval/situations.py): the table, where each situation lands, the per-clause
scores, their fusion, and a build and search that use them.

Every document and situation below is MADE UP for the tests (虚构示例, no real organ or policy), except
where the bundled table and corpus are named.
"""

from __future__ import annotations

import numpy as np
import pytest

from kb.retrieval import situations as S
from kb.retrieval.fusion import Tuning, for_encoder, fuse_situations, USE_SCALE
from kb.segment import Segmenter
from kb.types import Clause

from conftest import CORPUS


def clause(doc_id: str, cid: str, text: str) -> Clause:
    return Clause(doc_id, cid, (text[:10],), "", "article", 1, 0, len(text), text)


def test_the_table_skips_comments_and_broken_lines_and_versions_its_content(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("# made up\nd1\t第一条\t小店的招牌被人照抄了怎么办\nd1\t第二条\n\nd1\t\t空锚点\n", encoding="utf-8")
    table = S.read_situations(path)
    assert table.rows == (S.Situation("d1", "第一条", "小店的招牌被人照抄了怎么办"),)
    path.write_text("d1\t第一条\t另一句情境描述的文字\n", encoding="utf-8")
    assert S.read_situations(path).version != table.version
    missing = S.read_situations(tmp_path / "absent.tsv")
    assert not missing and missing.version == "none"


def test_a_situation_lands_on_the_article_it_names_else_the_innermost_clause_quoting_its_anchor():
    clauses = [("d1", clause("d1", "c1", "第一条 虚构示例：经营者应当标明招牌。")),
               ("d1", clause("d1", "c2", "第二条 虚构示例：依照第一条处理。")),
               ("d1", clause("d1", "p1", "虚构示例的开头段落，讲背景。")),
               ("d2", clause("d2", "c1", "第一条 虚构示例：另一份文件。"))]
    table = S.SituationTable((S.Situation("d1", "第一条", "招牌被人抄了"),  # label: the article, not 第二条's reference
                              S.Situation("d1", "虚构示例的开头", "讲讲背景是什么"),
                              S.Situation("d2", "第一条", "另一份文件说的事"),
                              S.Situation("d1", "第九条", "没有这一条"),  # anchor nowhere: left out
                              S.Situation("d9", "第一条", "文件不在语料里")), "v")
    rows, texts = S.locate(table, clauses)
    assert rows.tolist() == [0, 2, 3]
    assert texts == ["招牌被人抄了", "讲讲背景是什么", "另一份文件说的事"]


def test_each_clause_scores_by_its_best_situation(tmp_path):
    seg = Segmenter()
    texts = ["小店招牌被人抄了", "网店卖辣酱要许可吗", "招牌能不能注册"]
    S.save_field(tmp_path / "f", np.array([0, 2, 0]), texts, [seg.words(t) for t in texts],
                 np.eye(3, 4, dtype=np.float32))
    field = S.SituationField.load(tmp_path / "f", n_clauses=4)
    lexical = field.best_per_clause(field.word_scores({"招牌": 1.0}))
    assert lexical[0] > 0 and lexical[1] == lexical[2] == lexical[3] == 0  # clause 0 has two, scores its best
    assert lexical[0] == pytest.approx(max(field.words.scores({"招牌": 1.0})[[0, 2]]))
    cosine = field.best_per_clause(field.cosines(np.array([0.6, 0.8, 0.0, 0.0], dtype=np.float32)))
    assert cosine.tolist() == pytest.approx([0.6, 0.0, 0.8, 0.0])  # situations 0 and 2 are clause 0s; 1 is clause 2s
    # the text shown for a clause is its best-scoring situation
    assert field.best_text(0, np.array([0.1, 0.9, 0.5])) == ("招牌能不能注册", 0.5)
    assert field.best_text(2, np.array([0.1, 0.9, 0.5])) == ("网店卖辣酱要许可吗", 0.9)
    assert field.best_text(1, np.array([0.1, 0.9, 0.5])) == ("", 0.0)
    assert S.SituationField.load(tmp_path / "none", n_clauses=4) is None
    with pytest.raises(ValueError):
        S.SituationField(np.array([5]), field.words, None, n_clauses=4)


def test_situation_fusion_weighs_each_part_above_its_floor():
    t = for_encoder(Tuning(situation_weight=0.3, situation_dense_weight=0.4, situation_floor=0.8), USE_SCALE)
    lexical = np.array([2.0, 1.0, 0.0], dtype=np.float32)
    cosine = np.array([0.7, 0.9, 0.85], dtype=np.float32)
    out = fuse_situations(lexical, cosine, t)
    assert out.tolist() == pytest.approx([0.3, 0.15 + 0.4, 0.2])
    assert fuse_situations(lexical, None, t).tolist() == pytest.approx([0.3, 0.15, 0.0])
    assert fuse_situations(None, None, t) is None
    assert fuse_situations(lexical, cosine, Tuning(situation_weight=0.0, situation_dense_weight=0.0)) is None
    # the encoder's floor unless the tuning sets one; USE's is off (1.0): no cosine passes
    assert for_encoder(Tuning(), USE_SCALE).situation_floor == 1.0


def test_a_build_places_situations_and_a_question_in_their_words_finds_the_article(tmp_path, monkeypatch):
    import kb.index as index_module
    from kb.index import IndexHandle, build_index
    from kb.search import SearchOptions, Searcher, with_tuning

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # a made-up regulation (虚构示例) whose articles use legal words only
    (corpus / "xugou-tiaoli.md").write_text(
        "---\ntitle: 虚构示例条例\n---\n\n"
        "第一条 虚构示例：经营者使用的商业标识受本条例保护，他人不得擅自仿冒或者作其他足以引人误认的使用。\n\n"
        "第二条 虚构示例：经营者应当依法办理纳税申报。\n\n"
        "第三条 虚构示例：经营场所变更的，应当办理变更登记。\n", encoding="utf-8")
    table = tmp_path / "situations.tsv"
    table.write_text("# made up\nxugou-tiaoli\t第一条\t小店门口的招牌被隔壁照着做了一块\n"
                     "xugou-tiaoli\t第三条\t店面搬到别的街上要跑哪些手续\n", encoding="utf-8")
    monkeypatch.setattr(index_module, "situations", lambda: S.read_situations(table))
    seg = Segmenter()
    report = build_index([corpus], tmp_path / "idx", None, seg)
    assert report.situations == 2 and report.embedded_situations == 0  # no encoder: words only
    index = IndexHandle(tmp_path / "idx", None).current()
    assert index.situations is not None and len(index.situations) == 2
    searcher = Searcher(index, None, seg)
    # the question shares only the made-up marker with the texts, where the longest article ranks last
    question = "虚构示例：隔壁照着我家招牌做了一块一样的"
    on = searcher.search(question, SearchOptions(k=3, mode="lexical"))
    assert on.hits and on.hits[0].clause.text.startswith("第一条")
    # the hit says which situation brought it, apart from the clause's own text
    assert on.hits[0].situation == "小店门口的招牌被隔壁照着做了一块"
    assert dict(on.hits[0].channels)["situation"] > 0
    from kb.present import hit_to_json

    shown = hit_to_json(on.hits[0])
    assert shown["situation"]["text"] == on.hits[0].situation and "不是政策原文" in shown["situation"]["note"]
    assert shown["text"] == on.hits[0].clause.text and on.hits[0].situation not in shown["text"]
    assert all(not h.situation for h in on.hits[1:])  # the other articles' situations did not match
    off = searcher.search(question, with_tuning(SearchOptions(k=3, mode="lexical"), situation_weight=0.0))
    assert off.hits and not off.hits[0].clause.text.startswith("第一条")
    # a changed table is a changed build
    table.write_text("xugou-tiaoli\t第二条\t每个月报税怎么报\n", encoding="utf-8")
    again = build_index([corpus], tmp_path / "idx", None, seg)
    assert not again.up_to_date and again.situations == 1


def test_the_bundled_table_lands_in_the_bundled_corpus():
    """Every row of kb/data/situations.tsv names a document of corpus/ and an anchor found in it."""
    table = S.situations()
    assert len(table.rows) > 1000
    bodies = {p.stem: p.read_text(encoding="utf-8") for p in CORPUS.glob("*.md")}
    lost = [s for s in table.rows if s.doc_id not in bodies or s.anchor not in bodies[s.doc_id]]
    assert not lost, lost[:5]
    assert all(8 <= len(s.text) <= 40 for s in table.rows)


def test_texts_read_as_questions_are_cached_apart_from_passages(tmp_path):
    from kb.embed import EmbeddingCache

    class Fake:  # a made-up encoder: passages and questions get different vectors
        model_id, dim = "fake", 2
        calls: list[str] = []

        def encode_documents(self, texts, progress=None):
            self.calls.append("passages")
            return np.tile(np.array([1.0, 0.0], np.float32), (len(texts), 1))

        def encode_queries(self, texts):
            self.calls.append("questions")
            return np.tile(np.array([0.0, 1.0], np.float32), (len(texts), 1))

    cache, enc = EmbeddingCache(tmp_path / "e.sqlite"), Fake()
    try:
        passages = cache.embed(enc, ["同一段文字"])
        questions = cache.embed(enc, ["同一段文字"], questions=True)
        assert passages.tolist() == [[1.0, 0.0]] and questions.tolist() == [[0.0, 1.0]]
        assert cache.embed(enc, ["同一段文字"], questions=True).tolist() == [[0.0, 1.0]]  # from the cache
        assert enc.calls == ["passages", "questions"]
    finally:
        cache.close()


def test_the_page_and_the_api_show_the_situation_that_matched_apart_from_the_clause(client):
    """A question worded like one of the bundled situations: its article is found, and the result says
    which situation brought it, marked as not policy text."""
    row = next(s for s in S.situations().rows if s.doc_id == "shangbiaofa-2019" and s.anchor.startswith("第"))
    data = client.get("/api/search", query_string={"q": row.text, "k": 5}).get_json()
    hit = next(r for r in data["results"] if r["doc_id"] == "shangbiaofa-2019" and r["text"].startswith(row.anchor))
    assert hit["situation"]["text"] == row.text and "不是政策原文" in hit["situation"]["note"]
    page = client.get("/search", query_string={"q": row.text}).get_data(as_text=True)
    assert 'class="situation"' in page and "不是政策原文" in page


def test_situations_follow_their_article_into_a_later_version(tmp_path, monkeypatch):
    """A law revised after its situations were written keeps them on the version in force: the same article,
    matched as the changes page matches it (here renumbered by an inserted article)."""
    import kb.index as index_module
    from kb.index import IndexHandle, build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    head = "---\ntitle: 虚构示例条例\nissuer: 虚构机关\npublished: {}\n---\n\n"  # made up (虚构示例)
    (corpus / "xugou-2020.md").write_text(
        head.format("2020-01-01") + "第一条 虚构示例：为了测试，制定本条例。\n\n"
        "第二条 虚构示例：经营场所变更的，应当在三十日内办理变更登记。\n", encoding="utf-8")
    (corpus / "xugou-2024.md").write_text(
        head.format("2024-01-01") + "第一条 虚构示例：为了测试，制定本条例。\n\n"
        "第二条 虚构示例：新增的一条规定。\n\n"
        "第三条 虚构示例：经营场所变更的，应当在三十日内办理变更登记。\n", encoding="utf-8")
    table = tmp_path / "situations.tsv"
    table.write_text("xugou-2020\t第二条\t店面搬到别的街上要跑哪些手续\n", encoding="utf-8")
    monkeypatch.setattr(index_module, "situations", lambda: S.read_situations(table))
    report = build_index([corpus], tmp_path / "idx", None, Segmenter())
    assert report.situations == 2
    index = IndexHandle(tmp_path / "idx", None).current()
    placed = {(index.documents[int(index.clause_doc[r])].doc_id, index.clause_at(int(r)).text[:3])
              for r in index.situations.clause_rows}
    assert placed == {("xugou-2020", "第二条"), ("xugou-2024", "第三条")}
    # a later version with situations of its own keeps only its own
    table.write_text("xugou-2020\t第二条\t店面搬到别的街上要跑哪些手续\nxugou-2024\t第二条\t新规定说的是什么\n",
                     encoding="utf-8")
    build_index([corpus], tmp_path / "idx", None, Segmenter())
    index = IndexHandle(tmp_path / "idx", None).current()
    placed = {(index.documents[int(index.clause_doc[r])].doc_id, index.clause_at(int(r)).text[:3])
              for r in index.situations.clause_rows}
    assert placed == {("xugou-2020", "第二条"), ("xugou-2024", "第二条")}
