"""HTML pages: search (/ and /search) and the document reader (/doc/<doc_id>) with an anchor per clause."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import markdown
import nh3
from flask import Blueprint, abort, render_template, request, url_for
from markupsafe import Markup, escape

from kb.corpus import DOC_ID_MAX_CHARS
from kb.domain import LEVEL_LABELS, STATUS_LABELS
from kb.index import KnowledgeIndex
from kb.refs import ReferenceResolver, find_references
from kb.search import QueryError
from kb.types import Clause, Document
from kb.versions import changes_to_json, compare_versions, title_key
from web.api import eligibility_json, filters_from_args, search_options_from_args, version_pair
from web.knowledge import get_index, get_searcher, request_date

bp = Blueprint("pages", __name__)

EXTRA_META_LABELS = {"interprets": "解读对象", "source_note": "说明", "license": "版权", "doc_type": "类型",
                     "history": "题注（制定与修改）", "valid_from_note": "施行日期依据"}
_DERIVED_KEYS = ("repealed_by", "repealed_note", "superseded_from", "effective_note")  # shown in the versions box instead
_DOC_ID_RE = re.compile(rf"^[a-z0-9][a-z0-9\-]{{0,{DOC_ID_MAX_CHARS - 1}}}$")

# The query parameters each page owns: links rebuilt from the request carry these and nothing else
# (never **request.args into url_for, whose _external, _scheme, _method and _anchor are its own).
OWNED_PARAMS = {
    "pages.search": ("q", "k", "mode", "level", "region", "issuer", "doc_type", "status", "year_from", "year_to",
                     "active_only", "expand"),
    "pages.documents": ("level", "region", "issuer", "doc_type", "status", "year_from", "year_to", "active_only",
                        "sort", "order"),
}


def page_link(endpoint: str, **changes) -> str:
    """Return the URL of `endpoint` with the request's own parameters of that page, `changes` applied."""
    params: dict[str, list[str]] = {}
    for name in OWNED_PARAMS[endpoint]:
        values = [v for v in request.args.getlist(name) if v]
        if values:
            params[name] = values
    for name, value in changes.items():
        if name not in OWNED_PARAMS[endpoint]:
            raise ValueError(f"{endpoint} has no parameter {name!r}")  # a template bug, not user input
        params[name] = [str(value)]
    return url_for(endpoint, **params)


def status_label(status: str) -> str:
    """Return the Chinese label of a document status."""
    return STATUS_LABELS.get(status, status)


def highlight(text: str, terms) -> Markup:
    """Return escaped text with query terms wrapped in <mark> (longest terms first, no overlaps)."""
    # single characters (到, 年, 家) would light up half the text
    terms = sorted({t for t in (terms or []) if len(t.strip()) >= 2}, key=len, reverse=True)
    if not terms:
        return Markup(escape(text))
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
    out, pos = [], 0
    for m in pattern.finditer(text):
        out.append(escape(text[pos:m.start()]))
        out.append(Markup("<mark>") + escape(m.group(0)) + Markup("</mark>"))
        pos = m.end()
    out.append(escape(text[pos:]))
    return Markup("").join(out)


_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")  # the corpus format's `#` headings (kb/structure.py)
_TABLE_RULE = re.compile(r"^\s*\|?(?:\s*:?-+:?\s*\|)*\s*:?-+:?\s*\|?\s*$")  # | --- | :---: |
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _cached(index: KnowledgeIndex, name: str, factory):
    """Return a value computed once per loaded build (a newer build gets its own)."""
    cache = index.__dict__.setdefault("_web_cache", {})
    if name not in cache:
        cache[name] = factory()
    return cache[name]


def resolver_for(index: KnowledgeIndex) -> ReferenceResolver:
    """Return the cross-reference resolver of a build."""
    return _cached(index, "resolver", lambda: ReferenceResolver(index.documents))


def citation_text(doc: Document, clause: Clause) -> str:
    """Return a citation to paste into a document: 《标题》（文号）路径：条款原文."""
    title = doc.title if doc.title.startswith("《") else f"《{doc.title}》"
    doc_no = f"（{doc.get('doc_no')}）" if doc.get("doc_no") else ""
    path = " > ".join(clause.path)
    return f"{title}{doc_no}{path}{'：' if path else ''}{clause.text}"


def _inline(text: str, resolve, self_id: str) -> Markup:
    """Return `text` escaped, with 《titles》 of other documents in the knowledge base made links."""
    out, pos = [], 0
    if resolve:
        for ref in find_references(text):
            doc_id = resolve(ref.title)
            if doc_id and doc_id != self_id:
                out.append(escape(text[pos:ref.start]))
                out.append(Markup('<a href="/doc/{}">《{}》</a>').format(doc_id, ref.title))
                pos = ref.end
    out.append(escape(text[pos:]))
    return Markup("").join(out)


def _table_cells(line: str) -> list[str]:
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(line)]


def _table_html(rows: list[str], resolve, self_id: str) -> Markup:
    head, body = _table_cells(rows[0]), [_table_cells(r) for r in rows[2:]]
    cell = lambda tag, text: Markup("<{0}>{1}</{0}>").format(tag, _inline(text, resolve, self_id))  # noqa: E731
    html = Markup("<table><thead><tr>") + Markup("").join(cell("th", c) for c in head) + Markup("</tr></thead>")
    if body:
        html += Markup("<tbody>") + Markup("").join(
            Markup("<tr>") + Markup("").join(cell("td", c) for c in row) + Markup("</tr>") for row in body) \
            + Markup("</tbody>")
    return html + Markup("</table>")


def render_clause_markdown(text: str, resolve=None, self_id: str = "") -> Markup:
    """Render a clause as HTML that shows every character of its text.

    The text is escaped, never interpreted: the only markup is the structure this function
    makes itself, a paragraph per source line, a heading per `# ` line, a table per Markdown
    pipe table (header, `---` rule, rows), and links for 《titles》 in the knowledge base.
    """
    blocks: list[Markup] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("|"):
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            rows = lines[i:j]
            if len(rows) >= 2 and _TABLE_RULE.match(rows[1]):
                blocks.append(_table_html(rows, resolve, self_id))
            else:
                blocks.extend(Markup("<p>{}</p>").format(_inline(r, resolve, self_id)) for r in rows if r.strip())
            i = j
            continue
        heading = _MD_HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            blocks.append(Markup("<h{0}>{1}</h{0}>").format(level, _inline(heading.group(2), resolve, self_id)))
        elif line.strip():
            blocks.append(Markup("<p>{}</p>").format(_inline(line, resolve, self_id)))
        i += 1
    return Markup("\n").join(blocks)


@bp.get("/")
def home():
    """The search page."""
    return render_template("search.html", q="", result=None, error=None, k=5, mode="hybrid", args=request.args)


@bp.get("/search")
def search():
    """Search results with citations."""
    q = request.args.get("q", "")
    error = None
    result = None
    eligibility = None
    k = 5
    mode = request.args.get("mode", "hybrid")
    status = 200
    try:  # a bad question is shown on the search form itself, not on an error page
        options = search_options_from_args(request.args)
        k = options.k
        searcher = get_searcher()
        result = searcher.search(q, options)
        eligibility = eligibility_json(searcher, result, options.as_of)
    except QueryError as exc:
        error, status = str(exc), 400
    return render_template("search.html", q=q, result=result, error=error, k=k, mode=mode,
                           args=request.args, eligibility=eligibility), status


@bp.get("/doc/<doc_id>")
def document(doc_id: str):
    """The whole document with an anchor (element id) per clause."""
    if not _DOC_ID_RE.match(doc_id):
        abort(404)
    searcher = get_searcher()
    index = searcher.index
    doc = index.document(doc_id)
    if doc is None:
        abort(404)
    clauses = index.clauses_of(doc_id)
    resolve = resolver_for(index).resolve
    sections = [{"clause": c, "html": render_clause_markdown(c.text, resolve, doc_id),
                 "cite": citation_text(doc, c)} for c in clauses]
    outline = [c for c in clauses if c.heading]
    as_of = request_date()
    meta = index.versions.effective_meta(doc, as_of)
    facts = index.versions.get(doc_id)
    successor = facts.superseded_by if facts and facts.superseded_by and meta.get("status") == "superseded" else None
    successor = successor or (resolve(doc.get("superseded_by")) if doc.get("superseded_by") else None)
    successor = successor or (doc.get("superseded_by") if doc.get("superseded_by") in index.doc_row else None)
    repeal = None
    if facts and facts.repealed_by:
        by = index.versions.get(facts.repealed_by)
        repeal = {"doc_id": facts.repealed_by, "title": by.title if by else facts.repealed_by,
                  "from": facts.repealed_from, "applies": meta.get("status") == "repealed"}
    versions = [{"doc_id": f.doc_id, "title": f.title, "version": f.version, "valid_from": f.valid_from,
                 "valid_until": index.versions.valid_until(f.doc_id), "previous": f.previous,
                 "validity": searcher.validity(index.documents[index.doc_row[f.doc_id]], as_of),
                 "current": f.doc_id == doc_id}
                for f in index.versions.group(doc_id) if f.doc_id in index.doc_row]
    return render_template("doc.html", doc=doc, meta={k: v for k, v in meta.items() if k not in _DERIVED_KEYS},
                           sections=sections, outline=outline,
                           hl=request.args.get("hl", ""), level_labels=LEVEL_LABELS, successor=successor,
                           extra_labels=EXTRA_META_LABELS, versions=versions, repeal=repeal, as_of=as_of,
                           validity=searcher.validity(doc, as_of))


@bp.get("/doc/<doc_id>/changes")
def changes(doc_id: str):
    """What changed in this version against the previous one (or ?against=<doc_id>), article by article."""
    if not _DOC_ID_RE.match(doc_id):
        abort(404)
    index = get_index()
    pair = version_pair(index, doc_id, request.args.get("against", ""))
    if isinstance(pair, str):
        return render_template("error.html", title="没有可比较的版本", message=pair), 404
    old, new = pair
    report = changes_to_json(old, new, compare_versions(old, new))
    return render_template("changes.html", report=report, old=old, new=new)


_SORT_KEYS = {
    "published": lambda d: (d.get("published") or "0000", d.title),
    "title": lambda d: d.title,
    "level": lambda d: (["national", "provincial", "municipal", "county"].index(d.get("level"))
                        if d.get("level") in LEVEL_LABELS else 9, d.title),
    "issuer": lambda d: (d.get("issuer"), d.title),
}


@bp.get("/docs")
def documents():
    """All documents, sortable and filtered like the search."""
    searcher = get_searcher()
    mask = searcher.doc_mask(filters_from_args(request.args))
    docs = [d for i, d in enumerate(searcher.index.documents) if mask is None or mask[i]]
    sort = request.args.get("sort", "published")
    if sort not in _SORT_KEYS:
        sort = "published"
    descending = request.args.get("order", "desc" if sort == "published" else "asc") == "desc"
    docs.sort(key=_SORT_KEYS[sort], reverse=descending)
    request_date()  # a malformed as_of is refused before the page is drawn
    return render_template("docs.html", docs=docs, sort=sort, descending=descending, args=request.args,
                           total=len(searcher.index.documents), level_labels=LEVEL_LABELS,
                           versions=searcher.index.versions)


def missing_references(index: KnowledgeIndex) -> list[dict]:
    """Return titles cited in the knowledge base but not in it, with the clauses that cite them."""
    def compute() -> list[dict]:
        resolve = resolver_for(index).resolve
        titles = {d.doc_id: d.title for d in index.documents}
        found: dict[str, dict] = {}
        for clause in index.iter_clauses():
            for ref in find_references(clause.text):
                if resolve(ref.title):
                    continue
                entry = found.setdefault(ref.title, {"title": ref.title, "citations": []})
                key = (clause.doc_id, clause.clause_id)
                if key not in {(c["doc_id"], c["clause_id"]) for c in entry["citations"]}:
                    entry["citations"].append({"doc_id": clause.doc_id, "doc_title": titles.get(clause.doc_id, ""),
                                               "clause_id": clause.clause_id, "path": list(clause.path)})
        return sorted(found.values(), key=lambda e: (-len(e["citations"]), e["title"]))

    return _cached(index, "missing_refs", compute)


ABOUT_PAGE = Path(__file__).resolve().parent / "content" / "about.md"


@functools.lru_cache(maxsize=1)
def about_html() -> Markup:
    """Return the about page: the project's own Markdown (web/content/about.md) rendered, then sanitised."""
    html = markdown.markdown(ABOUT_PAGE.read_text(encoding="utf-8"), extensions=["sane_lists"])
    return Markup(nh3.clean(html, tags={"h1", "h2", "h3", "p", "ul", "ol", "li", "strong", "em", "a", "code"},
                            attributes={"a": {"href"}}, url_schemes={"http", "https"}))


@bp.get("/about")
def about():
    """What the knowledge base holds, how to use it, how validity is judged (the project's own text, not policy)."""
    return render_template("about.html", body=about_html())


@bp.get("/references")
def references():
    """Documents cited by clauses but not yet in the knowledge base, so administrators know what to add."""
    index = get_index()
    repealed = {title_key(r.title): r for r in index.versions.repeals if not r.target}
    missing = [dict(m, repealed=repealed.get(title_key(m["title"]))) for m in missing_references(index)]
    cited = {title_key(m["title"]) for m in missing}
    uncited = [r for key, r in repealed.items() if key not in cited]
    return render_template("references.html", missing=missing, repealed=uncited)
