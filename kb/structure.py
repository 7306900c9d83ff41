"""Clause tree of a document: 第X编/章/节/条, 一、（一）1. 1、（1）①, Markdown `#`, lead sentences.

Headings are recognised only at the start of a paragraph (a line), so a reference
inside a sentence ("按照第三条规定") is never a heading. Nesting follows a fixed
rank per numbering style, which copes with documents that mix styles or number
their first section "1、" and the next "二、".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kb.text import chinese_number  # noqa: F401  (also read from here)
from kb.types import Clause, Document

STRUCTURE_VERSION = "6"

_CN = "[一二三四五六七八九十百千零〇两]+"
_AR = "[0-9０-９]+"
_SP = "[ \t\u3000]"

# (kind, rank, pattern). Lower rank = higher in the tree. Order matters: first match wins.
_HEADING_PATTERNS: list[tuple[str, int, re.Pattern[str]]] = [
    ("part", 10, re.compile(rf"^第(?:{_CN}|{_AR})编(?:{_SP}+|$)")),
    ("chapter", 11, re.compile(rf"^第(?:{_CN}|{_AR})章(?:{_SP}+|$)")),
    ("section", 12, re.compile(rf"^第(?:{_CN}|{_AR})节(?:{_SP}+|$)")),
    ("article", 13, re.compile(rf"^第(?:{_CN}|{_AR})条(?:{_SP}+|$)")),
    ("cn_dun", 20, re.compile(rf"^{_CN}{_SP}*[、．.]")),
    ("paren_cn", 21, re.compile(rf"^[（(]{_SP}*{_CN}{_SP}*[）)]")),
    ("arabic", 22, re.compile(rf"^{_AR}{_SP}*(?:、|[.．](?![0-9０-９]))")),
    ("paren_arabic", 23, re.compile(rf"^[（(]{_SP}*{_AR}{_SP}*[）)]")),
    ("circled", 24, re.compile(r"^[\u2460-\u2473\u2776-\u277f]")),
]
_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
ARTICLE_RANK = 13
LEAD_RANK = 90  # lead-sentence paragraphs are leaves under the current heading
_LEAD_PREFIX = re.compile(r"^(?:——|—|-)?")
_SENTENCE_END = "。！？!?"
_MAX_LEAD_CHARS = 24
_MAX_HEADING_LABEL = 40


@dataclass
class _Para:
    start: int
    end: int  # end of the line's text (exclusive), before the newline
    text: str
    kind: str = "paragraph"
    rank: int = 0
    label: str = ""  # heading words used in the clause path
    title_only: bool = False  # heading line carries no sentence of body text


@dataclass
class _Node:
    para: _Para | None
    parent: "_Node | None"
    children: list["_Node"] = field(default_factory=list)
    clause_id: str = ""
    path: tuple[str, ...] = ()
    body: list[_Para] = field(default_factory=list)


def _split_paragraphs(body: str) -> list[_Para]:
    """Return the non-blank lines of `body` with their offsets."""
    paras: list[_Para] = []
    pos = 0
    in_table = False
    for line in body.split("\n"):
        stripped = line.strip()
        if stripped:
            lead = len(line) - len(line.lstrip())
            start = pos + lead
            if in_table and stripped.startswith("|"):  # a Markdown table stays one paragraph: it renders as a table
                last = paras[-1]
                paras[-1] = _Para(start=last.start, end=start + len(stripped), text=body[last.start:start + len(stripped)])
            else:
                paras.append(_Para(start=start, end=start + len(stripped), text=stripped))
        in_table = stripped.startswith("|")
        pos += len(line) + 1
    return paras


def _heading_label(text: str) -> tuple[str, bool]:
    """Return (label for the path, whether the line is a heading with no body text)."""
    if len(text) <= _MAX_HEADING_LABEL and not any(p in text[:-1] for p in "。；;"):
        return text.rstrip("。；;：:"), True
    cut = len(text)
    for i, ch in enumerate(text):
        if ch in "。；;：:" and i > 1:
            cut = i
            break
    label = text[:cut]
    if len(label) > _MAX_HEADING_LABEL:
        label = label[:_MAX_HEADING_LABEL] + "…"
    return label, False


def classify_line(text: str) -> tuple[str, int] | None:
    """Return (kind, rank) when a line opens a numbered or Markdown heading, else None."""
    md = _MD_HEADING.match(text)
    if md:
        # "# 第一章 总则" ranks as a chapter, so it nests with plain "第二章" lines of the same document
        inner = classify_line(md.group(2).strip())
        return inner if inner is not None else ("md", len(md.group(1)))
    for kind, rank, pattern in _HEADING_PATTERNS:
        if pattern.match(text):
            if kind == "arabic" and _looks_like_quantity(text):
                return None
            return kind, rank
    return None


def _looks_like_quantity(text: str) -> bool:
    """'2.5万亿元…' or '1、2月份' style lines start with digits but are not headings."""
    return bool(re.match(rf"^{_AR}[、.．]{_AR}", text))


def lead_sentence(text: str) -> str | None:
    """Return the short lead sentence that titles a paragraph ("优质企业梯度培育工程。…"), if any."""
    body = _LEAD_PREFIX.sub("", text, count=1)
    for i, ch in enumerate(body[: _MAX_LEAD_CHARS + 1]):
        if ch in _SENTENCE_END:
            lead = body[:i]
            rest = body[i + 1:].strip()
            if len(lead) >= 2 and rest and not any(p in lead for p in "，,；;：:“”\"《"):
                return lead
            return None
    return None


def _classify(paras: list[_Para]) -> None:
    for p in paras:
        md = _MD_HEADING.match(p.text)
        found = classify_line(p.text)
        if found is None:
            continue
        p.kind, p.rank = found
        if md:
            p.label, p.title_only = md.group(2).strip(), True
        else:
            p.label, p.title_only = _heading_label(p.text)
    # Lead sentences title paragraphs only where a heading's stretch has several
    # paragraphs; a single paragraph under a heading is that heading's body.
    i = 0
    while i < len(paras):
        j = i
        while j < len(paras) and paras[j].kind == "paragraph":
            j += 1
        if j - i >= 2:
            for p in paras[i:j]:
                lead = lead_sentence(p.text)
                if lead:
                    p.kind, p.rank, p.label, p.title_only = "lead", LEAD_RANK, lead, False
        i = j + 1


def parse_clauses(doc: Document) -> list[Clause]:
    """Return the document's clauses in reading order; their spans partition `doc.body`."""
    paras = _split_paragraphs(doc.body)
    _classify(paras)
    root = _Node(para=None, parent=None)
    stack: list[tuple[int, _Node]] = [(-1, root)]
    current = root
    for p in paras:
        if p.kind == "paragraph" or (p.rank > ARTICLE_RANK and any(
                n.para is not None and n.para.kind == "article" for _, n in stack)):
            # an article (第X条) keeps its paragraphs and （一）… items: it is what a law cites
            current.body.append(p)
            continue
        while stack[-1][0] >= p.rank:
            stack.pop()
        parent = stack[-1][1]
        node = _Node(para=p, parent=parent)
        parent.children.append(node)
        if p.kind == "lead":
            # a lead paragraph is a leaf: following plain paragraphs go back to its parent
            current = parent
        else:
            stack.append((p.rank, node))
            current = node
    return _emit(doc, root)


def _emit(doc: Document, root: _Node) -> list[Clause]:
    spans: list[tuple[int, str, tuple[str, ...], str, str, int]] = []

    def visit(node: _Node, prefix: str, path: tuple[str, ...], depth: int) -> None:
        body_paras = sorted(node.body, key=lambda q: q.start)
        if node.para is not None:
            own_path = path + (node.para.label,)
            spans.append((node.para.start, node.clause_id, own_path, node.para.label, node.para.kind, depth))
            # a title-only heading keeps its first paragraph when nothing comes between
            first_child_start = node.children[0].para.start if node.children else None
            extra = body_paras
            if node.para.title_only and body_paras and (
                first_child_start is None or body_paras[0].start < first_child_start
            ):
                extra = body_paras[1:]
            if node.para.kind == "article":
                extra = []  # an article's paragraphs and items are the article's text, cited as one
        else:
            own_path = path
            extra = body_paras
        for k, para in enumerate(extra, start=1):
            pid = f"{node.clause_id}-p{k}" if node.clause_id else f"p{k}"
            spans.append((para.start, pid, own_path, "", "paragraph", depth))
        for n, child in enumerate(node.children, start=1):
            child.clause_id = f"{node.clause_id}-{n}" if node.clause_id else f"c{n}"
            visit(child, child.clause_id, own_path, depth + 1)

    visit(root, "", (), 0)
    spans.sort(key=lambda s: s[0])
    body = doc.body
    clauses: list[Clause] = []
    for i, (start, cid, path, heading, kind, depth) in enumerate(spans):
        begin = 0 if i == 0 else start
        end = spans[i + 1][0] if i + 1 < len(spans) else len(body)
        clauses.append(Clause(
            doc_id=doc.doc_id, clause_id=cid, path=path, heading=heading, kind=kind,
            depth=depth, start=begin, end=end, text=body[begin:end].strip(),
        ))
    if not clauses and body:
        clauses.append(Clause(doc.doc_id, "p1", (), "", "paragraph", 0, 0, len(body), body.strip()))
    return clauses




_MARKER_RES = {
    "part": re.compile(rf"^第({_CN}|{_AR})编"),
    "chapter": re.compile(rf"^第({_CN}|{_AR})章"),
    "section": re.compile(rf"^第({_CN}|{_AR})节"),
    "article": re.compile(rf"^第({_CN}|{_AR})条"),
    "cn_dun": re.compile(rf"^({_CN}){_SP}*[、．.]"),
    "paren_cn": re.compile(rf"^[（(]{_SP}*({_CN}){_SP}*[）)]"),
    "arabic": re.compile(rf"^({_AR}){_SP}*[、.．]"),
    "paren_arabic": re.compile(rf"^[（(]{_SP}*({_AR}){_SP}*[）)]"),
}


def clause_marker(clause: Clause) -> str:
    """Return the clause's numbering as 'kind:number' ("article:24", "paren_cn:3"), or '' if unnumbered.

    A top-level "1、" heading in a document numbered 一、二、 elsewhere is still 'arabic:1';
    lookups treat cn_dun and top-level arabic numbers as the same "part".
    """
    pattern = _MARKER_RES.get(clause.kind)
    if pattern is None or not clause.heading:
        if clause.kind == "circled" and clause.heading:
            return f"circled:{ord(clause.heading[0]) - 0x245F}"
        return ""
    m = pattern.match(clause.heading)
    if not m:
        return ""
    value = chinese_number(m.group(1))
    return f"{clause.kind}:{value}" if value is not None else ""
