"""Eligibility pages and API: the profile form (/eligibility), its result page, and POST /api/eligibility.

Registered by web/__init__.py with `app.register_blueprint(eligibility.bp)`. "Today" for
validity is web.knowledge.today (app.config["KB_TODAY"] when set, else the clock).
"""

from __future__ import annotations

import json
import math

from flask import Blueprint, jsonify, render_template, request

from kb.eligibility import (NUMBER_FIELDS, SIZES, TEXT_FIELDS, TIER_LADDER, ProfileError, form_query, match,
                            parse_profile)
from kb.index import IndexMismatch, IndexMissing
from kb.present import answer_to_json
from kb.query import NEEDS
from kb.search import QueryError
from web.errors import json_error
from web.knowledge import get_index, get_searcher, reference_date

bp = Blueprint("eligibility", __name__)

MAX_BODY = 64 * 1024
INDUSTRY_SUGGESTIONS = ("制造业", "软件和信息技术", "服务业", "外贸", "农业", "建筑业", "交通运输")
HINTS = {
    "region": "如：江苏省连云港市。用于判断哪些地方文件适用。",
    "industry": "如：制造业。",
    "employees": "上年末从业人员数。",
    "revenue_wan_yuan": "上年度营业收入，单位万元。",
    "rd_share_percent": "上年度研发费用占营业收入的比重，如 6.5。",
    "patents": "有效发明专利件数（实用新型、外观设计不计）。",
    "years_registered": "自注册成立起的年数。",
    "taxable_income_wan_yuan": "上年度应纳税所得额，单位万元（小型微利企业条件用）。",
    "assets_wan_yuan": "资产总额，单位万元（小型微利企业条件用）。",
}


def _profile_dict_from_form(form) -> tuple[dict, dict[str, str]]:
    """Return (profile object, field errors) from form fields (strings; empty = not given)."""
    obj: dict = {}
    errors: dict[str, str] = {}
    for name in TEXT_FIELDS:
        value = form.get(name, "").strip()
        if value:
            obj[name] = value
    for name, (label, unit, integer) in NUMBER_FIELDS.items():
        raw = form.get(name, "").strip().replace(",", "").replace("，", "")
        if not raw:
            continue
        try:
            number = float(raw)
        except ValueError:
            errors[name] = f"{label}请填写数字（单位：{unit}），或留空。"
            continue
        if not math.isfinite(number):
            errors[name] = f"{label}请填写有限的数字（单位：{unit}），或留空。"
            continue
        obj[name] = int(number) if integer and number == int(number) else number
    needs = [n for n in form.getlist("needs") if n]
    if needs:
        obj["needs"] = needs
    return obj, errors


def _form_context(values, errors: dict[str, str], status: str = "") -> dict:
    return {
        "values": values, "errors": errors, "status_message": status,
        "text_fields": TEXT_FIELDS, "number_fields": NUMBER_FIELDS, "needs": NEEDS, "tiers": TIER_LADDER,
        "sizes": SIZES, "industries": INDUSTRY_SUGGESTIONS, "hints": HINTS,
        "selected_needs": set(values.getlist("needs")) if hasattr(values, "getlist") else set(),
    }


def _regions() -> list[str]:
    try:
        index = get_index()
    except (IndexMissing, IndexMismatch):  # the form works without an index, only without region suggestions
        return []
    return sorted({d.get("region") for d in index.documents if d.get("region") and d.get("region") != "全国"})


@bp.get("/eligibility")
def form():
    """The profile form, filled from the query string (so "edit" links land on a filled form)."""
    return render_template("eligibility/form.html", regions=_regions(), **_form_context(request.args, {}))


def _result(values):
    obj, errors = _profile_dict_from_form(values)
    profile = None
    if not errors:
        try:
            profile = parse_profile(obj)
        except ProfileError as exc:
            errors[exc.field or "form"] = str(exc)
    if errors:
        return render_template("eligibility/form.html", regions=_regions(),
                               **_form_context(values, errors, "请更正标出的项目后再提交。")), 400
    searcher = get_searcher()
    try:
        as_of = reference_date(values)
    except QueryError as exc:  # shown beside the field, like the profile's own errors
        errors["as_of"] = str(exc)
        return render_template("eligibility/form.html", regions=_regions(),
                               **_form_context(values, errors, "请更正标出的项目后再提交。")), 400
    answer = match(searcher, profile, as_of)
    return render_template("eligibility/result.html", eligibility=answer_to_json(answer),
                           edit_query=form_query(profile), number_fields=NUMBER_FIELDS)


@bp.get("/eligibility/result")
def result():
    """The grouped answer for the profile in the query string (bookmarkable, printable)."""
    return _result(request.args)


@bp.post("/eligibility")
def result_post():
    """The grouped answer for a posted form."""
    return _result(request.form)


@bp.post("/api/eligibility")
def api():
    """JSON: a profile in, measures grouped by kind of support out; 400 with {"error"} for a bad profile."""
    if (request.content_length or 0) > MAX_BODY:
        return json_error(413, "too_large", f"the profile must be at most {MAX_BODY} bytes")
    raw = request.get_data(cache=False)
    if len(raw) > MAX_BODY:
        return json_error(413, "too_large", f"the profile must be at most {MAX_BODY} bytes")

    def no_constants(name):
        raise ValueError(f"{name} is not a number")

    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: [[[[… nested too deep
        return json_error(400, "bad_json", f"the request body must be a JSON object (UTF-8): {exc}")
    try:
        profile = parse_profile(obj)
    except ProfileError as exc:
        return json_error(400, exc.code, str(exc))
    searcher = get_searcher()
    try:
        as_of = reference_date(request.args)
    except QueryError as exc:
        return json_error(400, "bad_as_of", str(exc))
    return jsonify(answer_to_json(match(searcher, profile, as_of)))
