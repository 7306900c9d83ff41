"""The admin's view of the corpus: the overview, every corpus document with whether the published
build has it, and removal to `.trash/` (never deletion).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from flask import abort, flash, jsonify, redirect, render_template, request, url_for

from kb.corpus import DOC_ID_MAX_CHARS, CorpusError, assign_doc_ids, list_corpus_files, read_document
from kb.index import IndexMismatch, IndexMissing
from kb.ingest.pipeline import keep_in_trash
from web.admin import admin_state, bp, first_corpus
from web.errors import wants_json
from web.knowledge import get_index, knowledge_base

_DOC_ID = re.compile(rf"^[a-z0-9][a-z0-9\-]{{0,{DOC_ID_MAX_CHARS - 1}}}$")


def _published() -> dict:
    """Return what the published build says about itself (empty when there is none)."""
    try:
        index = get_index()
    except (IndexMissing, IndexMismatch) as exc:  # the admin pages work without an index, and say so
        return {"error": str(exc)}
    manifest = index.manifest
    return {"name": index.build_dir.name, "built_at": manifest.get("built_at", ""),
            "counts": manifest.get("counts", {}), "documents": manifest.get("documents", {}), "index": index}


@bp.get("/")
def index():
    """Overview: corpus folders, published build, rebuild state."""
    published = _published()
    job = admin_state().job
    return render_template("admin/index.html", corpus_dirs=[Path(p) for p in knowledge_base().settings.corpus_dirs],
                           published=published, job=job.as_dict() if job else None)


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
    roots = [Path(p) for p in knowledge_base().settings.corpus_dirs]
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
    if wants_json():
        return jsonify({"documents": [
            {"doc_id": e.doc_id, "title": e.title, "file": str(e.path), "level": e.meta.get("level", ""),
             "status": e.meta.get("status", ""), "published": e.meta.get("published", ""),
             "index_state": e.index_state, "error": e.error} for e in entries], "problems": problems})
    job = admin_state().job
    return render_template("admin/documents.html", entries=entries, problems=problems, published=published,
                           state_labels=INDEX_STATE_LABELS, job=job.as_dict() if job else None,
                           first_corpus=first_corpus())


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
    if wants_json():
        return jsonify({"removed": doc_id, "moved_to": str(moved), "build_url": url_for("admin.build_start")})
    flash(f"已把 {entry.file_name} 移到 {moved}。重建索引后它不再出现在检索结果中。")
    return redirect(url_for("admin.documents"), code=303)


def _move_to_trash(path: Path) -> Path:
    """Move `path` into `.trash/` beside it under a name that never replaces an earlier one."""
    target = keep_in_trash(path)
    os.unlink(path)
    return target

