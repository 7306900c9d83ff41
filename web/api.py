"""JSON API: GET /api/search (contract of DESIGN.md); errors are 4xx with {"error": {code, message}}."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import HTTPException

from kb.search import Filters, QueryError, SearchOptions, check_k
from kb.present import result_to_json
from kb.versions import changes_to_json, compare_versions
from web import errors
from web.errors import json_error
from web.knowledge import get_index, get_searcher, reference_date

bp = Blueprint("api", __name__, url_prefix="/api")


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise QueryError(f"{name} must be a year like 2023, not {raw[:20]!r}") from None


def filters_from_args(args) -> Filters:
    """Return the metadata filters named in request arguments."""
    return Filters(
        level=tuple(v for v in args.getlist("level") if v),
        region=args.get("region", "").strip(),
        issuer=args.get("issuer", "").strip(),
        doc_type=args.get("doc_type", "").strip(),
        status=tuple(v for v in args.getlist("status") if v),
        year_from=_int_arg("year_from"),
        year_to=_int_arg("year_to"),
        active_only=args.get("active_only", "") in ("1", "true", "on", "yes"),
    )


def search_options_from_args(args) -> SearchOptions:
    """Return search options from query parameters (k, mode, expand, filters, as_of); raises QueryError."""
    mode = args.get("mode", "hybrid") or "hybrid"
    if mode not in ("hybrid", "lexical", "dense"):
        raise QueryError(f"mode must be hybrid, lexical or dense, not {mode[:20]!r}")
    return SearchOptions(k=check_k(args.get("k", "5") or "5"), mode=mode, filters=filters_from_args(args),
                         expand=args.get("expand", "1") not in ("0", "false", "off", "no"),
                         as_of=reference_date(args))


@bp.get("/search")
def search():
    """Search; returns the contract JSON."""
    q = request.args.get("q")
    if q is None:
        return json_error(400, "missing_query", "give the question in the q parameter")
    if request.args.get("k", "5").strip() == "":
        return json_error(400, "bad_query", "k must be a whole number from 1 to 100")
    searcher = get_searcher()
    options = search_options_from_args(request.args)
    result = searcher.search(q, options)
    out = result_to_json(result, lambda doc: searcher.validity(doc, options.as_of), options.as_of)
    elig = eligibility_json(searcher, result, options.as_of)
    if elig:
        out["eligibility"] = elig
    return jsonify(out)


def eligibility_json(searcher, result, as_of: date) -> dict | None:
    """Return the grouped eligibility answer when the question is an enterprise asking what support it gets;
    validity is judged on the same `as_of` as the search results."""
    from kb.present import search_eligibility_json

    return search_eligibility_json(searcher, result.query, as_of, result.understanding)


@bp.get("/doc/<doc_id>/changes")
def changes(doc_id: str):
    """JSON: what changed in this version against the previous one, article by article."""
    pair = version_pair(get_index(), doc_id, request.args.get("against", ""))
    if isinstance(pair, str):
        return json_error(404, "not_found", pair)
    old, new = pair
    return jsonify(changes_to_json(old, new, compare_versions(old, new)))


def version_pair(index, doc_id: str, against: str = ""):
    """Return (older, newer) documents to compare: `doc_id` against `against` or its previous version;
    a message string when there is none."""
    doc = index.document(doc_id) if len(doc_id) <= 200 else None
    if doc is None:
        return f"no document {doc_id[:100]!r}"
    facts = index.versions.get(doc_id)
    other_id = against or (facts.previous if facts else "")
    if not other_id:
        return f"{doc_id} has no earlier version in the knowledge base"
    other = index.document(other_id) if len(other_id) <= 200 else None
    if other is None:
        return f"no document {other_id[:100]!r}"
    older, newer = sorted((other, doc), key=lambda d: (d.get("published"), d.doc_id))
    return older, newer


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    """Any HTTP error inside the API is JSON (the app-level handler only takes 404, 405 and 413)."""
    return json_error(exc.code or 500, errors.http_error_code(exc), exc.description or exc.name)
