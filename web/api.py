"""JSON API: GET /api/search (contract of DESIGN.md); errors are 4xx with {"error": {code, message}}."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from kb.index import IndexMismatch, IndexMissing
from kb.search import Filters, QueryError, SearchOptions, check_k
from kb.service import result_to_json

bp = Blueprint("api", __name__, url_prefix="/api")


def api_error(status: int, code: str, message: str):
    """Return a JSON error response."""
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


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
    """Return search options from query parameters (k, mode, expand, filters); raises QueryError."""
    mode = args.get("mode", "hybrid") or "hybrid"
    if mode not in ("hybrid", "lexical", "dense"):
        raise QueryError(f"mode must be hybrid, lexical or dense, not {mode[:20]!r}")
    return SearchOptions(k=check_k(args.get("k", "5") or "5"), mode=mode, filters=filters_from_args(args),
                         expand=args.get("expand", "1") not in ("0", "false", "off", "no"))


@bp.get("/search")
def search():
    """Search; returns the contract JSON."""
    kb = current_app.extensions["kb"]
    q = request.args.get("q")
    if q is None:
        return api_error(400, "missing_query", "give the question in the q parameter")
    if request.args.get("k", "5").strip() == "":
        return api_error(400, "bad_query", "k must be a whole number from 1 to 100")
    try:
        searcher = kb.searcher()  # one build for the whole request, even if a newer one is published meanwhile
        result = searcher.search(q, search_options_from_args(request.args))
    except QueryError as exc:
        return api_error(400, "bad_query", str(exc))
    except (IndexMissing, IndexMismatch) as exc:
        return api_error(503, "index_unavailable", str(exc))
    out = result_to_json(result, searcher.validity)
    elig = eligibility_json(searcher, result)
    if elig:
        out["eligibility"] = elig
    return jsonify(out)


def eligibility_json(searcher, result) -> dict | None:
    """Return the grouped eligibility answer when the question is an enterprise asking what support it gets."""
    from kb.eligibility import search_eligibility_json
    from web.eligibility import today

    return search_eligibility_json(searcher, result.query, today(), result.understanding)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    return api_error(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or exc.name)
