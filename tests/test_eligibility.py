"""Eligibility: profile parsing, matching over real text, checked conditions, the API, the form page and `kb eligible`."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.eligibility import ProfileError, match, parse_profile, profile_from_question
from kb.present import answer_to_json, result_to_json, search_eligibility_json
from kb.search import SearchOptions

from conftest import CORPUS, SEED_DOC, SHARED, shared_available

TODAY = date(2026, 11, 26)
SEED_ID = SEED_DOC.stem
LYG = {"region": "江苏省连云港市", "industry": "制造业", "tier": "专精特新中小企业"}

# 虚构示例 — a MADE-UP document, written for these tests only: the real seed states no enterprise
# condition with a number, so condition checking is shown on this invented text. Not a real policy.
MADE_UP = """---
title: 虚构示例：某市专精特新企业研发奖补办法（测试用，非真实政策）
issuer: 虚构示例市工业和信息化局
level: municipal
region: 江苏省虚构示例市
status: effective
valid_until: 2030-12-31
---

本文件为虚构示例，仅用于测试，不是真实政策。

一、支持对象
申报企业应为在本市注册成立满3年的工业企业，上年度研发费用占营业收入比重不低于3%，拥有有效发明专利2件以上，从业人员1000人以下。

二、支持内容
（一）研发奖补。对首次认定的专精特新中小企业，给予一次性奖励50万元，用于研发投入补助。
（二）贷款贴息。对获得银行贷款的企业，按贷款利息的50%给予贴息，支持企业融资。

三、工作目标
到2028年，全市专精特新企业研发投入强度超过5%，户均拥有有效发明专利达到5件以上。
"""


def _group(data: dict, kind: str) -> dict:
    return next(g for g in data["groups"] if g["kind"] == kind)


def _answer(kb, profile: dict, today: date = TODAY) -> dict:
    return answer_to_json(match(kb.searcher(), parse_profile(profile), today))


# --- over the real seed (built_index: corpus/ + two real government work reports) -----------------------

def test_financing_profile_gets_the_seed_finance_clause(built_index):
    data = _answer(built_index, {**LYG, "needs": ["financing"]})
    group = _group(data, "financing")
    assert group["label"] == "融资与上市"
    # the seed's plan period is over: its clause follows the measures in force, and is still listed
    top = next(i for i in group["items"] if i["doc_id"] == SEED_ID)
    assert top["clause_path"][-1] == "特色金融助力工程"
    codes = [i["validity_code"] in ("expired", "draft", "superseded", "repealed") for i in group["items"]]
    assert codes == sorted(codes) and not codes[0]
    assert top["role"] == "support" and top["url"] == f"/doc/{SEED_ID}#{top['clause_id']}"
    assert "连云港" in top["why"] and "融资与上市" in top["why"] and "专精特新" in top["why"]
    assert top["validity"] == "计划期已结束（至2025年）"
    assert top["text"].startswith("特色金融助力工程。")


def test_an_item_and_a_search_result_carry_the_one_validity_shape(built_index):
    """An eligibility item's label fields and `validity_full` are the search JSON's `validity` of the same document."""
    searcher = built_index.searcher()
    top = next(i for i in _group(_answer(built_index, {**LYG, "needs": ["financing"]}), "financing")["items"]
               if i["doc_id"] == SEED_ID)
    result = result_to_json(searcher.search("特色金融助力工程", SearchOptions(k=3, as_of=TODAY)),
                            lambda doc: searcher.validity(doc, TODAY), TODAY)
    hit = next(r for r in result["results"] if r["doc_id"] == SEED_ID)
    assert hit["validity"] == top["validity_full"]
    assert sorted(hit["validity"]) == ["code", "detail", "label"] and hit["validity"]["code"] == "expired"
    assert (top["validity"], top["validity_code"], top["validity_detail"]) == (
        hit["validity"]["label"], hit["validity"]["code"], hit["validity"]["detail"])
    assert result["as_of"] == TODAY.isoformat()


def test_digital_profile_gets_the_programme_and_the_targets_as_goals(built_index):
    data = _answer(built_index, {**LYG, "needs": ["digital"], "rd_share_percent": 2, "patents": 1})
    items = _group(data, "digital")["items"]
    paths = {i["clause_path"][-1]: i for i in items}
    assert paths["数字技术赋能工程"]["role"] == "support"
    goal = paths["2.拟定主要目标"]
    assert "数控化率超过50%" in goal["text"] and goal["role"] == "goal" and goal["conditions"] == []
    # the city's targets (研发投入强度超过5%, 数控化率超过50%) are never turned into conditions
    for item in items:
        for cond in item["conditions"]:
            assert "数控化率" not in cond["text"] and "研发投入强度超过5%" not in cond["text"]


def test_no_goal_is_ever_reported_met_or_not_met(built_index):
    full = {**LYG, "employees": 120, "revenue_wan_yuan": 8000, "rd_share_percent": 6.5, "patents": 8,
            "years_registered": 6}
    data = _answer(built_index, full)  # no needs: every kind
    assert {g["kind"] for g in data["groups"]} >= {"financing", "digital"}
    goals = [i for g in data["groups"] for i in g["items"] if i["role"] == "goal"]
    assert goals and all(i["conditions"] == [] for i in goals)
    for g in data["groups"]:
        for item in g["items"]:
            assert item["role"] in ("goal", "task", "support", "condition", "safeguard", "background")
            for cond in item["conditions"]:
                assert cond["verdict"] in ("met", "not_met", "unknown")


def test_outdated_notice_only_when_everything_is_outdated(built_index, made_up_kb):
    data = _answer(built_index, {**LYG, "needs": ["financing"]})  # the national measures are in force
    assert not data["all_outdated"] and data["message"] == ""
    # the made-up measure is valid until 2030: on a later date everything found is outdated
    late = _answer(made_up_kb, {"needs": ["funding"]}, today=date(2031, 1, 1))
    assert late["all_outdated"] and "已失效" in late["message"]
    assert all(i["validity_code"] == "expired" for g in late["groups"] for i in g["items"])
    assert not _answer(made_up_kb, {"needs": ["funding"]})["all_outdated"]
    earlier = _answer(built_index, {**LYG, "needs": ["financing"]}, today=date(2024, 6, 1))
    seed_item = next(i for i in _group(earlier, "financing")["items"] if i["doc_id"] == SEED_ID)
    assert seed_item["validity_code"] == "interpretation" and not earlier["all_outdated"]


def test_region_of_another_city_is_left_out(built_index):
    data = _answer(built_index, {"region": "江苏省南京市", "needs": ["financing"]})
    assert all(i["doc_id"] != SEED_ID for i in _group(data, "financing")["items"])
    assert "南京" in data["region_note"]


# --- condition checking on the made-up document ------------------------------------------------------------

@pytest.fixture(scope="module")
def made_up_kb(tmp_path_factory):
    """A real index (jieba, bm25s, SQLite; dense channel off) over the 虚构示例 document above."""
    from kb import roles
    from kb.config import Settings
    from kb.index import build_index
    from kb.service import KnowledgeBase

    corpus = tmp_path_factory.mktemp("made-up-corpus")
    (corpus / "made-up-rd-awards.md").write_text(MADE_UP, encoding="utf-8")
    settings = Settings(corpus_dirs=(corpus,), index_dir=tmp_path_factory.mktemp("made-up-index"), dense=False)
    kb = KnowledgeBase(settings)
    build_index([corpus], settings.index_dir, None, kb.segmenter, annotate=roles.annotate_clause,
                annotator_version=roles.ROLES_VERSION)
    return kb


def _conditions(kb, profile: dict, kind: str = "funding") -> tuple[dict, dict[str, dict]]:
    data = _answer(kb, {"region": "江苏省虚构示例市", "needs": [kind], **profile})
    item = next(i for i in _group(data, kind)["items"] if i["role"] == "support")
    return item, {c["field"]: c for c in item["conditions"]}


def test_conditions_met_not_met_unknown(made_up_kb):
    item, conds = _conditions(made_up_kb, {"rd_share_percent": 6.5, "patents": 8, "years_registered": 6,
                                           "employees": 120})
    assert item["clause_path"][-1].startswith("（一）研发奖补")
    assert {f: c["verdict"] for f, c in conds.items()} == {
        "rd_share_percent": "met", "patents": "met", "years_registered": "met", "employees": "met"}
    rd = conds["rd_share_percent"]
    assert (rd["op"], rd["value"]) == (">=", 3) and "研发费用占营业收入比重不低于3%" in rd["text"]
    assert rd["clause_id"] != item["clause_id"]  # stated in 一、支持对象, which covers the whole document
    _, conds = _conditions(made_up_kb, {"rd_share_percent": 2.5, "patents": 1, "years_registered": 2,
                                        "employees": 1500})
    assert {c["verdict"] for c in conds.values()} == {"not_met"}
    assert "不满足" in conds["rd_share_percent"]["reason"]


def test_empty_profile_fields_are_unknown_never_met(made_up_kb):
    for profile in ({}, {"patents": 8}, {"rd_share_percent": None}):
        _, conds = _conditions(made_up_kb, profile, kind="financing")
        for field, cond in conds.items():
            if profile.get(field) is None:
                assert cond["verdict"] == "unknown", (profile, field)
                assert "未填写" in cond["reason"]


def test_made_up_goal_numbers_are_not_conditions(made_up_kb):
    data = _answer(made_up_kb, {"region": "江苏省虚构示例市", "rd_share_percent": 1, "patents": 0})
    items = [i for g in data["groups"] for i in g["items"]]
    assert any(i["role"] == "goal" and "研发投入强度超过5%" in i["text"] for i in items)
    for item in items:
        assert all(c["value"] != 5 for c in item["conditions"])
        if item["role"] == "goal":
            assert item["conditions"] == []
    assert not data["all_outdated"] and all(i["validity"] == "现行有效" for i in items)


# --- profiles ----------------------------------------------------------------------------------------------

def test_parse_profile_accepts_the_contract_example():
    p = parse_profile({"region": "江苏省连云港市", "industry": "制造业", "tier": "专精特新中小企业", "employees": 120,
                       "revenue_wan_yuan": 8000, "rd_share_percent": 6.5, "patents": 8, "years_registered": 6,
                       "needs": ["funding", "financing", "tax", "talent", "approvals", "ip", "digital", "market",
                                 "services", "quality"]})
    assert p.employees == 120 and p.rd_share_percent == 6.5 and len(p.needs) == 10
    assert parse_profile({}).is_empty()
    assert parse_profile({"tier": "小巨人", "size": "小微企业"}).tier == "专精特新小巨人"
    assert parse_profile({"employees": 120.0}).employees == 120


@pytest.mark.parametrize("obj,code", [
    ([], "invalid_profile"), ("x", "invalid_profile"), (None, "invalid_profile"),
    ({"colour": "red"}, "unknown_field"),
    ({"employees": "120"}, "invalid_type"), ({"employees": True}, "invalid_type"), ({"region": 5}, "invalid_type"),
    ({"employees": -1}, "invalid_value"), ({"patents": 1.5}, "invalid_value"), ({"rd_share_percent": 101}, "invalid_value"),
    ({"revenue_wan_yuan": float("inf")}, "invalid_value"), ({"tier": "金牌企业"}, "invalid_value"),
    ({"needs": ["money"]}, "unknown_need"), ({"needs": [1]}, "invalid_type"), ({"needs": {"a": 1}}, "invalid_type"),
])
def test_parse_profile_rejects_malformed(obj, code):
    with pytest.raises(ProfileError) as err:
        parse_profile(obj)
    assert err.value.code == code and str(err.value)


def test_profile_from_plain_question(built_index):
    searcher = built_index.searcher()
    q = "我们是连云港的制造业小企业，想贷款，有什么支持"
    p = profile_from_question(q, searcher.understand(q))
    assert (p.region, p.industry, p.size, p.needs) == ("连云港", "制造业", "小型", ("financing",))
    for other in ("国家级专精特新小巨人企业到2025年要培育多少家", "特色金融助力工程", "数字技术赋能工程是什么"):
        assert profile_from_question(other, searcher.understand(other)) is None
    q = "我们公司有120人，研发占比6%，有8件发明专利，想申请补贴"
    p = profile_from_question(q, searcher.understand(q))
    assert (p.employees, p.rd_share_percent, p.patents, p.needs) == (120, 6.0, 8, ("funding",))

    data = search_eligibility_json(searcher, "我们是连云港的制造业小企业，想贷款，有什么支持", TODAY)
    assert data["source"] == "question" and data["profile"]["region"] == "连云港"
    assert data["region_used"] == "江苏省连云港市"
    assert "特色金融助力工程" in [i["clause_path"][-1] for i in _group(data, "financing")["items"]]
    assert data["edit_url"].startswith("/eligibility?") and "needs=financing" in data["edit_url"]
    assert search_eligibility_json(searcher, "特色金融助力工程", TODAY) is None


# --- web: API, form, result page -----------------------------------------------------------------------------

@pytest.fixture()
def eligibility_client(built_index):
    from web import create_app
    from web import eligibility

    app = create_app(settings=built_index.settings, kb=built_index,
                     test_config={"TESTING": True, "KB_TODAY": TODAY.isoformat()})
    if "eligibility" not in app.blueprints:  # until web/__init__.py registers it
        app.register_blueprint(eligibility.bp)
    return app.test_client()


def test_api_contract(eligibility_client):
    r = eligibility_client.post("/api/eligibility", json={**LYG, "needs": ["financing", "digital"], "patents": 8})
    assert r.status_code == 200
    data = r.get_json()
    assert data["profile"]["region"] == "江苏省连云港市" and data["profile"]["patents"] == 8
    assert [g["kind"] for g in data["groups"]] == ["financing", "digital"]
    item = data["groups"][0]["items"][0]
    for key in ("doc_id", "title", "clause_id", "clause_path", "text", "url", "role", "why", "validity", "conditions"):
        assert key in item
    assert data["groups"][0]["label"] == "融资与上市"


@pytest.mark.parametrize("body,code", [
    ("{bad json", "bad_json"), ("", "bad_json"), ("[1, 2]", "invalid_profile"), ('"text"', "invalid_profile"),
    ('{"employees": -3}', "invalid_value"), ('{"employees": "many"}', "invalid_type"),
    ('{"needs": ["fly"]}', "unknown_need"), ('{"shoe_size": 42}', "unknown_field"),
    ('{"employees": NaN}', "bad_json"), ("\xff\xfe", "bad_json"),
])
def test_api_rejects_malformed_profiles(eligibility_client, body, code):
    r = eligibility_client.post("/api/eligibility", data=body.encode("latin-1") if body == "\xff\xfe" else body,
                                content_type="application/json")
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["code"] == code and error["message"]


def test_api_wrong_method_is_json_405(eligibility_client):
    r = eligibility_client.get("/api/eligibility")
    assert r.status_code == 405 and r.get_json()["error"]["code"] == "method_not_allowed"


def test_form_is_usable_with_the_keyboard_alone(eligibility_client):
    page = eligibility_client.get("/eligibility").get_data(as_text=True)
    form = re.search(r'<form class="eligibility".*?</form>', page, re.S).group(0)
    controls = re.findall(r"<(input|select|textarea|button)\b([^>]*)>", form)
    assert controls
    for tag, attrs in controls:
        if tag == "button":
            continue
        control_id = re.search(r'id="([^"]+)"', attrs).group(1)
        assert f'<label for="{control_id}">' in form, control_id  # every control has a visible label
    assert form.count("<fieldset") == form.count("<legend>") == 3
    assert 'type="checkbox"' in form and "<select" in form and '<button type="submit">' in form
    assert "tabindex" not in form and "onclick" not in form and 'role="button"' not in form
    css = (Path(__file__).parent.parent / "web" / "static" / "style.css").read_text(encoding="utf-8")
    eligibility_css = css[css.index("/* eligibility"):]
    assert "focus-visible" in eligibility_css and "@media print" in eligibility_css
    assert re.search(r"@media print \{[^}]*form\.eligibility", eligibility_css)


def test_form_errors_are_announced_and_linked(eligibility_client):
    r = eligibility_client.get("/eligibility/result", query_string={"employees": "很多", "needs": "financing"})
    assert r.status_code == 400
    page = r.get_data(as_text=True)
    assert 'role="alert"' in page and 'href="#f-employees"' in page
    assert re.search(r'id="f-employees"[^>]*aria-invalid="true"', page, re.S)


def test_result_page_groups_and_prints(eligibility_client):
    r = eligibility_client.get("/eligibility/result", query_string={**LYG, "needs": ["financing", "digital"]})
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert "融资与上市" in page and "数字化转型" in page and "特色金融助力工程" in page
    assert "计划期已结束（至2025年）" in page and "不是企业的申报条件" in page
    assert 'class="print-only"' in page and 'class="no-print"' in page
    edit = re.search(r'href="(/eligibility\?[^"]+)">修改企业情况', page).group(1)
    filled = eligibility_client.get(edit.replace("&amp;", "&")).get_data(as_text=True)
    assert 'value="江苏省连云港市"' in filled and re.search(r'value="financing" checked', filled)
    post = eligibility_client.post("/eligibility", data={**LYG, "needs": ["financing"]})
    assert post.status_code == 200 and "特色金融助力工程" in post.get_data(as_text=True)


def test_grouped_partial_renders_a_question_answer(eligibility_client, built_index):
    from flask import render_template

    data = search_eligibility_json(built_index.searcher(), "我们是连云港的制造业小企业，想贷款，有什么支持", TODAY)
    with eligibility_client.application.test_request_context("/"):
        html = render_template("eligibility/_grouped.html", eligibility=data)
    assert "已按问题理解为" in html and "修改这些情况" in html and "特色金融助力工程" in html


# --- kb eligible ----------------------------------------------------------------------------------------------------

def _command():
    from kb.cli import cli

    if "eligible" in cli.commands:
        return cli, ["eligible"]
    from kb.cli import eligible

    return eligible, []


def test_kb_eligible(made_up_kb, tmp_path):
    command, prefix = _command()
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"region": "江苏省虚构示例市", "rd_share_percent": 6.5, "needs": ["funding"]},
                                  ensure_ascii=False), encoding="utf-8")
    index = str(made_up_kb.settings.index_dir)
    runner = CliRunner()
    r = runner.invoke(command, prefix + ["--profile", str(profile), "--index", index, "--json", "--today", "2026-11-26"],
                      env={"KB_DENSE": "0"})
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    conds = {c["field"]: c["verdict"] for c in _group(data, "funding")["items"][0]["conditions"]}
    assert conds["rd_share_percent"] == "met" and conds["patents"] == "unknown"
    r = runner.invoke(command, prefix + ["--profile", str(profile), "--index", index], env={"KB_DENSE": "0"})
    assert r.exit_code == 0 and "资金奖补" in r.output and "满足" in r.output and "未知" in r.output

    bad = tmp_path / "bad.json"
    for content in ("{not json", '{"employees": -1}', '{"planet": "mars"}', "[]"):
        bad.write_text(content, encoding="utf-8")
        r = runner.invoke(command, prefix + ["--profile", str(bad), "--index", index], env={"KB_DENSE": "0"})
        assert r.exit_code == 2, (content, r.output)
        assert r.output.strip().startswith("kb: error:") and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1
    for args in (["--profile", str(tmp_path / "missing.json")],
                 ["--profile", str(profile), "--index", str(tmp_path / "no-index")],
                 ["--profile", str(profile), "--index", index, "--today", "yesterday"]):
        r = runner.invoke(command, prefix + args, env={"KB_DENSE": "0"})
        assert r.exit_code == 2 and r.output.startswith("kb: error:"), (args, r.output)


# --- the full shared corpora ------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not shared_available(), reason="../shared/corpora is not present")
def test_full_corpora(tmp_path):
    """Over the seed and all 87 shared reports (dense off): the seed still leads, goals never get verdicts."""
    from kb import roles
    from kb.config import Settings
    from kb.index import build_index
    from kb.service import KnowledgeBase

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    settings = Settings(corpus_dirs=(corpus, SHARED / "corpora"), index_dir=tmp_path / "index", dense=False)
    kb = KnowledgeBase(settings)
    build_index(list(settings.corpus_dirs), settings.index_dir, None, kb.segmenter, annotate=roles.annotate_clause,
                annotator_version=roles.ROLES_VERSION)
    full = {**LYG, "employees": 120, "revenue_wan_yuan": 8000, "rd_share_percent": 6.5, "patents": 8,
            "years_registered": 6}
    data = _answer(kb, full)
    assert "特色金融助力工程" in [i["clause_path"][-1] for i in _group(data, "financing")["items"]]
    assert _group(data, "digital")["items"][0]["clause_path"][-1] == "数字技术赋能工程"
    items = [i for g in data["groups"] for i in g["items"]]
    assert all(i["conditions"] == [] for i in items if i["role"] == "goal")
    national = _answer(kb, {"needs": ["tax"], "size": "小型"})
    assert len(_group(national, "tax")["items"]) >= 3
