"""Laws in their published form: `kb add` of law texts, versions, repeal, what changed, the bundled measures.

The texts below are made up (虚构示例) in the published form of laws, for mechanics only; the
tests over the bundled corpus read the real documents in corpus/ (and ../shared when present).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import CORPUS, SHARED
from kb.corpus import parse_front_matter, read_corpus
from kb.ingest import ingest_bytes
from kb.structure import parse_clauses
from kb.types import Clause, Document, Hit
from kb.versions import compare_versions, derive_versions, fold_versions, prefer_in_force, title_key

RAW_LAWS = SHARED / "raw" / "national-laws"

# 虚构示例: a made-up regulation in the published form (title, 题注, marker, chapters, articles, items)
MADE_UP_V1 = """# 虚构企业促进示例条例

2001年3月4日 中华人民共和国国务院令第901号公布

2010年5月6日 《国务院关于修改〈虚构企业促进示例条例〉的决定》第一次修订　

<!-- INFO END -->

## 第一章 总 则

第一条 为了测试法规导入，制定本条例。

第二条 本条例所称示例企业，是指符合下列条件的企业：

(一)从业人数不超过50人；

(二)资产总额不超过500万元。

## 第二章 附则

第三条 示例企业应当在30日内完成登记。

第四条 本条例自2010年7月1日起施行。
"""

MADE_UP_V2 = """# 虚构企业促进示例条例

2001年3月4日 中华人民共和国国务院令第901号公布

2010年5月6日 《国务院关于修改〈虚构企业促进示例条例〉的决定》第一次修订　

2020年8月9日 中华人民共和国国务院令第977号第二次修订）

<!-- INFO END -->

## 第一章 总 则

第一条 为了测试法规导入，制定本条例。

第二条 示例主管部门负责本条例的实施。

第三条 本条例所称示例企业，是指符合下列条件的企业：

(一)从业人数不超过50人；

(二)资产总额不超过500万元。

## 第二章 附则

第四条 示例企业应当在30日内完成登记，合同另有约定的，从其约定，但最长不得超过60日。

第五条 本条例自2020年10月1日起施行。《虚构旧示例办法》同时废止。
"""

MADE_UP_NO_HISTORY = """# 虚构个体示例条例

<!-- INFO END -->

第一条 为了测试没有题注的法规，制定本条例。

第二条 本条例自公布之日起施行。
"""


def _add(data: str, filename: str, **overrides):
    return ingest_bytes(data.encode("utf-8"), filename, overrides or None)


def test_markdown_without_front_matter_is_read_as_a_law():
    result = _add(MADE_UP_V1, "虚构企业促进示例条例(2010-05-06).md")
    meta = result.meta
    assert meta["title"] == "虚构企业促进示例条例"
    assert (meta["issuer"], meta["level"], meta["doc_type"]) == ("国务院", "national", "行政法规")
    assert meta["published"] == "2010-05-06"
    assert "doc_no" not in meta  # the 2010 line names no 令 number; 第901号 is the 2001 version's
    assert meta["valid_from"] == "2010-07-01" and "第四条" in meta["valid_from_note"]
    assert meta["history"].split("；")[0] == "2001年3月4日 中华人民共和国国务院令第901号公布"
    assert len(meta["history"].split("；")) == 2
    assert "LawRefBook" in meta["source"] and "第五条" in meta["license"]
    assert "INFO END" not in result.body and "2001年3月4日" not in result.body
    assert result.suggested_name.endswith("-2010") and re.fullmatch(r"[a-z0-9-]+", result.suggested_name)
    # the structure parser sees the chapters and the articles, items inside their article
    doc = Document("d", meta["title"], tuple(meta.items()), result.body, "h")
    clauses = parse_clauses(doc)
    second = next(c for c in clauses if c.heading.startswith("第二条"))
    assert second.path[0] == "第一章 总 则" and "(二)资产总额不超过500万元。" in second.text
    assert next(c for c in clauses if c.heading.startswith("第四条")).path[0] == "第二章 附则"


def test_version_order_number_and_a_later_commencement():
    result = _add(MADE_UP_V2, "x.txt")
    assert result.meta["doc_no"] == "国务院令第977号"
    assert result.meta["published"] == "2020-08-09" and result.meta["valid_from"] == "2020-10-01"


def test_file_name_date_is_the_last_fallback_and_is_reported():
    result = _add(MADE_UP_NO_HISTORY, "虚构个体示例条例(2022-10-01).md")
    assert result.meta["published"] == "2022-10-01"
    assert any("file name" in w for w in result.warnings)
    assert result.meta["valid_from"] == "2022-10-01"  # 自公布之日起施行
    assert "issuer" in result.missing  # nothing states it: not invented


def test_law_in_docx_and_html(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("虚构企业促进示例条例", level=0)
    for line in MADE_UP_V2.split("\n")[1:]:
        if line.strip() and "INFO END" not in line:
            if line.startswith("## "):
                document.add_heading(line[3:], level=2)
            else:
                document.add_paragraph(line)
    path = tmp_path / "law.docx"
    document.save(path)
    from kb.ingest import ingest_file

    from_docx = ingest_file(path)
    assert from_docx.meta["doc_no"] == "国务院令第977号" and from_docx.meta["published"] == "2020-08-09"
    html = "<html><body><h1>虚构企业促进示例条例</h1>" + "".join(
        f"<p>{line}</p>" if not line.startswith("## ") else f"<h2>{line[3:]}</h2>"
        for line in MADE_UP_V2.split("\n")[1:] if line.strip()) + "</body></html>"
    from_html = _add(html, "law.html")
    assert from_html.meta["title"] == "虚构企业促进示例条例" and from_html.meta["valid_from"] == "2020-10-01"
    for result in (from_docx, from_html):
        assert "第四条 示例企业应当在30日内完成登记，合同另有约定的，从其约定，但最长不得超过60日。" in result.body


def test_kb_add_keeps_two_versions_side_by_side(tmp_path):
    from kb.cli import cli

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "v1.md").write_text(MADE_UP_V1, encoding="utf-8")
    (raw / "v2.md").write_text(MADE_UP_V2, encoding="utf-8")
    # the same year twice: the full date tells them apart
    (raw / "v1b.md").write_text(MADE_UP_V1.replace("2010年5月6日 《国务院", "2010年5月6日 《国务院").replace(
        "2010年5月6日", "2010年11月6日"), encoding="utf-8")
    corpus = tmp_path / "corpus"
    runner = CliRunner()
    result = runner.invoke(cli, ["add", "--corpus", str(corpus), str(raw / "v1.md"), str(raw / "v2.md")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["add", "--corpus", str(corpus), str(raw / "v1b.md")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in corpus.glob("*.md"))
    assert len(names) == 3 and any(n.endswith("-2020.md") for n in names)
    assert any(n.endswith("-2010-11-06.md") for n in names) and any(n.endswith("-2010.md") for n in names)
    assert all(len(n) <= 100 for n in names)


def _made_up_corpus(tmp_path: Path) -> list[Document]:
    folder = tmp_path / "laws"
    folder.mkdir()
    for text, name in ((MADE_UP_V1, "a(2010-05-06).md"), (MADE_UP_V2, "b(2020-08-09).md")):
        result = _add(text, name)
        (folder / f"{result.suggested_name}.md").write_text(result.doc_text, encoding="utf-8")
    # the act the second version repeals, present under its name
    old = _add("# 虚构旧示例办法\n\n1999年1月2日 中华人民共和国国务院令第800号公布\n\n"
               "第一条 为了测试废止，制定本办法。\n\n第二条 本办法自1999年2月1日起施行。\n", "c.txt")
    (folder / "old-act.md").write_text(old.doc_text, encoding="utf-8")
    return read_corpus([folder])


def test_versions_and_repeal_are_derived(tmp_path):
    docs = _made_up_corpus(tmp_path)
    by_title = {(d.title, d.get("published")): d for d in docs}
    v1 = by_title[("虚构企业促进示例条例", "2010-05-06")]
    v2 = by_title[("虚构企业促进示例条例", "2020-08-09")]
    old = by_title[("虚构旧示例办法", "1999-01-02")]
    versions = derive_versions(docs)
    f1 = versions.get(v1.doc_id)
    assert f1.superseded_by == v2.doc_id and f1.superseded_from == "2020-10-01"
    assert versions.valid_until(v1.doc_id) == "2020-09-30"
    assert [f.doc_id for f in versions.group(v2.doc_id)] == [v1.doc_id, v2.doc_id]
    # effective before the newer version applies, superseded from then on
    assert versions.effective_meta(v1, date(2020, 9, 30))["status"] == "effective"
    after = versions.effective_meta(v1, date(2020, 10, 1))
    assert after["status"] == "superseded" and after["valid_until"] == "2020-09-30"
    assert versions.get(old.doc_id).repealed_by == v2.doc_id
    assert versions.effective_meta(old, date(2021, 1, 1))["status"] == "repealed"
    assert versions.effective_meta(old, date(2019, 1, 1))["status"] == "effective"
    assert [r.target for r in versions.repeals] == [old.doc_id]
    assert title_key("《中华人民共和国虚构法》") == title_key("虚构法")


def test_what_changed_matches_renumbered_articles(tmp_path):
    docs = _made_up_corpus(tmp_path)
    v1, v2 = sorted((d for d in docs if d.title == "虚构企业促进示例条例"), key=lambda d: d.get("published"))
    changes = compare_versions(v1, v2)
    kinds = [(c.change, c.old.number if c.old else "", c.new.number if c.new else "") for c in changes]
    assert ("added", "", "第二条") in kinds
    assert ("unchanged", "第二条", "第三条") in kinds  # same text under a new number
    changed = next(c for c in changes if c.change == "changed" and c.new.number == "第四条")
    assert changed.old.number == "第三条" and changed.renumbered
    assert ("insert", "，合同另有约定的，从其约定，但最长不得超过60日") in changed.diff


def _hit(doc: Document, score: float) -> Hit:
    clause = Clause(doc.doc_id, "c1", ("第一条",), "第一条", "article", 0, 0, 1, "x")
    return Hit(rank=0, score=score, doc=doc, clause=clause)


def test_the_version_in_force_goes_first_when_they_match_about_equally(tmp_path):
    docs = _made_up_corpus(tmp_path)
    versions = derive_versions(docs)
    v1, v2 = sorted((d for d in docs if d.title == "虚构企业促进示例条例"), key=lambda d: d.get("published"))
    hits = prefer_in_force([_hit(v1, 1.0), _hit(v2, 0.95)], date(2024, 1, 1), versions)
    assert [h.doc.doc_id for h in hits] == [v2.doc_id, v1.doc_id] and [h.rank for h in hits] == [1, 2]
    # on a date before the newer version applied, the older one is in force and stays first
    hits = prefer_in_force([_hit(v1, 1.0), _hit(v2, 0.95)], date(2015, 1, 1), versions)
    assert hits[0].doc.doc_id == v1.doc_id
    # a much better match of the older version is not pushed down
    hits = prefer_in_force([_hit(v1, 1.0), _hit(v2, 0.3)], date(2024, 1, 1), versions)
    assert hits[0].doc.doc_id == v1.doc_id



def test_an_outdated_clause_with_the_same_text_folds_into_its_version_in_force(tmp_path):
    docs = _made_up_corpus(tmp_path)
    versions = derive_versions(docs)
    v1, v2 = sorted((d for d in docs if d.title == "虚构企业促进示例条例"), key=lambda d: d.get("published"))
    other = next(d for d in docs if d.title != "虚构企业促进示例条例")
    hits = fold_versions([_hit(v2, 1.0), _hit(other, 0.9), _hit(v1, 0.8)], date(2024, 1, 1), versions)
    assert [h.doc.doc_id for h in hits] == [v2.doc_id, other.doc_id] and [h.rank for h in hits] == [1, 2]
    assert [(d.doc_id, c.clause_id) for d, c in hits[0].also_in] == [(v1.doc_id, "c1")]
    # an outdated clause ranked above its version in force (a question about the old text) stays
    hits = fold_versions([_hit(v1, 1.0), _hit(v2, 0.9)], date(2024, 1, 1), versions)
    assert [h.doc.doc_id for h in hits] == [v1.doc_id, v2.doc_id] and not hits[0].also_in
    # different text is not folded
    changed = replace(_hit(v1, 0.8), clause=replace(_hit(v1, 0.8).clause, text="第一条 完全不同的一段文字"))
    hits = fold_versions([_hit(v2, 1.0), changed], date(2024, 1, 1), versions)
    assert len(hits) == 2


# --- the bundled measures -----------------------------------------------------------------------

def _bundled_laws() -> list[tuple[Path, dict, str]]:
    out = []
    for path in sorted(CORPUS.glob("*.md")):
        meta, body = parse_front_matter(path.read_text(encoding="utf-8"), name=str(path))
        if meta.get("source_file", "").endswith(").md"):
            out.append((path, meta, body))
    return out


def test_the_corpus_bundles_the_national_measures():
    laws = _bundled_laws()
    assert len(laws) == 28
    for path, meta, body in laws:
        assert meta["level"] == "national" and meta["doc_type"] in ("法律", "行政法规"), path.name
        assert meta["published"] and meta["valid_from"] and meta["source_sha256"], path.name
        assert "LawRefBook" in meta["source"] and len(path.stem) <= 100, path.name
        assert "INFO END" not in body


@pytest.mark.skipif(not RAW_LAWS.is_dir(), reason="../shared/raw/national-laws is not present")
def test_bundled_bodies_keep_the_raw_article_text():
    import hashlib

    laws = _bundled_laws()
    assert {m["source_file"] for _, m, _ in laws} == {p.name for p in RAW_LAWS.glob("*).md")}
    for path, meta, body in laws:
        raw_bytes = (RAW_LAWS / meta["source_file"]).read_bytes()
        assert hashlib.sha256(raw_bytes).hexdigest() == meta["source_sha256"], path.name
        raw = raw_bytes.decode("utf-8")
        raw_lines = [x.strip() for x in raw.split("<!-- INFO END -->", 1)[1].split("\n") if x.strip()]
        body_lines = [x.strip() for x in body.split("\n") if x.strip()]
        # every article line and every line after the first article is unchanged (headings: spaces only)
        first = next(i for i, x in enumerate(raw_lines) if re.match(r"^第[一二三四五六七八九十百千零〇]+条", x))
        raw_text = [x for x in raw_lines[first:] if not x.startswith("#")]
        body_text = [x for x in body_lines if not x.startswith("#")]
        body_first = next(i for i, x in enumerate(body_text) if x == raw_text[0])
        assert body_text[body_first:] == raw_text, path.name


# --- the bundled measures served (a real index over corpus/, dense channel off for speed) ------------------

@pytest.fixture(scope="module")
def laws_client(tmp_path_factory):
    from kb.config import Settings
    from kb.service import KnowledgeBase
    from web import create_app

    settings = Settings(corpus_dirs=(CORPUS,), index_dir=tmp_path_factory.mktemp("laws-index"), dense=False)
    kb = KnowledgeBase(settings)
    kb.build()
    app = create_app(settings=settings, kb=kb, test_config={"TESTING": True, "KB_TODAY": "2026-11-26"})
    return app.test_client()


PAYMENT_2020 = "baozhang-zhongxiaoqiye-kuanxiang-zhifu-tiaoli-2020"
PAYMENT_2025 = "baozhang-zhongxiaoqiye-kuanxiang-zhifu-tiaoli-2025"
VAT_REGS = "zengzhishui-zanxingtiaoli-2017"
VAT_LAW = "zengzhishui-fa-2024"
SME_PROFILE = {"industry": "制造业", "employees": 60, "taxable_income_wan_yuan": 25, "assets_wan_yuan": 2000,
               "needs": ["tax"]}


def _article_92(client, profile: dict) -> dict:
    response = client.post("/api/eligibility", json=profile)
    assert response.status_code == 200, response.get_json()
    items = [i for g in response.get_json()["groups"] for i in g["items"]]
    return next(i for i in items if i["clause_path"][-1].startswith("第九十二条"))


def test_small_low_profit_enterprise_conditions(laws_client):
    item = _article_92(laws_client, SME_PROFILE)
    assert item["validity_code"] == "effective"
    verdicts = {c["field"]: c["verdict"] for c in item["conditions"]}
    assert verdicts == {"taxable_income_wan_yuan": "met", "employees": "met", "assets_wan_yuan": "met"}
    assert {c["branch"] for c in item["conditions"]} == {"工业企业"} and "工业企业" in item["branch_note"]
    assert {c["value"] for c in item["conditions"]} == {30, 100, 3000}
    more = _article_92(laws_client, {**SME_PROFILE, "employees": 150})
    assert {c["field"]: c["verdict"] for c in more["conditions"]}["employees"] == "not_met"
    silent = _article_92(laws_client, {k: v for k, v in SME_PROFILE.items() if k != "assets_wan_yuan"})
    assert {c["field"]: c["verdict"] for c in silent["conditions"]}["assets_wan_yuan"] == "unknown"
    other = _article_92(laws_client, {**SME_PROFILE, "industry": "批发和零售业", "employees": 90})
    assert {(c["field"], c["value"], c["verdict"]) for c in other["conditions"]} >= {("employees", 80, "not_met"),
                                                                                     ("assets_wan_yuan", 1000, "not_met")}


def test_conditions_without_numbers_are_listed_to_check(laws_client):
    response = laws_client.post("/api/eligibility", json={"industry": "软件", "needs": ["tax"]},
                                query_string={"as_of": "2026-11-26"})
    assert response.status_code == 200
    items = [i for g in response.get_json()["groups"] for i in g["items"]]
    # in each group the measures in force come first
    for g in response.get_json()["groups"]:
        codes = [i["validity_code"] in ("expired", "draft", "superseded", "repealed") for i in g["items"]
                 if i["role"] != "goal"]
        assert codes == sorted(codes)
    assert laws_client.post("/api/eligibility", json={}, query_string={"as_of": "soon"}).status_code == 400
    assert all(isinstance(i["to_check"], list) for i in items)
    # 第九十三条 (高新技术企业) states its conditions without numbers: listed to check, no verdict
    from kb.roles import annotate_clause

    regs = next(d for d in read_corpus([CORPUS]) if d.doc_id == "qiye-suodeshuifa-shishitiaoli-2019")
    article = next(c for c in parse_clauses(regs) if c.heading.startswith("第九十三条"))
    ann = annotate_clause(regs, article)
    assert ann["role"] == "condition" and ann["conditions"] == []
    assert ann["to_check"][0].startswith("(一)产品(服务)属于《国家重点支持的高新技术领域》") and len(ann["to_check"]) == 5


def test_search_judges_versions_and_repeal_on_one_date(laws_client):
    q = "机关、事业单位从中小企业采购货物、工程、服务，应当自货物、工程、服务交付之日起30日内支付款项"
    data = laws_client.get("/api/search", query_string={"q": q, "k": 3}).get_json()
    assert data["as_of"] == "2026-11-26"
    by_doc = {r["doc_id"]: r for r in data["results"]}
    assert data["results"][0]["doc_id"] == PAYMENT_2025
    assert by_doc[PAYMENT_2020]["validity"]["code"] == "superseded"
    assert by_doc[PAYMENT_2025]["validity"]["code"] == "effective"
    # on a date before the 2025 version applied, the 2020 one is in force and comes first
    past = laws_client.get("/api/search", query_string={"q": q, "k": 3, "as_of": "2024-06-01"}).get_json()
    assert past["results"][0]["doc_id"] == PAYMENT_2020 and past["results"][0]["validity"]["code"] == "effective"
    vat = laws_client.get("/api/search", query_string={"q": "增值税暂行条例 纳税人", "k": 3}).get_json()
    regs = next(r for r in vat["results"] if r["doc_id"] == VAT_REGS)
    assert regs["validity"]["code"] == "repealed" and "2026-01-01" in regs["validity"]["detail"]
    before = laws_client.get("/api/search", query_string={"q": "增值税暂行条例 纳税人", "k": 3,
                                                          "as_of": "2025-12-31"}).get_json()
    assert next(r for r in before["results"] if r["doc_id"] == VAT_REGS)["validity"]["code"] == "effective"
    bad = laws_client.get("/api/search", query_string={"q": "增值税", "as_of": "2025-13-01"})
    assert bad.status_code == 400 and "as_of" in bad.get_json()["error"]["message"]


def test_eligibility_in_search_uses_the_same_date(laws_client):
    q = "我们是小型制造企业，能享受哪些税收优惠"
    data = laws_client.get("/api/search", query_string={"q": q, "as_of": "2024-06-01"}).get_json()
    assert data["as_of"] == "2024-06-01"
    if "eligibility" in data:
        assert data["eligibility"]["today"] == "2024-06-01"


def test_docs_and_document_pages_show_versions_and_repeal(laws_client):
    page = laws_client.get("/docs").get_data(as_text=True)
    assert page.count("国务院") >= 10 and "已废止" in page and "已被替代" in page and "行政法规" in page
    assert f'href="/doc/{PAYMENT_2025}">现行版本' in page and f'href="/doc/{VAT_LAW}">废止它的文件' in page
    doc = laws_client.get(f"/doc/{PAYMENT_2020}").get_data(as_text=True)
    assert f'href="/doc/{PAYMENT_2025}"' in doc and "2025-03-17 版本" in doc and "至 2025-05-31" in doc
    assert f'href="/doc/{PAYMENT_2025}/changes"' in doc
    regs = laws_client.get(f"/doc/{VAT_REGS}").get_data(as_text=True)
    assert f'href="/doc/{VAT_LAW}"' in regs and "自2026-01-01起由" in regs
    refs = laws_client.get("/references").get_data(as_text=True)
    assert "个体工商户条例" in refs and "促进个体工商户发展条例" in refs and "废止" in refs


def test_what_changed_in_the_payment_regulation(laws_client):
    data = laws_client.get(f"/api/doc/{PAYMENT_2025}/changes").get_json()
    assert data["old"]["doc_id"] == PAYMENT_2020 and data["new"]["doc_id"] == PAYMENT_2025
    assert data["summary"]["added"] > 0 and data["summary"]["changed"] > 0 and data["summary"]["renumbered"] > 0
    term = next(a for a in data["articles"] if a["change"] == "changed"
                and any(d["op"] == "insert" and "从其约定，但" in d["text"] for d in a["diff"]))
    assert term["old"]["number"] != term["new"]["number"]  # renumbered, and changed
    page = laws_client.get(f"/doc/{PAYMENT_2025}/changes").get_data(as_text=True)
    assert "<ins>从其约定，但</ins>" in page
    assert laws_client.get(f"/api/doc/{VAT_LAW}/changes").status_code == 404
    assert laws_client.get("/api/doc/no-such-doc/changes").status_code == 404


def test_kb_ask_as_of_and_bad_date(tmp_path):
    from kb.cli import cli

    result = CliRunner().invoke(cli, ["ask", "增值税", "--as-of", "yesterday", "--index", str(tmp_path)])
    assert result.exit_code == 2 and "--as-of" in result.output
