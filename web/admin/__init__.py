"""Admin pages under /admin: upload and preview new policies, commit them to the corpus, rebuild the
index in a background thread while the site keeps answering, list and remove documents.

Enabled only when KB_ADMIN_TOKEN is set (otherwise every /admin URL is 404). A browser logs in by
pasting the token (a signed session flag follows); scripts send `Authorization: Bearer <token>`.
Every POST from a session carries the session's CSRF token and must not come from another origin.

One blueprint, four modules: `auth` (token, sessions, CSRF, origin, throttling, error pages),
`uploads` (upload, sniff, preview, commit), `documents` (overview, corpus listing, trash) and
`build` (the background rebuild). What they share is here.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app

from kb.domain import LEVEL_LABELS, STATUS_LABELS  # noqa: F401  (the admin modules take them from here)

bp = Blueprint("admin", __name__, url_prefix="/admin")

DEFAULT_MAX_FILE_BYTES = 20 * 2**20  # per uploaded file; app.config["KB_ADMIN_MAX_FILE_BYTES"] overrides
FIELD_LABELS = {
    "title": "标题", "issuer": "发文机关", "doc_no": "文号", "level": "层级", "region": "地区",
    "doc_type": "文件类型", "published": "发布日期", "valid_from": "施行日期", "valid_until": "有效期至",
    "status": "效力状态", "source": "来源网址", "source_file": "原始文件", "source_sha256": "原始文件 SHA-256",
}


def admin_state():
    """Return the app's web.admin.build.AdminState (shared on disk by every worker)."""
    return current_app.extensions["kb_admin"]


def max_file_bytes() -> int:
    """Return the largest file an upload may hold."""
    return int(current_app.config.get("KB_ADMIN_MAX_FILE_BYTES") or DEFAULT_MAX_FILE_BYTES)


def size_text(n: int) -> str:
    """Return a byte count as people read it (12 KB, 1.5 MB)."""
    if n >= 2**20:
        return f"{n / 2**20:.1f} MB".replace(".0 MB", " MB")
    if n >= 1024:
        return f"{n / 1024:.1f} KB".replace(".0 KB", " KB")
    return f"{n} 字节"


def first_corpus() -> Path:
    """Return the corpus folder uploads are written into (the first configured one)."""
    from web.knowledge import knowledge_base

    dirs = list(knowledge_base().settings.corpus_dirs)
    if not dirs:
        abort(503, description="没有配置语料目录（KB_CORPUS）。")
    return Path(dirs[0])


from web.admin import auth, build, documents, uploads  # noqa: E402,F401 - their views register on bp
