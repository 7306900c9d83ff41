"""Cross-references: document titles cited in 《》 inside clause text, resolved against the knowledge base."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.segment import compact
from kb.types import Document

_REF_RE = re.compile(r"《([^《》\n]{2,120})》")
MIN_TITLE_CHARS = 6  # shorter ones are short forms of the citing document itself (《行动计划》, 《办法》)


@dataclass(frozen=True)
class Reference:
    """A title cited in a clause, with where it stands in the clause text."""

    title: str
    start: int  # offset of 《 in the text
    end: int  # offset after 》


def find_references(text: str) -> list[Reference]:
    """Return the 《titles》 a text cites that are long enough to name a document."""
    return [Reference(m.group(1).strip(), m.start(), m.end()) for m in _REF_RE.finditer(text)
            if len(compact(m.group(1))) >= MIN_TITLE_CHARS]


def _key(title: str) -> str:
    return compact(title).strip("《》")


class ReferenceResolver:
    """Maps cited titles to doc_ids of documents in the knowledge base."""

    def __init__(self, documents: list[Document]) -> None:
        self._by_key: dict[str, str] = {}
        for doc in documents:
            self._by_key.setdefault(_key(doc.title), doc.doc_id)

    def resolve(self, title: str) -> str | None:
        """Return the doc_id of the cited document when it is in the knowledge base."""
        return self._by_key.get(_key(title))
