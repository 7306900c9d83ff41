"""Who may use the admin pages: the token (pasted once for a session, or sent as a Bearer header), server-side
sessions, the CSRF token and origin check on every POST, throttling of wrong tokens per client across
workers, and the admin's error pages (HTML or JSON, see web.errors.wants_json).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

from flask import abort, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSession
from werkzeug.exceptions import HTTPException

from kb.config import check_admin_token
from web.admin import FIELD_LABELS, LEVEL_LABELS, STATUS_LABELS, admin_state, bp, max_file_bytes, size_text
from web.admin.build import AdminState
from web.admin_state import SharedState, default_state_dir
from web.errors import http_error_code, json_error, wants_json

SESSION_SECONDS = 12 * 3600
LOGIN_FAILURES_ALLOWED = 10  # per client address within LOGIN_WINDOW_SECONDS
LOGIN_WINDOW_SECONDS = 300
TOO_MANY_FAILURES = "错误的令牌尝试次数过多，请 5 分钟后再试（正确的令牌仍可登录）。"


def _derive(token: str, label: str) -> bytes:
    return hmac.new(token.encode("utf-8"), b"kb-admin/" + label.encode(), hashlib.sha256).digest()


@bp.record_once
def _setup(state) -> None:
    app = state.app
    settings = app.extensions.get("kb_settings")
    token = getattr(settings, "admin_token", "") or ""
    if token and not app.secret_key:
        app.secret_key = _derive(token, "session-key")
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Strict"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    check_admin_token(token)  # refuse to start with a guessable token
    pending = app.config.get("KB_ADMIN_PENDING_DIR")
    folder = app.config.get("KB_ADMIN_STATE_DIR") or default_state_dir(Path(settings.index_dir))
    app.extensions["kb_admin"] = AdminState(SharedState(Path(folder), Path(pending) if pending else None))


def _token() -> str:
    settings = current_app.extensions.get("kb_settings")
    return getattr(settings, "admin_token", "") or ""


def _token_ok(candidate: str) -> bool:
    token = _token()
    return bool(token) and hmac.compare_digest(candidate.encode("utf-8"), token.encode("utf-8"))


def _session_mark() -> str:
    # ties the session flag to the token: changing KB_ADMIN_TOKEN logs every browser out
    return _derive(_token(), "session-flag").hex()[:32]


def csrf_token() -> str:
    """Return this session's CSRF token (created on first use)."""
    token = session.get("kb_csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["kb_csrf"] = token
    return token


@bp.context_processor
def _template_helpers() -> dict:
    return {"csrf_token": csrf_token, "field_labels": FIELD_LABELS, "level_labels": LEVEL_LABELS,
            "status_labels": STATUS_LABELS, "size_text": size_text}


def _client() -> str:
    return request.remote_addr or "?"


def _record_failure(who: str) -> bool:
    """Count a wrong token from `who`; return True when it is over the limit (answer 429, not 401)."""
    return admin_state().shared.record_failure(who, LOGIN_WINDOW_SECONDS) >= LOGIN_FAILURES_ALLOWED


def _session_ok() -> bool:
    flag = session.get("kb_admin")
    if not isinstance(flag, dict) or not isinstance(flag.get("at"), (int, float)) \
            or not isinstance(flag.get("sid"), str):
        return False
    return hmac.compare_digest(str(flag.get("mark", "")), _session_mark()) and \
        0 <= time.time() - flag["at"] < SESSION_SECONDS and \
        admin_state().shared.session_alive(flag["sid"], SESSION_SECONDS)  # revoked on logout, in every worker


def _cross_origin() -> str:
    """Return why this request comes from another origin, or '' (no Origin/Referer: not judged)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin.strip().lower() == "null":
            return "Origin 为 null"
        source = urlsplit(origin).netloc
    else:
        referer = request.headers.get("Referer")
        if not referer:
            return ""
        source = urlsplit(referer).netloc
    return "" if source.lower() == request.host.lower() else f"来源是 {source or '未知站点'}"


@bp.before_request
def _guard():
    if not _token():
        abort(404)
    if not isinstance(session, SecureCookieSession):  # no secret key: sessions cannot be signed
        abort(503, description="管理会话不可用：应用没有 secret_key。请重启服务。")
    g.admin_via = None
    auth = request.headers.get("Authorization")
    if auth is not None:
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() != "bearer" or not _token_ok(credential.strip()):
            if _record_failure(_client()):
                abort(429, description=TOO_MANY_FAILURES)
            abort(401, description="Authorization 头中的管理令牌不正确（应为 Bearer <令牌>）。")
        g.admin_via = "bearer"
    elif _session_ok():
        g.admin_via = "session"
    # before any form is read: an anonymous client cannot make the server parse a large upload
    if g.admin_via is None and request.endpoint != "admin.login":
        if request.method == "GET" and not wants_json():
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        abort(401, description="需要先登录管理页面（或使用 Authorization: Bearer <令牌>）。")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        why = _cross_origin()
        if why:
            abort(403, description=f"跨站请求被拒绝（{why}）。请从本站的管理页面提交。")
        if g.admin_via != "bearer":  # a bearer token is never sent by a browser on its own: no CSRF
            sent = request.form.get("csrf_token", "")
            expected = session.get("kb_csrf", "")
            if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
                abort(400, description="表单校验码缺失或已失效（页面可能已过期）。请刷新页面后重新提交。")
    return None


@bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


_ERROR_TITLES = {400: "请求无效", 401: "需要登录", 403: "请求被拒绝", 404: "未找到", 405: "不支持的请求",
                 409: "操作冲突", 413: "文件过大", 429: "尝试过多", 503: "暂不可用"}


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    code = exc.code or 500
    if code == 404 and not _token():  # admin disabled: look like any unknown page
        return render_template("error.html", title="未找到", message="没有这个页面或文档。"), 404
    if code == 413:
        message = (f"上传内容超过了一次请求 {size_text(current_app.config.get('MAX_CONTENT_LENGTH') or 0)} 的上限；"
                   f"每个文件最大 {size_text(max_file_bytes())}，请分批上传。")
    elif code == 404:
        message = exc.description if exc.description and not exc.description.startswith("The requested URL") \
            else "没有这个管理页面。"
    else:
        message = exc.description or exc.name
    if wants_json():
        response = json_error(code, http_error_code(exc), message)
    else:
        response = current_app.make_response(
            (render_template("admin/message.html", title=_ERROR_TITLES.get(code, exc.name), message=message,
                             logged_in=getattr(g, "admin_via", None) is not None), code))
    if code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="kb-admin"'
    return response


# by status code too: the site's own handlers for 404/405/413 are registered by code, which Flask
# prefers over a blueprint's class-based handler
for _code in _ERROR_TITLES:
    bp.register_error_handler(_code, _http_error)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    current_app.logger.exception("admin page failed")
    message = f"服务器内部错误（{type(exc).__name__}），详情已记入服务器日志；语料和索引未被修改。"
    if wants_json():
        return json_error(500, "internal_error", message)
    return render_template("admin/message.html", title="内部错误", message=message, logged_in=True), 500


def _safe_next(target: str | None) -> str:
    # control characters (CR/LF would split the Location header) and Unicode line separators: unsafe
    if target and target.startswith("/admin") and not target.startswith("//") and "\\" not in target \
            and target.isprintable() and " " not in target:
        return target
    return url_for("admin.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Login form: paste the admin token."""
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if g.admin_via is not None:
            return redirect(next_url)
        return render_template("admin/login.html", next=next_url, error=None, logged_in=False)
    if not _token_ok(request.form.get("token", "").strip()):  # the right token is never refused
        if _record_failure(_client()):
            abort(429, description=TOO_MANY_FAILURES)
        return render_template("admin/login.html", next=next_url, error="令牌不正确。", logged_in=False), 401
    session.clear()  # a new session on login: nothing chosen before it carries over
    sid = secrets.token_urlsafe(24)
    admin_state().shared.add_session(sid, SESSION_SECONDS)
    session["kb_admin"] = {"mark": _session_mark(), "at": time.time(), "sid": sid}
    session["kb_csrf"] = secrets.token_urlsafe(32)
    return redirect(next_url, code=303)


@bp.post("/logout")
def logout():
    """End the session: revoked on the server too, so a copy of the cookie no longer works."""
    flag = session.get("kb_admin")
    if isinstance(flag, dict) and isinstance(flag.get("sid"), str):
        admin_state().shared.drop_session(flag["sid"])
    session.clear()
    return redirect(url_for("admin.login"), code=303)

