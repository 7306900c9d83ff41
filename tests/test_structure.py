"""Clause tree: the seed's real structure, mixed numbering styles, offsets."""

from __future__ import annotations

from kb.corpus import read_document
from kb.structure import classify_line, lead_sentence, parse_clauses
from kb.types import Document

from conftest import SEED_DOC

EIGHT_PROJECTS = ["优质企业梯度培育工程", "创新能级提升工程", "协作配套强链工程", "质量品牌创优工程",
                  "高价值专利培育工程", "数字技术赋能工程", "特色金融助力工程", "服务体系升级工程"]


def _doc(body: str) -> Document:
    return Document("t", "t", (("title", "t"),), body, "h")


def test_seed_eight_projects_are_clauses_under_key_tasks():
    doc = read_document(SEED_DOC, "seed")
    clauses = parse_clauses(doc)
    by_heading = {c.heading: c for c in clauses}
    for name in EIGHT_PROJECTS:
        clause = by_heading[name]
        assert clause.path == ("二、主要内容", "3.排定重点任务", name)
        assert clause.text.startswith(name + "。")
        assert clause.kind == "lead"


def test_seed_inconsistent_numbering_nests_correctly():
    clauses = parse_clauses(read_document(SEED_DOC, "seed"))
    paths = {c.heading: c.path for c in clauses if c.heading}
    assert paths["1、 制定背景"] == ("1、 制定背景",)
    assert paths["二、主要内容"] == ("二、主要内容",)  # a sibling of "1、", not its child
    assert paths["1. 三大基本原则"] == ("二、主要内容", "1. 三大基本原则")
    assert paths["2.拟定主要目标"] == ("二、主要内容", "2.拟定主要目标")
    assert paths["4.落实保障措施"] == ("二、主要内容", "4.落实保障措施")
    targets = next(c for c in clauses if c.heading == "2.拟定主要目标")
    assert "企业25家" in targets.text  # the heading keeps its body


def test_clauses_partition_body_in_order():
    doc = read_document(SEED_DOC, "seed")
    clauses = parse_clauses(doc)
    assert clauses[0].start == 0 and clauses[-1].end == len(doc.body)
    for a, b in zip(clauses, clauses[1:]):
        assert a.end == b.start
    assert len({c.clause_id for c in clauses}) == len(clauses)
    for c in clauses:
        assert doc.body[c.start:c.end].strip() == c.text


def test_reference_inside_sentence_is_not_a_heading():
    assert classify_line("按照第三条规定执行") is None
    assert classify_line("第三条规定的企业应当申报") is None  # no space after 条: a reference, not a heading
    assert classify_line("第三条　企业应当申报")[0] == "article"
    assert classify_line("1.5倍以上") is None
    assert classify_line("2025年目标") is None


def test_articles_chapters_and_items_nest():
    # made-up regulation text for structure only (虚构示例, not a real policy)
    body = "\n".join([
        "第一章 总则",
        "第一条 为了测试结构解析，制定本办法。",
        "第二条 本办法所称企业，是指：",
        "（一）符合条件甲的企业；",
        "（二）符合条件乙的企业。",
        "第二章 支持措施",
        "第三条 按照第二条规定认定的企业，可以申请支持。",
        "# 附则",
        "第四条 本办法自发布之日起施行。",
    ])
    clauses = parse_clauses(_doc(body))
    paths = [c.path for c in clauses]
    # an article keeps its items: 第二条 is cited whole, with （一） and （二）
    second = next(c for c in clauses if c.heading.startswith("第二条"))
    assert second.path == ("第一章 总则", "第二条 本办法所称企业，是指")
    assert "（一）符合条件甲的企业；" in second.text and "（二）符合条件乙的企业。" in second.text
    assert not any(p[-1].startswith("（一）") for p in paths)
    third = next(c for c in clauses if c.heading.startswith("第三条"))
    assert third.path[0] == "第二章 支持措施"
    assert "按照第二条规定" in third.text
    fourth = next(c for c in clauses if c.heading.startswith("第四条"))
    assert fourth.path[0] == "附则"


def test_lead_sentence_rules():
    assert lead_sentence("数字技术赋能工程。着力实施中小企业数字化赋能专项行动。") == "数字技术赋能工程"
    assert lead_sentence("——经济总体回升向好。国内生产总值超过126万亿元。") == "经济总体回升向好"
    assert lead_sentence("坚持问题导向、需求导向，实施八大工程。分县区落实。") is None  # comma: a sentence, not a title
    assert lead_sentence("只有一句话。") is None
