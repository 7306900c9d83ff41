"""Errors as the site answers them, in one place: the JSON error body of the API contract
(`{"error": {"code", "message"}}`), whether a request gets JSON or HTML, and the app-level handlers
(index missing or mismatched → 503, bad query → 400, HTTP errors).
"""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from kb.index import IndexMismatch, IndexMissing
from kb.search import QueryError


def json_error(status: int, code: str, message: str, **extra):
    """Return the JSON error response of the API contract (`extra` keys go beside code and message)."""
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    return response


def wants_json() -> bool:
    """True when this request is answered in JSON: the API (/api/*), and admin URLs asked for JSON
    (a `.json` path or an Accept header preferring JSON)."""
    if request.path.startswith("/api/"):
        return True
    if request.blueprint != "admin":
        return False
    if request.path.endswith(".json"):
        return True
    return request.accept_mimetypes.best_match(["text/html", "application/json"], default="text/html") \
        == "application/json"


def http_error_code(exc: HTTPException) -> str:
    """Return the JSON error code of an HTTP error ("Method Not Allowed" → "method_not_allowed")."""
    return (exc.name or "error").lower().replace(" ", "_")


# status → (JSON code, JSON message, HTML title, HTML message) for the HTTP errors anyone can cause
_HTTP_ANSWERS = {
    404: ("not_found", "no such resource", "未找到", "没有这个页面或文档。"),
    405: ("method_not_allowed", "this method is not allowed here", "不支持的请求", "这个地址不支持该请求方式。"),
    413: ("too_large", "the request body is too large", "文件过大", "上传的内容超过了大小限制。"),
}


def _page(status: int, title: str, message: str, alert: bool = False):
    return render_template("error.html", title=title, message=message, alert=alert), status


def index_unavailable(exc: IndexMissing | IndexMismatch):
    """503: no published build, or one this server cannot read (another encoder, an older schema)."""
    if wants_json():
        return json_error(503, "index_unavailable", str(exc))
    return _page(503, "索引暂不可用", str(exc))


def bad_query(exc: QueryError):
    """400: a question, filter or date the user can correct."""
    if wants_json():
        return json_error(400, "bad_query", str(exc))
    return _page(400, "查询条件有误", str(exc), alert=True)


def http_error(exc: HTTPException):
    """An HTTP error outside the admin pages (which answer their own, see web.admin.auth)."""
    status = exc.code or 500
    code, message, title, page_message = _HTTP_ANSWERS.get(
        status, (http_error_code(exc), exc.description or exc.name, exc.name, exc.description or exc.name))
    if wants_json():
        return json_error(status, code, message)
    return _page(status, title, page_message)


def register(app: Flask) -> None:
    """Install the app-level error handlers."""
    app.register_error_handler(IndexMissing, index_unavailable)
    app.register_error_handler(IndexMismatch, index_unavailable)
    app.register_error_handler(QueryError, bad_query)
    for status in _HTTP_ANSWERS:
        app.register_error_handler(status, http_error)
