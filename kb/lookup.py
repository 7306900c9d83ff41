"""Clause references in a query, for exact lookup without embeddings.

Understands quoted phrases ("…" “…” 「…」), clause numbers anywhere in the query
(第二十四条 / 第24条, 第三章, 第二部分, （三） / (三), 三、, （1）, ①), and a document
named by 《title》 (an ellipsis inside the title matches any text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.segment import compact
from kb.text import chinese_number

_NUM = "[一二三四五六七八九十百千零〇两]+|[0-9０-９]+"
_QUOTE_RE = re.compile(r"[\"“”「」『』](.+?)[\"“”「」『』]")
_TITLE_RE = re.compile(r"《([^《》]{1,120})》")
_REF_RES: list[tuple[str, re.Pattern[str]]] = [
    ("article", re.compile(rf"第\s*({_NUM})\s*条")),
    ("chapter", re.compile(rf"第\s*({_NUM})\s*章")),
    ("section", re.compile(rf"第\s*({_NUM})\s*节")),
    ("part", re.compile(rf"第\s*({_NUM})\s*编")),
    ("cn_dun", re.compile(rf"第\s*({_NUM})\s*部分")),
    ("paren_cn", re.compile(r"[（(]\s*([一二三四五六七八九十百]+)\s*[）)]")),
    ("paren_arabic", re.compile(r"[（(]\s*([0-9０-９]+)\s*[）)]")),
    ("cn_dun", re.compile(r"(?:^|(?<=[》\s]))([一二三四五六七八九十]+)、")),
    ("circled", re.compile(r"([\u2460-\u2473])")),
]


@dataclass(frozen=True)
class ClauseQuery:
    """What an official's query names: phrases to match exactly, clause numbers, a document title."""

    phrases: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    title: str = ""
    rest: str = ""

    @property
    def is_reference(self) -> bool:
        """True when the query names a clause number or an exact phrase."""
        return bool(self.phrases or self.markers)


def parse_clause_query(query: str) -> ClauseQuery:
    """Return the phrases, clause markers (in order) and title a query names."""
    phrases = tuple(p.strip() for p in _QUOTE_RE.findall(query) if p.strip())
    text = _QUOTE_RE.sub(" ", query)
    titles = _TITLE_RE.findall(text)
    text = _TITLE_RE.sub(" ", text)
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _REF_RES:
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            raw = m.group(1)
            value = ord(raw) - 0x245F if kind == "circled" else chinese_number(raw)
            if value is None or value <= 0:
                continue
            taken.append((m.start(), m.end()))
            found.append((m.start(), f"{kind}:{value}"))
    found.sort()
    rest = text
    for a, b in sorted(taken, reverse=True):
        rest = rest[:a] + " " + rest[b:]
    return ClauseQuery(phrases=phrases, markers=tuple(m for _, m in found), title=titles[0].strip() if titles else "",
                       rest=" ".join(rest.split()))


def title_matches(hint: str, title: str) -> bool:
    """True when a title named in a query ("江苏省…行动计划") fits a document title."""
    pieces = [compact(p) for p in re.split(r"…+|\.{3,}|——", hint) if compact(p)]
    target = compact(title)
    if not pieces:
        return False
    pos = 0
    for piece in pieces:
        found = target.find(piece, pos)
        if found < 0:
            return len(pieces) == 1 and len(target) >= 4 and target in piece
        pos = found + len(piece)
    return True
