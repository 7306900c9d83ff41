"""Exact lookup: the clauses a question names by quoted phrase, clause number or heading, best first."""

from __future__ import annotations

import re

import numpy as np

from kb.lookup import title_matches
from kb.segment import compact

_NUMBER_PREFIX = re.compile(r"^(?:第[^条章节编]{1,6}[条章节编]|[一二三四五六七八九十]+[、.．]|[（(][^）)]{1,4}[）)]|[0-9]+[、.．])\s*")


def strip_number(heading: str) -> str:
    """Return a heading without its leading clause number (第三条, 三、, （一）, 1.)."""
    return _NUMBER_PREFIX.sub("", heading.strip())


def exact_rows(index, q, mask: np.ndarray | None, rank_of: dict[int, int]) -> list[int]:
    """Return clause rows the analysed question `q` names exactly (phrase, clause number, heading), best first.

    `rank_of` maps clause rows to their rank in the fused ranking (unranked rows go last, in order).
    """
    cq = q.clause

    def allowed(row: int) -> bool:
        return mask is None or bool(mask[index.clause_doc[row]])

    def order(rows: list[int], title: str = "") -> list[int]:
        rows = [r for r in dict.fromkeys(rows) if allowed(r)]
        if title:
            named = [r for r in rows if title_matches(title, index.documents[index.clause_doc[r]].title)]
            rows = named or rows
        return sorted(rows, key=lambda r: (rank_of.get(r, len(rank_of)), r))

    if cq.phrases:
        found: set[int] | None = None
        for phrase in cq.phrases:
            rows = set(index.rows_with_phrase(phrase, limit=100000))
            found = rows if found is None else found & rows
        return order(list(found or ()), cq.title)
    if cq.markers:
        return order(index.rows_with_marker_path(list(cq.markers)), cq.title)
    words = q.heading_text
    matches = index.rows_with_heading(words) if len(compact(words)) >= 4 else []
    equal = [row for row, is_equal in matches if is_equal]
    if not equal:
        equal = [row for row, _ in matches if compact(strip_number(index.clause_at(row).heading)) == compact(words)]
    return order(equal, cq.title)
