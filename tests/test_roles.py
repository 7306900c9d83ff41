"""Clause roles (kb.roles) and validity labels (kb.cite): real clauses, a hand-labelled set, made-up conditions."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest

from kb.cite import plan_end_year, validity_of
from kb.corpus import read_corpus
from kb.query import NEEDS
from kb.roles import ROLES, ROLES_VERSION, annotate_clause, classify_role, extract_conditions, tiers_in
from kb.structure import parse_clauses

from conftest import CORPUS, SEED_DOC, SHARED, shared_available

LABELLED = Path(__file__).parent / "data" / "labelled_clauses.jsonl"
TODAY = date(2026, 11, 26)


@pytest.fixture(scope="module")
def seed():
    doc = next(d for d in read_corpus([CORPUS]) if d.doc_id == "lianyungang-zjtx-plan-interpretation")  # the seed
    clauses = {c.clause_id: c for c in parse_clauses(doc)}
    return doc, clauses, {cid: annotate_clause(doc, c) for cid, c in clauses.items()}


def test_seed_roles_and_kinds(seed):
    doc, clauses, ann = seed
    assert clauses["c2-2"].path[-1] == "2.拟定主要目标"
    assert ann["c2-2"]["role"] == "goal" and "digital" in ann["c2-2"]["kinds"]
    assert clauses["c2-3-7"].path[-1] == "特色金融助力工程"
    assert ann["c2-3-7"]["role"] == "support" and ann["c2-3-7"]["kinds"] == ["financing"]
    assert ann["c2-3-6"]["role"] == "support" and ann["c2-3-6"]["kinds"] == ["digital"]
    assert ann["c1"]["role"] == "background" and ann["c1-p2"]["role"] == "background"
    assert ann["c2-4"]["role"] == "safeguard" and "approvals" in ann["c2-4"]["kinds"]
    assert ann["c2-3-7"]["tiers"] == ["专精特新中小企业"]
    assert ann["c2-3-7"]["regions"] == ["江苏省连云港市"]
    for a in ann.values():
        assert a["role"] in ROLES and set(a["kinds"]) <= set(NEEDS) and a["why_role"]
        assert a["version"] == ROLES_VERSION
        json.dumps(a, ensure_ascii=False)  # JSON-ready


def test_city_targets_are_never_conditions(seed):
    """研发投入强度超过5% is the city's goal for its enterprises on average, not a condition."""
    doc, clauses, ann = seed
    goal = clauses["c2-2"]
    assert "研发投入强度超过5%" in goal.text and "数控化率超过50%" in goal.text
    assert ann["c2-2"]["conditions"] == []
    assert extract_conditions(goal.text) == []  # aggregate sentences are skipped even on their own
    assert all(a["conditions"] == [] for a in ann.values())  # the seed states no enterprise condition


def test_role_rules_on_small_real_text():
    assert classify_role(("一、2023年工作回顾",), "出台支持企业稳岗拓岗政策，加大减税降费力度。")[0] == "background"
    role, why = classify_role(("二、2024年经济社会发展总体要求和政策取向",),
                              "今年发展主要预期目标是：国内生产总值增长5%左右；城镇新增就业1200万人以上。")
    assert role == "goal" and "预期目标" in why
    assert classify_role(("4.落实保障措施",), "包括加强组织领导、加大政策支持等措施。")[0] == "safeguard"
    assert classify_role((), "各位代表！")[0] == "background"


def test_conditions_from_made_up_sentences():
    """虚构示例: made-up eligibility sentences (no real policy states these)."""
    conds = extract_conditions("虚构示例。申报企业上年度研发费用占营业收入比重不低于3%，拥有有效发明专利2件以上。")
    assert [(c["field"], c["op"], c["value"]) for c in conds] == [("rd_share_percent", ">=", 3), ("patents", ">=", 2)]
    assert conds[1]["qualifier"] == "发明专利" and "不低于3%" in conds[0]["quote"]
    conds = extract_conditions("虚构示例：申报企业注册成立满三年，从业人员1000人以下，营业收入2000万元以上、不超过4亿元。")
    got = {(c["field"], c["op"], c["value"]) for c in conds}
    assert got == {("years_registered", ">=", 3), ("employees", "<=", 1000), ("revenue_wan_yuan", ">=", 2000),
                   ("revenue_wan_yuan", "<=", 40000)}
    assert all(c["unit"] == "万元" for c in conds if c["field"] == "revenue_wan_yuan")
    assert extract_conditions("虚构示例：对研发投入强度超过5%的企业给予奖励。")[0]["op"] == ">"
    # totals, averages and targets are not about one enterprise
    assert extract_conditions("虚构示例：到2028年，全市企业户均拥有有效专利达到5件以上。") == []
    # a number without a comparison is not a condition
    assert extract_conditions("虚构示例：企业拥有发明专利2件。") == []


def test_tiers_read_through_quotation_marks():
    assert tiers_in("国家专精特新“小巨人”企业25家") == ["专精特新小巨人"]
    assert tiers_in("培育“专精特新”企业") == ["专精特新中小企业"]


def _labelled_rows():
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]


def _score(rows, docs):
    confusion: dict[str, Counter] = defaultdict(Counter)
    per_kind: dict[str, Counter] = defaultdict(Counter)
    correct = tp = fp = fn = 0
    for row in rows:
        doc = docs[row["doc_id"]]
        clause = {c.clause_id: c for c in parse_clauses(doc)}.get(row["clause_id"])
        assert clause is not None and clause.text.replace("\n", " ").startswith(row["snippet"]), \
            f"labelled clause {row['doc_id']}#{row['clause_id']} no longer starts with {row['snippet']!r}"
        ann = annotate_clause(doc, clause)
        confusion[row["role"]][ann["role"]] += 1
        correct += ann["role"] == row["role"]
        gold, got = set(row["kinds"]), set(ann["kinds"])
        tp, fp, fn = tp + len(gold & got), fp + len(got - gold), fn + len(gold - got)
        for k in gold | got:
            per_kind[k]["tp" if k in gold and k in got else "fp" if k in got else "fn"] += 1
    return {"n": len(rows), "role_accuracy": correct / len(rows), "kinds_precision": tp / max(tp + fp, 1),
            "kinds_recall": tp / max(tp + fn, 1), "confusion": confusion, "per_kind": per_kind}


def _print(name: str, s: dict) -> None:
    print(f"\n{name}: n={s['n']} role accuracy {s['role_accuracy']:.3f}  "
          f"kinds precision {s['kinds_precision']:.3f} recall {s['kinds_recall']:.3f}")
    print("  gold \\ predicted  " + " ".join(f"{r[:10]:>10}" for r in ROLES))
    for gold in ROLES:
        print(f"  {gold:17s}" + " ".join(f"{s['confusion'][gold][p]:>10}" for p in ROLES))
    print("  kinds: " + "  ".join(f"{k} tp{c['tp']}/fp{c['fp']}/fn{c['fn']}" for k, c in sorted(s["per_kind"].items())))


@pytest.mark.skipif(not shared_available(), reason="../shared/corpora is not present")
def test_labelled_set_accuracy():
    """Role and kind accuracy on hand-labelled real clauses (seed + shared corpora); see README."""
    docs = {d.doc_id: d for d in read_corpus([CORPUS, SHARED / "corpora"])}
    rows = _labelled_rows()
    assert len(rows) >= 60
    assert {r["role"] for r in rows} <= set(ROLES) and all(set(r["kinds"]) <= set(NEEDS) for r in rows)
    scores = {split: _score([r for r in rows if r["split"] == split], docs) for split in ("dev", "heldout")}
    overall = _score(rows, docs)
    _print("dev (rules written against it)", scores["dev"])
    _print("held-out (labelled after the rules)", scores["heldout"])
    _print("all", overall)
    # floors the current rules meet (dev 0.90 / held-out 0.75 role accuracy when written)
    assert scores["dev"]["role_accuracy"] >= 0.85
    assert scores["heldout"]["role_accuracy"] >= 0.7
    assert overall["role_accuracy"] >= 0.8
    assert overall["kinds_precision"] >= 0.6 and overall["kinds_recall"] >= 0.9
    # the seed, the document the issue is about, is fully right on roles
    seed_rows = [r for r in rows if r["doc_id"] == SEED_DOC.stem]
    assert _score(seed_rows, docs)["role_accuracy"] == 1.0


def test_annotations_are_stored_by_the_build(tmp_path):
    """build_index stores annotate_clause's output per clause (real jieba, bm25s, SQLite; dense off)."""
    from kb.index import IndexHandle, build_index
    from kb.roles import annotate_clause as annotate
    from kb.segment import Segmenter

    build_index([CORPUS], tmp_path / "index", None, Segmenter(), annotate=annotate, annotator_version=ROLES_VERSION)
    index = IndexHandle(tmp_path / "index", None).current()
    assert index.manifest["annotator_version"] == ROLES_VERSION
    doc_id = SEED_DOC.stem
    row = index.clause_row(doc_id, "c2-3-7")
    assert index.annotation(row)["role"] == "support" and index.annotation(row)["kinds"] == ["financing"]
    assert index.annotation(index.clause_row(doc_id, "c2-2"))["role"] == "goal"


# --- validity (kb.cite) -----------------------------------------------------------------------

def test_validity_of_the_seed():
    doc = next(d for d in read_corpus([CORPUS]) if d.doc_id == "lianyungang-zjtx-plan-interpretation")  # the seed
    v = validity_of(doc.meta_dict(), doc.title, TODAY, text=doc.body)
    assert v.code == "expired" and v.label == "计划期已结束（至2025年）" and v.outdated
    assert "interpretation" in v.flags and "征求意见稿" in v.detail
    before = validity_of(doc.meta_dict(), doc.title, date(2024, 6, 1))
    assert before.code == "interpretation" and not before.outdated


@pytest.mark.parametrize("meta,title,text,code,label", [
    ({"status": "draft"}, "关于X的通知", "", "draft", "征求意见稿"),
    ({}, "X办法（征求意见稿）", "", "draft", "征求意见稿"),
    ({"status": "effective", "valid_until": "2025-06-30"}, "X办法", "", "expired", "已过有效期（至2025-06-30）"),
    ({"status": "effective", "valid_until": "2027"}, "X办法", "", "effective", "现行有效"),
    ({"status": "superseded", "superseded_by": "Y办法"}, "X办法", "", "superseded", "已被替代"),
    ({"status": "repealed"}, "X办法", "", "repealed", "已废止"),
    ({"status": "effective"}, "“十四五”中小企业发展规划", "", "expired", "计划期已结束（至2025年）"),
    ({}, "X行动方案", "到2025年，培育100家。到2035年，全面建成。", "unknown", "未注明效力"),
    ({}, "X行动方案", "到2025年，培育100家。", "expired", "计划期已结束（至2025年）"),
    ({}, "X工作报告", "到2025年，培育100家。", "unknown", "未注明效力"),  # not a plan: "到2025年" is not its period
    ({"doc_type": "政府工作报告"}, "2024年中华人民共和国国务院政府工作报告", "", "expired", "年度安排已过（2024年）"),
    ({"status": "effective", "valid_from": "2027-01-01"}, "X办法", "", "pending", "尚未施行（2027-01-01起）"),
])
def test_validity_rules(meta, title, text, code, label):
    v = validity_of(meta, title, TODAY, text=text)
    assert (v.code, v.label) == (code, label)


def test_plan_end_year_reads_ranges():
    assert plan_end_year("《连云港市专精特新企业培育三年行动计划（2023-2025年）》") == (2025, "标题")
    assert plan_end_year("某规划（2021—2025年）") == (2025, "标题")
    assert plan_end_year("关于促进中小企业发展的意见") == (None, "")
