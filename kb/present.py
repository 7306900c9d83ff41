"""Typed results as the outside sees them: the search result and eligibility JSON of DESIGN.md, and the
text `kb ask` and `kb eligible` print. The commands, the API and the pages all serialize through here.

A document's validity has one JSON shape, `Validity.to_json()` (kb/cite.py): a search result carries it
as `validity`; an eligibility item keeps its label string as `validity` (with `validity_code` and
`validity_detail`, taken from the same object) and carries the whole shape as `validity_full`.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import date

import click

from kb.domain import NEEDS, ROLE_LABELS
from kb.eligibility import (TEXT_FIELDS, ConditionCheck, EligibilityAnswer, MatchItem, Profile,
                            eligibility_for_question, form_query)
from kb.query import Understanding
from kb.search import SearchResult, Searcher
from kb.types import Hit

_VERDICTS = {"met": "满足", "not_met": "不满足", "unknown": "未知"}


def to_text(data: dict) -> str:
    """Return JSON as the commands print it with --json (UTF-8 characters kept, indent 1)."""
    return json.dumps(data, ensure_ascii=False, indent=1)


# --- search ----------------------------------------------------------------------------------------

SITUATION_NOTE = "与您的提问相近的情境（检索用的描述，不是政策原文）"


def hit_to_json(hit: Hit, validity=None) -> dict:
    """Return one result in the contract shape of DESIGN.md (plus validity when a function is given)."""
    doc = hit.doc
    extra = {}
    if validity is not None:
        extra["validity"] = validity(doc).to_json()
    if hit.situation:  # why a clause without the question's words is here; matching data, not policy text
        extra["situation"] = {"text": hit.situation, "note": SITUATION_NOTE}
    if hit.also_in:  # outdated versions of the same article, folded into this one (kb.versions.fold_versions)
        extra["also_in"] = [{"doc_id": d.doc_id, "title": d.title, "clause_id": c.clause_id,
                             "url": f"/doc/{d.doc_id}#{c.clause_id}",
                             **({"validity": validity(d).to_json()} if validity is not None else {})}
                            for d, c in hit.also_in]
    return {
        "rank": hit.rank,
        "score": hit.score,
        "doc_id": doc.doc_id,
        "title": doc.title,
        "clause_id": hit.clause.clause_id,
        "clause_path": list(hit.clause.path),
        "text": hit.clause.text,
        "url": f"/doc/{doc.doc_id}#{hit.clause.clause_id}",
        "doc": {key: doc.get(key) for key in ("issuer", "level", "status", "published", "doc_no", "region", "doc_type")},
        "channels": dict(hit.channels),
        "exact": hit.exact,
        **extra,
    }


def result_to_json(result: SearchResult, validity=None, as_of: date | None = None) -> dict:
    """Return the search result JSON of the contract (plus what the query was understood as, and the
    reference date validity was judged on when `as_of` is given)."""
    out = {"query": result.query, "results": [hit_to_json(h, validity) for h in result.hits],
           "confidence": result.confidence}
    out["understood"] = {"terms": list(result.terms), **result.understanding.as_dict()}
    if result.message:
        out["message"] = result.message
    if as_of is not None:
        out["as_of"] = as_of.isoformat()
    return out


def search_text(query: str, result: SearchResult, validity) -> str:
    """Return the answer to `query` (as asked) as `kb ask` prints it: each cited clause with its document,
    validity and link."""
    lines: list[str] = []
    if not result.hits:
        return f"没有找到相关条款 (nothing relevant found for {query!r})."
    if result.confidence == "low":
        lines.append("匹配较弱：下列条款只包含问题中的部分词语，请核对 (weak match: check that these clauses answer the question).\n")
    for hit in result.hits:
        meta = [hit.doc.get(x) for x in ("issuer", "doc_no", "published") if hit.doc.get(x)] + [validity(hit.doc).label]
        mark = " [精确匹配]" if hit.exact else ""
        lines.append(click.style(f"[{hit.rank}]{mark} {hit.doc.title}  " + " > ".join(hit.clause.path), bold=True))
        if meta:
            lines.append("    " + " · ".join(meta))
        for line in hit.clause.text.splitlines():
            lines.append("    " + line)
        if hit.situation:
            lines.append(f"    {SITUATION_NOTE}：{hit.situation}")
        for d, c in hit.also_in:
            when = f"（{d.get('published')}）" if d.get("published") else ""
            lines.append(f"    同文亦见于 (same text in): {d.title}{when} · {validity(d).label} -> /doc/{d.doc_id}#{c.clause_id}")
        lines.append(f"    -> /doc/{hit.doc.doc_id}#{hit.clause.clause_id}  (score {hit.score})\n")
    return "\n".join(lines)


# --- eligibility -----------------------------------------------------------------------------------

def profile_to_json(profile: Profile) -> dict:
    """Return the profile as JSON (every field, null when not given), with need labels."""
    out = {}
    for f in fields(Profile):
        value = getattr(profile, f.name)
        if f.name == "needs":
            out["needs"] = list(value)
        elif f.name in TEXT_FIELDS:
            out[f.name] = value or None
        else:
            out[f.name] = value
    out["need_labels"] = {n: NEEDS[n] for n in profile.needs}
    return out


def condition_to_json(check: ConditionCheck) -> dict:
    """Return one checked condition in the contract shape."""
    return {"text": check.text, "quote": check.quote, "field": check.field, "op": check.op, "value": check.value,
            "unit": check.unit, "verdict": check.verdict, "reason": check.reason, "clause_id": check.clause_id,
            "branch": check.branch}


def item_to_json(item: MatchItem) -> dict:
    """Return one matched clause in the contract shape (plus role label, kinds, validity details)."""
    doc = item.doc
    validity = item.validity.to_json()
    return {
        "doc_id": doc.doc_id,
        "title": doc.title,
        "clause_id": item.clause.clause_id,
        "clause_path": list(item.clause.path),
        "text": item.clause.text,
        "url": f"/doc/{doc.doc_id}#{item.clause.clause_id}",
        "role": item.role,
        "role_label": ROLE_LABELS.get(item.role, item.role),
        "kinds": list(item.kinds),
        "why": item.why,
        "validity": validity["label"],
        "validity_code": validity["code"],
        "validity_detail": validity["detail"],
        "validity_full": validity,
        "conditions": [condition_to_json(c) for c in item.conditions],
        "to_check": list(item.to_check),
        "branch_note": item.branch_note,
        "score": item.score,
        "doc": {key: doc.get(key) for key in ("issuer", "level", "region", "status", "published", "doc_no", "doc_type")},
    }


def answer_to_json(answer: EligibilityAnswer) -> dict:
    """Return the answer in the contract shape of POST /api/eligibility."""
    return {
        "profile": profile_to_json(answer.profile),
        "today": answer.today.isoformat(),
        "groups": [{"kind": g.kind, "label": g.label, "note": g.note, "items": [item_to_json(i) for i in g.items]}
                   for g in answer.groups],
        "message": answer.message,
        "all_outdated": answer.all_outdated,
        "region_note": answer.region_note,
        "region_used": answer.region_used,
        "edit_url": "/eligibility?" + form_query(answer.profile),
    }


def search_eligibility_json(searcher: Searcher, question: str, today: date,
                            understanding: Understanding | None = None) -> dict | None:
    """Return the `"eligibility"` member for the search JSON, or None when the question is not about eligibility.

    It is the /api/eligibility answer plus `"source": "question"`; `edit_url` opens the form
    filled with the profile that was understood, so the user can correct it.
    """
    answer = eligibility_for_question(searcher, question, today, understanding)
    if answer is None:
        return None
    out = answer_to_json(answer)
    out["source"] = "question"
    return out


def eligibility_text(data: dict) -> str:
    """Return the answer (as answer_to_json gives it) as `kb eligible` prints it; "" when it says nothing."""
    lines: list[str] = []
    if data["message"]:
        lines.append(click.style(data["message"], bold=True))
    if data["region_note"]:
        lines.append(data["region_note"])
    for group in data["groups"]:
        lines.append(click.style(f"\n== {group['label']}（{len(group['items'])} 条）", bold=True))
        if group["note"]:
            lines.append("   " + group["note"])
        for n, item in enumerate(group["items"], start=1):
            lines.append(click.style(f"[{n}] {item['title']}  " + " > ".join(item["clause_path"]), bold=True))
            lines.append(f"    {item['role_label']} · {item['validity']}")
            for line in item["text"].splitlines():
                lines.append("    " + line)
            lines.append(f"    为何列出：{item['why']}")
            for c in item["conditions"]:
                lines.append(f"    条件：{c['quote'] or c['text']} → {_VERDICTS[c['verdict']]}（{c['reason']}）")
            lines.append(f"    -> {item['url']}")
    return "\n".join(lines)
