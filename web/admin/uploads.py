"""Uploads in the admin: files read within a size limit and sniffed against their names, converted in a
child process with a time budget, kept pending (on disk, shared by every worker) for a preview, then
committed to the first corpus folder or cancelled. Nothing reaches the corpus before the commit.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import time
import zipfile
from pathlib import Path

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for

from kb.ingest import SUPPORTED_SUFFIXES, IngestError, IngestResult, write_to_corpus
from kb.ingest.isolated import DEFAULT_SECONDS as DEFAULT_CONVERT_SECONDS
from kb.ingest.isolated import ConversionStopped, ingest_bytes_isolated
# The same rules as `kb add`: which fields describe one document only, and the same-source check.
from kb.ingest.pipeline import PER_FILE_KEYS, clean_overrides, same_source
from kb.domain import LEVELS, STATUSES
from web.admin import FIELD_LABELS, admin_state, bp, first_corpus, max_file_bytes, size_text
from web.errors import json_error, wants_json

PENDING_SECONDS = 24 * 3600
BODY_PREVIEW_LINES = 40
FORM_FIELDS = ("title", "issuer", "doc_no", "level", "region", "doc_type", "published", "valid_from",
               "valid_until", "status", "source")
_PENDING_ID = re.compile(r"^[0-9a-f]{32}$")
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
    if wants_json() and errors:
        return json_error(status, "upload_refused", " ".join(errors), problems=errors)
    return render_template("admin/upload.html", errors=errors, form=form, levels=LEVELS, statuses=STATUSES,
                           max_file=max_file_bytes(), suffixes=SUPPORTED_SUFFIXES), status


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
    limit = max_file_bytes()
    results: list[IngestResult] = []
    for storage in files:
        name = re.split(r"[\\/]", storage.filename)[-1] or "upload"
        data = _read_upload(storage, limit)
        if data is None:
            errors.append(f"{name}：文件超过每个文件 {size_text(limit)} 的上限。")
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
    if wants_json():
        return jsonify({"pending": pending_id, "items": [_item_view(r, first_corpus()) for r in results],
                        "commit_url": url_for("admin.commit", pending_id=pending_id)}), 201
    return redirect(url_for("admin.preview", pending_id=pending_id), code=303)


def _save_pending(results: list[IngestResult]) -> str:
    root = admin_state().shared.pending_dir()
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
    path = admin_state().shared.pending_dir() / pending_id / "pending.json"
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
    corpus_dir = first_corpus()
    items = [_item_view(r, corpus_dir) for r in results]
    if wants_json():
        return jsonify({"pending": pending_id, "corpus_dir": str(corpus_dir), "items": items})
    return render_template("admin/preview.html", pending_id=pending_id, items=items, corpus_dir=corpus_dir,
                           conflicts=[i for i in items if i["conflict"]], error=None)


@bp.post("/pending/<pending_id>/commit")
def commit(pending_id: str):
    """Write the pending documents into the first corpus folder."""
    results = _load_pending(pending_id)
    corpus_dir = first_corpus()
    overwrite = request.form.get("overwrite") in ("1", "yes", "on", "true")
    items = [_item_view(r, corpus_dir) for r in results]
    conflicts = [i for i in items if i["conflict"]]
    if conflicts and not overwrite:
        message = ("语料目录里已有同名但内容不同的文件：" + "、".join(i["conflict"] for i in conflicts)
                   + "。勾选“替换已有文件”后再提交，或取消。没有写入任何内容。")
        if wants_json():
            return json_error(409, "conflict", message)
        return render_template("admin/preview.html", pending_id=pending_id, items=items, corpus_dir=corpus_dir,
                               conflicts=conflicts, error=message), 409
    folder = admin_state().shared.pending_dir() / pending_id
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
    if wants_json():
        return jsonify({"written": written, "build_url": url_for("admin.build_start")})
    flash(f"已写入语料：{'、'.join(written)}。重建索引后即可检索。")
    return redirect(url_for("admin.documents"), code=303)


@bp.post("/pending/<pending_id>/cancel")
def cancel(pending_id: str):
    """Discard a pending batch."""
    _load_pending(pending_id)
    shutil.rmtree(admin_state().shared.pending_dir() / pending_id, ignore_errors=True)
    if wants_json():
        return jsonify({"cancelled": pending_id})
    flash("已取消，没有写入任何内容。")
    return redirect(url_for("admin.upload_form"), code=303)

