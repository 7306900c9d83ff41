"""Admin pages under /admin: upload and preview new policies, commit them to the corpus, rebuild the
index in a background thread while the site keeps answering, list and remove documents.

Enabled only when KB_ADMIN_TOKEN is set (otherwise every /admin URL is 404). A browser logs in by
pasting the token (a signed session flag follows); scripts send `Authorization: Bearer <token>`.
Every POST from a session carries the session's CSRF token and must not come from another origin.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import secrets
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from flask import (Blueprint, abort, current_app, flash, g, jsonify, redirect, render_template, request, session,
                   url_for)
from flask.sessions import SecureCookieSession
from werkzeug.exceptions import HTTPException

from kb.config import check_admin_token
from kb.corpus import DOC_ID_MAX_CHARS, CorpusError, assign_doc_ids, list_corpus_files, read_document
from kb.index import BuildBusy, IndexMismatch, IndexMissing, read_current
from kb.ingest import SUPPORTED_SUFFIXES, IngestError, IngestResult, write_to_corpus
# The same rules as `kb add`: which fields describe one document only, and the same-source check.
from kb.ingest.command import PER_FILE_KEYS, same_source
from kb.ingest.isolated import DEFAULT_SECONDS as DEFAULT_CONVERT_SECONDS
from kb.ingest.isolated import ConversionStopped, ingest_bytes_isolated
from kb.ingest.pipeline import clean_overrides, keep_in_trash
from kb.domain import LEVEL_LABELS, LEVELS, STATUS_LABELS, STATUSES
from web.admin_state import SharedState, default_state_dir

bp = Blueprint("admin", __name__, url_prefix="/admin")

DEFAULT_MAX_FILE_BYTES = 20 * 2**20  # per uploaded file; app.config["KB_ADMIN_MAX_FILE_BYTES"] overrides
SESSION_SECONDS = 12 * 3600
PENDING_SECONDS = 24 * 3600
BODY_PREVIEW_LINES = 40
LOGIN_FAILURES_ALLOWED = 10  # per client address within LOGIN_WINDOW_SECONDS
LOGIN_WINDOW_SECONDS = 300
TOO_MANY_FAILURES = "错误的令牌尝试次数过多，请 5 分钟后再试（正确的令牌仍可登录）。"
FORM_FIELDS = ("title", "issuer", "doc_no", "level", "region", "doc_type", "published", "valid_from",
               "valid_until", "status", "source")
FIELD_LABELS = {
    "title": "标题", "issuer": "发文机关", "doc_no": "文号", "level": "层级", "region": "地区",
    "doc_type": "文件类型", "published": "发布日期", "valid_from": "施行日期", "valid_until": "有效期至",
    "status": "效力状态", "source": "来源网址", "source_file": "原始文件", "source_sha256": "原始文件 SHA-256",
}
STAGE_LABELS = {"parse": "解析条款", "segment": "分词", "embed": "计算向量"}
STATE_LABELS = {"idle": "本次运行以来还没有重建", "starting": "正在启动", "running": "正在重建",
                "done": "重建完成，新索引已发布", "up_to_date": "索引已是最新，无需重建", "failed": "重建失败"}
_PENDING_ID = re.compile(r"^[0-9a-f]{32}$")
_DOC_ID = re.compile(rf"^[a-z0-9][a-z0-9\-]{{0,{DOC_ID_MAX_CHARS - 1}}}$")
# Leading bytes of formats that are never a text document, whatever the file is called.
_BINARY_MAGIC = (
    (b"%PDF-", "PDF 文件"),
    (b"PK\x03\x04", "ZIP 压缩包（.docx/.xlsx/.zip）"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "旧版 Office 文件（.doc/.xls/.wps）"),
    (b"\x89PNG\r\n\x1a\n", "PNG 图片"),
    (b"\xff\xd8\xff", "JPEG 图片"),
    (b"GIF8", "GIF 图片"),
    (b"\x7fELF", "可执行程序"),
    (b"MZ", "Windows 程序"),
    (b"\x1f\x8b", "gzip 压缩包"),
    (b"Rar!", "RAR 压缩包"),
    (b"7z\xbc\xaf\x27\x1c", "7z 压缩包"),
)
_TEXT_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


# ---------------------------------------------------------------- state kept per app


@dataclass
class BuildJob:
    """One background rebuild: its progress and outcome (read by the status page and JSON).

    The job is recorded in the shared state folder on every change, so every worker process
    shows the same status; only the process that runs it holds the live object.
    """

    job_id: str
    started: float = field(default_factory=time.time)
    state: str = "starting"  # starting | running | done | up_to_date | failed
    stage: str = ""
    done: int = 0
    total: int = 0
    finished: float | None = None
    message: str = ""
    busy: bool = False
    report: dict | None = None
    pid: int = field(default_factory=os.getpid)
    shared: object = field(default=None, repr=False)  # the SharedState it is recorded in
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _settled: threading.Event = field(default_factory=threading.Event, repr=False)
    _saved: float = field(default=0.0, repr=False)

    RECORD_FIELDS = ("job_id", "started", "state", "stage", "done", "total", "finished", "message", "busy", "report",
                     "pid")

    @property
    def running(self) -> bool:
        return self.state in ("starting", "running")

    @classmethod
    def from_record(cls, record: dict) -> "BuildJob":
        """Return the job a record describes; a running job whose process is gone is shown as interrupted."""
        job = cls(**{k: record[k] for k in cls.RECORD_FIELDS if k in record})
        if job.running and not _process_alive(job.pid):
            job.state, job.finished = "failed", job.finished or time.time()
            job.message = "重建被中断（运行它的服务进程已退出），请重新开始重建。"
        return job

    def record(self) -> dict:
        return {k: getattr(self, k) for k in self.RECORD_FIELDS}

    def save(self, force: bool = True) -> None:
        """Record the job for every worker (progress at most a few times a second)."""
        if self.shared is None:
            return
        now = time.monotonic()
        if not force and now - self._saved < 0.5:
            return
        self._saved = now
        with self._lock:
            record = self.record()
        try:
            self.shared.write_build(record)
        except OSError:  # the status is a convenience: a full disk must not stop the build
            pass

    def progress(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            changed = stage != self.stage or self.state != "running"
            self.state, self.stage, self.done, self.total = "running", stage, done, total
        self.save(force=changed or done == total)
        self._settled.set()

    def run(self, kb, logger) -> None:
        """Run the build (in its own thread) and record how it ended."""
        try:
            report = kb.build(progress=self.progress)
        except BuildBusy as exc:
            self._finish("failed", f"另一个重建正在运行（可能是命令行的 kb build），请等它结束后再试。({exc})", busy=True)
        except (CorpusError, IndexMismatch, OSError, ValueError) as exc:
            self._finish("failed", f"重建失败：{exc}")
        except Exception as exc:  # a bug: keep the site up, say so, log the traceback
            logger.exception("admin rebuild failed")
            self._finish("failed", f"重建失败（程序错误，详情见服务器日志）：{type(exc).__name__}: {exc}")
        else:
            summary = {
                "build_name": report.build_name, "documents": report.documents, "clauses": report.clauses,
                "chunks": report.chunks, "embedded": report.embedded, "seconds": round(report.seconds, 2),
                "changed_documents": list(report.changed_documents),
                "removed_documents": list(report.removed_documents),
            }
            self._finish("up_to_date" if report.up_to_date else "done", "", report=summary)

    def _finish(self, state: str, message: str, *, busy: bool = False, report: dict | None = None) -> None:
        with self._lock:
            self.state, self.message, self.busy, self.report = state, message, busy, report
            self.finished = time.time()
        self.save()
        self._settled.set()

    def wait_settled(self, seconds: float) -> None:
        """Wait until the build reports progress or ends (a held lock shows at once)."""
        self._settled.wait(seconds)

    def as_dict(self) -> dict:
        with self._lock:
            end = self.finished or time.time()
            return {
                "job_id": self.job_id, "state": self.state, "state_label": STATE_LABELS[self.state],
                "running": self.running,
                "stage": self.stage, "stage_label": STAGE_LABELS.get(self.stage, self.stage),
                "done": self.done, "total": self.total,
                "percent": round(100 * self.done / self.total, 1) if self.total else None,
                "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started)),
                "elapsed": round(end - self.started, 1), "message": self.message, "report": self.report,
            }


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


class AdminState:
    """The admin's state: shared by every worker on disk (SharedState), plus the build this process runs."""

    def __init__(self, shared: SharedState) -> None:
        self._lock = threading.Lock()
        self.shared = shared
        self._local_job: BuildJob | None = None

    def pending_dir(self) -> Path:
        return self.shared.pending_dir()

    @property
    def job(self) -> BuildJob | None:
        """The last rebuild any worker started (the live object when this process runs it)."""
        record = self.shared.read_build()
        if record is None:
            return None
        local = self._local_job
        if local is not None and local.job_id == record.get("job_id"):
            return local
        return BuildJob.from_record(record)

    def start_build(self, kb, logger) -> tuple[BuildJob, bool]:
        """Start a rebuild thread unless one runs in any worker; returns (job, started)."""
        with self._lock, self.shared.build_lock():
            current = self.job
            if current is not None and current.running:
                return current, False
            job = BuildJob(job_id=secrets.token_hex(6), shared=self.shared)
            job.save()
            self._local_job = job
        threading.Thread(target=job.run, args=(kb, logger), daemon=True, name="kb-admin-build").start()
        return job, True

    def throttled(self, who: str) -> bool:
        """True when `who` sent too many wrong tokens lately (a right token is still accepted)."""
        return self.shared.failures(who, LOGIN_WINDOW_SECONDS) >= LOGIN_FAILURES_ALLOWED

    def record_failure(self, who: str) -> bool:
        """Count a wrong token from `who`; return True when it is over the limit (answer 429, not 401)."""
        return self.shared.record_failure(who, LOGIN_WINDOW_SECONDS) >= LOGIN_FAILURES_ALLOWED


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


def _state() -> AdminState:
    return current_app.extensions["kb_admin"]


def _kb():
    return current_app.extensions["kb"]


def _token() -> str:
    settings = current_app.extensions.get("kb_settings")
    return getattr(settings, "admin_token", "") or ""


def _token_ok(candidate: str) -> bool:
    token = _token()
    return bool(token) and hmac.compare_digest(candidate.encode("utf-8"), token.encode("utf-8"))


def _session_mark() -> str:
    # ties the session flag to the token: changing KB_ADMIN_TOKEN logs every browser out
    return _derive(_token(), "session-flag").hex()[:32]


def _max_file_bytes() -> int:
    return int(current_app.config.get("KB_ADMIN_MAX_FILE_BYTES") or DEFAULT_MAX_FILE_BYTES)


def _size_text(n: int) -> str:
    if n >= 2**20:
        return f"{n / 2**20:.1f} MB".replace(".0 MB", " MB")
    if n >= 1024:
        return f"{n / 1024:.1f} KB".replace(".0 KB", " KB")
    return f"{n} 字节"


# ---------------------------------------------------------------- auth, CSRF, origin


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
            "status_labels": STATUS_LABELS, "size_text": _size_text}


def _wants_json() -> bool:
    if request.path.endswith(".json"):
        return True
    return request.accept_mimetypes.best_match(["text/html", "application/json"], default="text/html") \
        == "application/json"


def _client() -> str:
    return request.remote_addr or "?"


def _session_ok() -> bool:
    flag = session.get("kb_admin")
    if not isinstance(flag, dict) or not isinstance(flag.get("at"), (int, float)) \
            or not isinstance(flag.get("sid"), str):
        return False
    return hmac.compare_digest(str(flag.get("mark", "")), _session_mark()) and \
        0 <= time.time() - flag["at"] < SESSION_SECONDS and \
        _state().shared.session_alive(flag["sid"], SESSION_SECONDS)  # revoked on logout, in every worker


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
            if _state().record_failure(_client()):
                abort(429, description=TOO_MANY_FAILURES)
            abort(401, description="Authorization 头中的管理令牌不正确（应为 Bearer <令牌>）。")
        g.admin_via = "bearer"
    elif _session_ok():
        g.admin_via = "session"
    # before any form is read: an anonymous client cannot make the server parse a large upload
    if g.admin_via is None and request.endpoint != "admin.login":
        if request.method == "GET" and not _wants_json():
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
        message = (f"上传内容超过了一次请求 {_size_text(current_app.config.get('MAX_CONTENT_LENGTH') or 0)} 的上限；"
                   f"每个文件最大 {_size_text(_max_file_bytes())}，请分批上传。")
    elif code == 404:
        message = exc.description if exc.description and not exc.description.startswith("The requested URL") \
            else "没有这个管理页面。"
    else:
        message = exc.description or exc.name
    if _wants_json():
        response = jsonify({"error": {"code": (exc.name or "error").lower().replace(" ", "_"), "message": message}})
        response.status_code = code
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
    if _wants_json():
        response = jsonify({"error": {"code": "internal_error", "message": message}})
        response.status_code = 500
        return response
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
        if _state().record_failure(_client()):
            abort(429, description=TOO_MANY_FAILURES)
        return render_template("admin/login.html", next=next_url, error="令牌不正确。", logged_in=False), 401
    session.clear()  # a new session on login: nothing chosen before it carries over
    sid = secrets.token_urlsafe(24)
    _state().shared.add_session(sid, SESSION_SECONDS)
    session["kb_admin"] = {"mark": _session_mark(), "at": time.time(), "sid": sid}
    session["kb_csrf"] = secrets.token_urlsafe(32)
    return redirect(next_url, code=303)


@bp.post("/logout")
def logout():
    """End the session: revoked on the server too, so a copy of the cookie no longer works."""
    flag = session.get("kb_admin")
    if isinstance(flag, dict) and isinstance(flag.get("sid"), str):
        _state().shared.drop_session(flag["sid"])
    session.clear()
    return redirect(url_for("admin.login"), code=303)


# ---------------------------------------------------------------- overview


def _first_corpus() -> Path:
    dirs = list(_kb().settings.corpus_dirs)
    if not dirs:
        abort(503, description="没有配置语料目录（KB_CORPUS）。")
    return Path(dirs[0])


def _published() -> dict:
    """Return what the published build says about itself (empty when there is none)."""
    try:
        index = _kb().index()
    except (IndexMissing, IndexMismatch) as exc:
        return {"error": str(exc)}
    manifest = index.manifest
    return {"name": index.build_dir.name, "built_at": manifest.get("built_at", ""),
            "counts": manifest.get("counts", {}), "documents": manifest.get("documents", {}), "index": index}


@bp.get("/")
def index():
    """Overview: corpus folders, published build, rebuild state."""
    published = _published()
    job = _state().job
    return render_template("admin/index.html", corpus_dirs=[Path(p) for p in _kb().settings.corpus_dirs],
                           published=published, job=job.as_dict() if job else None)


# ---------------------------------------------------------------- upload, preview, commit


def _sniff(name: str, data: bytes) -> str:
    """Return why `data` is not the kind of file its name says, or ''."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kind = f"{suffix} 文件" if suffix else "没有扩展名的文件"
        return f"{name}：不支持{kind}；支持的类型：{', '.join(SUPPORTED_SUFFIXES)}（.doc/.wps 请先另存为 .docx）"
    if not data.strip():
        return f"{name}：文件是空的。"
    if suffix == ".pdf":
        return "" if b"%PDF-" in data[:1024] else f"{name}：内容不是 PDF（文件开头没有 %PDF- 标记）。"
    if suffix == ".docx":
        if data.startswith(b"\xd0\xcf\x11\xe0"):
            return f"{name}：这是旧版 Word（.doc）文件，请先另存为 .docx。"
        if not data.startswith(b"PK\x03\x04"):
            return f"{name}：内容不是 .docx（Word 2007 及以后的格式）。"
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as package:
                names = set(package.namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return f"{name}：.docx 文件已损坏（不是完整的 ZIP 包）。"
        if "word/document.xml" not in names:
            return f"{name}：ZIP 包里没有 word/document.xml，不是 Word 文档。"
        return ""
    for magic, kind in _BINARY_MAGIC:
        if data.startswith(magic):
            return f"{name}：扩展名是 {suffix}，但内容是 {kind}，不是文本。"
    if b"\x00" in data[:8192] and not data.startswith(_TEXT_BOMS):
        return f"{name}：含有 NUL 字节，不是文本文件（或是不带 BOM 的 UTF-16）。"
    return ""


def _read_upload(storage, limit: int) -> bytes | None:
    """Return the uploaded bytes, or None when they exceed `limit`."""
    data = storage.stream.read(limit + 1)
    return None if len(data) > limit else data


def _form_values() -> dict[str, str]:
    return {key: request.form.get(key, "").strip() for key in FORM_FIELDS}


def _render_upload(errors: list[str], form: dict[str, str], status: int):
    if _wants_json() and errors:
        response = jsonify({"error": {"code": "upload_refused", "message": " ".join(errors), "problems": errors}})
        response.status_code = status
        return response
    return render_template("admin/upload.html", errors=errors, form=form, levels=LEVELS, statuses=STATUSES,
                           max_file=_max_file_bytes(), suffixes=SUPPORTED_SUFFIXES), status


@bp.get("/upload")
def upload_form():
    """The upload form with the metadata fields of `kb add`."""
    return _render_upload([], {key: "" for key in FORM_FIELDS}, 200)


@bp.post("/upload")
def upload():
    """Convert the uploaded files and keep them pending for a preview; nothing is written to the corpus."""
    form = _form_values()
    files = [f for f in request.files.getlist("files") if f and f.filename]
    errors: list[str] = []
    if not files:
        errors.append("请选择至少一个文件。")
    overrides = {key: value for key, value in form.items() if value}
    per_file = [key for key in PER_FILE_KEYS if key in overrides]
    if per_file and len(files) > 1:
        errors.append(f"{'、'.join(FIELD_LABELS.get(k, k) for k in per_file)} 只描述一个文件；"
                      "一次只上传一个文件时才能填写。")
    try:
        overrides = clean_overrides(overrides, "表单")
    except IngestError as exc:
        errors.append(str(exc))
    if errors:
        return _render_upload(errors, form, 400)
    limit = _max_file_bytes()
    results: list[IngestResult] = []
    for storage in files:
        name = re.split(r"[\\/]", storage.filename)[-1] or "upload"
        data = _read_upload(storage, limit)
        if data is None:
            errors.append(f"{name}：文件超过每个文件 {_size_text(limit)} 的上限。")
            continue
        problem = _sniff(name, data)
        if problem:
            errors.append(problem)
            continue
        seconds = float(current_app.config.get("KB_ADMIN_CONVERT_SECONDS") or DEFAULT_CONVERT_SECONDS)
        try:  # in a child process that is stopped past its budget: one file cannot hold the server
            results.append(ingest_bytes_isolated(data, name, overrides, max_bytes=limit, seconds=seconds))
        except ConversionStopped:
            errors.append(f"{name}：转换超过 {seconds:g} 秒仍未完成，已停止（文件可能过大或结构异常）。")
        except IngestError as exc:
            errors.append(str(exc))
        except RuntimeError as exc:  # a bug in a reader: log it, refuse this file, keep serving
            current_app.logger.error("converting an upload failed: %s", exc)
            errors.append(f"{name}：转换时出现程序错误（详情见服务器日志）。")
    targets: dict[str, str] = {}
    for result in results:
        previous = targets.setdefault(result.suggested_name, str(result.source))
        if previous != str(result.source):
            errors.append(f"{result.source} 和 {previous} 会写成同一个文件 {result.suggested_name}.md（文号或标题相同）；"
                          "请只上传其中一个，或分别上传并填写不同的文号/标题。")
    if errors:
        return _render_upload(errors + ["没有保存任何内容。"], form, 400)
    pending_id = _save_pending(results)
    if _wants_json():
        return jsonify({"pending": pending_id, "items": [_item_view(r, _first_corpus()) for r in results],
                        "commit_url": url_for("admin.commit", pending_id=pending_id)}), 201
    return redirect(url_for("admin.preview", pending_id=pending_id), code=303)


def _save_pending(results: list[IngestResult]) -> str:
    root = _state().pending_dir()
    for old in root.iterdir():  # forget previews nobody committed
        try:
            if time.time() - old.stat().st_mtime > PENDING_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    pending_id = secrets.token_hex(16)
    folder = root / pending_id
    folder.mkdir(mode=0o700)
    payload = {"created": time.time(), "items": [
        {"source": str(r.source), "doc_text": r.doc_text, "meta": r.meta, "body": r.body, "missing": list(r.missing),
         "warnings": list(r.warnings), "suggested_name": r.suggested_name} for r in results]}
    tmp = folder / ".pending.json.tmp"
    tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, folder / "pending.json")
    return pending_id


def _load_pending(pending_id: str) -> list[IngestResult]:
    gone = "这批上传不存在：可能已经提交、已取消，或超过 24 小时已过期。请重新上传。"
    if not _PENDING_ID.match(pending_id):
        abort(404, description=gone)
    path = _state().pending_dir() / pending_id / "pending.json"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        abort(404, description=gone)
    if time.time() - payload.get("created", 0) > PENDING_SECONDS:
        shutil.rmtree(path.parent, ignore_errors=True)
        abort(404, description=gone)
    return [IngestResult(source=Path(item["source"]), doc_text=item["doc_text"], meta=item["meta"], body=item["body"],
                         missing=tuple(item["missing"]), warnings=tuple(item["warnings"]),
                         suggested_name=item["suggested_name"]) for item in payload["items"]]


def _item_view(result: IngestResult, corpus_dir: Path | None = None) -> dict:
    lines = result.body.split("\n")
    view = {
        "source": str(result.source), "file_name": f"{result.suggested_name}.md", "meta": dict(result.meta),
        "missing": list(result.missing), "warnings": list(result.warnings),
        "body_head": "\n".join(lines[:BODY_PREVIEW_LINES]), "body_lines": len(lines),
        "conflict": "", "identical": False, "duplicate_of": "",
    }
    if corpus_dir is not None:
        target = corpus_dir / view["file_name"]
        if target.is_file():
            if target.read_bytes() == result.doc_text.encode("utf-8"):
                view["identical"] = True
            else:
                view["conflict"] = str(target)
        duplicate = same_source(corpus_dir, result)
        if duplicate:
            view["duplicate_of"] = str(duplicate)
    return view


@bp.get("/pending/<pending_id>")
def preview(pending_id: str):
    """What was extracted, before anything is written."""
    results = _load_pending(pending_id)
    corpus_dir = _first_corpus()
    items = [_item_view(r, corpus_dir) for r in results]
    if _wants_json():
        return jsonify({"pending": pending_id, "corpus_dir": str(corpus_dir), "items": items})
    return render_template("admin/preview.html", pending_id=pending_id, items=items, corpus_dir=corpus_dir,
                           conflicts=[i for i in items if i["conflict"]], error=None)


@bp.post("/pending/<pending_id>/commit")
def commit(pending_id: str):
    """Write the pending documents into the first corpus folder."""
    results = _load_pending(pending_id)
    corpus_dir = _first_corpus()
    overwrite = request.form.get("overwrite") in ("1", "yes", "on", "true")
    items = [_item_view(r, corpus_dir) for r in results]
    conflicts = [i for i in items if i["conflict"]]
    if conflicts and not overwrite:
        message = ("语料目录里已有同名但内容不同的文件：" + "、".join(i["conflict"] for i in conflicts)
                   + "。勾选“替换已有文件”后再提交，或取消。没有写入任何内容。")
        if _wants_json():
            return jsonify({"error": {"code": "conflict", "message": message}}), 409
        return render_template("admin/preview.html", pending_id=pending_id, items=items, corpus_dir=corpus_dir,
                               conflicts=conflicts, error=message), 409
    folder = _state().pending_dir() / pending_id
    claimed = folder.with_name(pending_id + ".committing")
    try:
        os.rename(folder, claimed)  # only one of two simultaneous commits gets the batch
    except OSError:
        abort(404, description="这批上传已经被提交或取消了。")
    written: list[str] = []
    try:
        for result in results:
            written.append(str(write_to_corpus(result, corpus_dir, overwrite=overwrite)))
    except IngestError as exc:
        os.rename(claimed, folder)  # keep the batch so the admin can try again
        done = f"已写入：{'、'.join(written)}。" if written else "没有写入任何内容。"
        abort(409, description=f"写入语料失败：{exc}。{done}")
    shutil.rmtree(claimed, ignore_errors=True)
    if _wants_json():
        return jsonify({"written": written, "build_url": url_for("admin.build_start")})
    flash(f"已写入语料：{'、'.join(written)}。重建索引后即可检索。")
    return redirect(url_for("admin.documents"), code=303)


@bp.post("/pending/<pending_id>/cancel")
def cancel(pending_id: str):
    """Discard a pending batch."""
    _load_pending(pending_id)
    shutil.rmtree(_state().pending_dir() / pending_id, ignore_errors=True)
    if _wants_json():
        return jsonify({"cancelled": pending_id})
    flash("已取消，没有写入任何内容。")
    return redirect(url_for("admin.upload_form"), code=303)


# ---------------------------------------------------------------- documents


@dataclass
class CorpusEntry:
    """A corpus file as the documents page shows it."""

    doc_id: str
    path: Path
    root: Path
    title: str = ""
    meta: dict = field(default_factory=dict)
    content_hash: str = ""
    index_state: str = "new"  # indexed | changed | new | removed | broken
    error: str = ""

    @property
    def file_name(self) -> str:
        try:
            return str(self.path.relative_to(self.root))
        except ValueError:
            return self.path.name


def _corpus_entries() -> tuple[list[CorpusEntry], list[str], dict]:
    """Return (entries incl. documents only the index still has, problems, published build info)."""
    problems: list[str] = []
    roots = [Path(p) for p in _kb().settings.corpus_dirs]
    present = []
    for root in roots:
        if root.is_dir():
            present.append(root)
        else:
            problems.append(f"语料目录不存在：{root}")
    try:
        files = list_corpus_files(present)
    except (CorpusError, OSError) as exc:
        problems.append(f"无法读取语料目录：{exc}")
        files = []
    ids = assign_doc_ids(files)
    published = _published()
    if "error" in published:
        problems.append(f"索引暂不可用：{published['error']}")
    in_index: dict[str, str] = published.get("documents", {})
    entries = []
    for f in files:
        entry = CorpusEntry(doc_id=ids[f.path], path=f.path, root=f.corpus_root)
        try:
            doc = read_document(f.path, entry.doc_id)
        except CorpusError as exc:
            entry.index_state, entry.error = "broken", str(exc)
        else:
            entry.title, entry.meta, entry.content_hash = doc.title, doc.meta_dict(), doc.content_hash
            if in_index.get(doc.doc_id) == doc.content_hash:
                entry.index_state = "indexed"
            elif doc.doc_id in in_index:
                entry.index_state = "changed"
        entries.append(entry)
    known = {e.doc_id for e in entries}
    index = published.get("index")
    for doc_id in sorted(set(in_index) - known):
        doc = index.documents[index.doc_row[doc_id]] if index is not None and doc_id in index.doc_row else None
        entries.append(CorpusEntry(doc_id=doc_id, path=Path(doc.source_path if doc else doc_id), root=Path("/"),
                                   title=doc.title if doc else doc_id, meta=doc.meta_dict() if doc else {},
                                   index_state="removed"))
    return entries, problems, published


INDEX_STATE_LABELS = {"indexed": "已在索引中", "changed": "已修改，待重建", "new": "尚未索引（待重建）",
                      "removed": "已移除，重建后从索引删除", "broken": "文件有错误，无法索引"}


@bp.get("/documents")
def documents():
    """Every corpus document with its metadata and whether the published index has it."""
    entries, problems, published = _corpus_entries()
    if _wants_json():
        return jsonify({"documents": [
            {"doc_id": e.doc_id, "title": e.title, "file": str(e.path), "level": e.meta.get("level", ""),
             "status": e.meta.get("status", ""), "published": e.meta.get("published", ""),
             "index_state": e.index_state, "error": e.error} for e in entries], "problems": problems})
    job = _state().job
    return render_template("admin/documents.html", entries=entries, problems=problems, published=published,
                           state_labels=INDEX_STATE_LABELS, job=job.as_dict() if job else None,
                           first_corpus=_first_corpus())


def _find_entry(doc_id: str) -> CorpusEntry:
    if not _DOC_ID.match(doc_id):
        abort(404, description="没有这个文档。")
    for entry in _corpus_entries()[0]:
        if entry.doc_id == doc_id and entry.index_state != "removed":
            return entry
    abort(404, description=f"语料中没有文档 {doc_id}（可能已经移除）。")


@bp.get("/documents/<doc_id>/remove")
def remove_confirm(doc_id: str):
    """Ask before moving a document to the trash."""
    return render_template("admin/remove.html", entry=_find_entry(doc_id))


@bp.post("/documents/<doc_id>/remove")
def remove(doc_id: str):
    """Move the document's corpus file to `.trash/` next to it (never delete)."""
    entry = _find_entry(doc_id)
    if request.form.get("confirm") != "yes":
        abort(400, description="删除需要确认：请在确认页面点击“确认移除”。")
    expected = request.form.get("content_hash", "")
    if expected and entry.content_hash and expected != entry.content_hash:
        abort(409, description="文件在确认之后被修改过，没有移除。请重新打开确认页面。")
    try:
        moved = _move_to_trash(entry.path)
    except OSError as exc:
        abort(409, description=f"无法移动 {entry.path}：{exc.strerror or exc}。没有修改任何文件。")
    if _wants_json():
        return jsonify({"removed": doc_id, "moved_to": str(moved), "build_url": url_for("admin.build_start")})
    flash(f"已把 {entry.file_name} 移到 {moved}。重建索引后它不再出现在检索结果中。")
    return redirect(url_for("admin.documents"), code=303)


def _move_to_trash(path: Path) -> Path:
    """Move `path` into `.trash/` beside it under a name that never replaces an earlier one."""
    target = keep_in_trash(path)
    os.unlink(path)
    return target


# ---------------------------------------------------------------- rebuild


@bp.post("/build")
def build_start():
    """Start a rebuild in a background thread (one at a time) and show its progress."""
    job, started = _state().start_build(_kb(), current_app.logger)
    if not started:
        abort(409, description="已有一个重建正在运行，请等待它结束。")
    job.wait_settled(3.0)
    if job.busy:
        abort(409, description=job.message)
    if _wants_json():
        return jsonify(job.as_dict()), 202
    return redirect(url_for("admin.build_status"), code=303)


def _build_view() -> dict:
    job = _state().job
    view = job.as_dict() if job else {"state": "idle", "state_label": STATE_LABELS["idle"], "running": False}
    view["current_build"] = read_current(Path(_kb().settings.index_dir))
    return view


@bp.get("/build")
def build_status():
    """Progress of the last rebuild; refreshes itself (admin.js, or a meta refresh without JS)."""
    return render_template("admin/build.html", job=_build_view(), stage_labels=STAGE_LABELS)


@bp.get("/build/status.json")
def build_status_json():
    """Progress of the last rebuild as JSON (polled by admin.js)."""
    return jsonify(_build_view())
