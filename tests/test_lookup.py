"""Officials' lookups: clause by heading words or number, quoted phrases, titles; no embeddings needed."""

from __future__ import annotations

import shutil

import pytest

from kb.config import Settings
from kb.lookup import parse_clause_query, title_matches
from kb.search import Filters, SearchOptions
from kb.service import KnowledgeBase

from conftest import CORPUS

EIGHT_PROJECTS = ["优质企业梯度培育工程", "创新能级提升工程", "协作配套强链工程", "质量品牌创优工程",
                  "高价值专利培育工程", "数字技术赋能工程", "特色金融助力工程", "服务体系升级工程"]


@pytest.mark.parametrize("name", EIGHT_PROJECTS)
def test_each_project_by_name_comes_first_and_exact(built_index, name):
    hit = built_index.search(name, SearchOptions(k=3)).hits[0]
    assert hit.clause.heading == name and hit.exact


@pytest.fixture(scope="module")
def article_kb(tmp_path_factory):
    """A made-up regulation with 30 articles (虚构示例, not a real policy), indexed lexical-only."""
    root = tmp_path_factory.mktemp("articles")
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    cn = "零一二三四五六七八九"

    def cn_num(n: int) -> str:
        tens, ones = divmod(n, 10)
        return (("" if tens == 1 else cn[tens]) + "十" if tens else "") + (cn[ones] if ones else "")

    lines = ["# 第一章 总则"]
    for i in range(1, 31):
        if i == 11:
            lines.append("第二章 支持措施")
        lines.append(f"第{cn_num(i)}条　虚构示例条款{i}：测试用文字，第{cn_num(i)}号事项按照第三条规定办理。")
    (corpus / "made-up-rules.md").write_text(
        "---\ntitle: 虚构测试管理办法\nlevel: provincial\ndoc_no: 测试〔2024〕1号\n---\n\n" + "\n".join(lines) + "\n",
        encoding="utf-8")
    kb = KnowledgeBase(Settings(corpus_dirs=(corpus,), index_dir=root / "index", dense=False))
    kb.build()
    return kb


@pytest.mark.parametrize("query", ["第24条", "第二十四条", "第２４条", "《虚构测试管理办法》第二十四条", "虚构测试管理办法 第24条"])
def test_article_number_lookup(article_kb, query):
    hits = article_kb.search(query, SearchOptions(k=5)).hits
    assert hits[0].clause.heading.startswith("第二十四条") and hits[0].exact
    assert hits[0].clause.path[0] == "第二章 支持措施"


def test_reference_inside_text_is_not_matched_as_heading(article_kb):
    hits = article_kb.search("第三条", SearchOptions(k=10, filters=Filters(doc_ids=("made-up-rules",)))).hits
    assert hits[0].clause.heading.startswith("第三条")
    assert sum(1 for h in hits if h.exact) == 1  # "按照第三条规定" in 29 other articles is not a heading
    everywhere = article_kb.search("第三条", SearchOptions(k=10)).hits  # the bundled laws have theirs
    assert all(h.clause.heading.startswith("第三条") for h in everywhere if h.exact)


def test_quoted_phrase_returns_only_clauses_containing_it(built_index):
    for query in ("“专属金融产品”", '"研发投入强度超过5%"', "「知识产权质押融资」"):  # all three in corpus/
        phrase = parse_clause_query(query).phrases[0]
        hits = built_index.search(query, SearchOptions(k=20)).hits
        assert hits, query
        for hit in hits:
            assert phrase.replace(" ", "") in hit.clause.text.replace(" ", "")
            assert hit.exact
    assert built_index.search("“这句话不在任何文件里”", SearchOptions(k=5)).hits == ()


def test_quoted_phrase_respects_filters(built_index):
    hits = built_index.search("“中小企业”", SearchOptions(k=50, filters=Filters(level=("municipal",)))).hits
    assert hits and {h.doc.get("level") for h in hits} == {"municipal"}


def test_parse_references():
    cq = parse_clause_query("《江苏省…行动计划》第二部分（三）")
    assert cq.title == "江苏省…行动计划" and cq.markers == ("cn_dun:2", "paren_cn:3")
    assert parse_clause_query("第24条").markers == ("article:24",)
    assert parse_clause_query("(三)").markers == ("paren_cn:3",)
    assert parse_clause_query("三、主要任务").markers == ("cn_dun:3",)
    assert parse_clause_query("“专属金融产品”是什么").phrases == ("专属金融产品",)
    assert title_matches("江苏省…行动计划", "江苏省专精特新企业培育三年行动计划（2023-2025年）")
    assert not title_matches("浙江省…行动计划", "江苏省专精特新企业培育三年行动计划（2023-2025年）")
