"""Typed records that cross module boundaries: documents, clauses, chunks, hits.

All are frozen dataclasses; metadata is kept as a tuple of (key, value) pairs so
records stay hashable, with `meta_dict()` for convenient reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kb.domain import LEVELS, STATUSES  # noqa: F401  (the vocabulary lives in kb/domain.py)

# Front-matter keys DESIGN.md names; any other key is kept and shown as-is.
KNOWN_META_KEYS = (
    "title", "issuer", "doc_no", "level", "region", "doc_type", "published",
    "valid_from", "valid_until", "status", "superseded_by", "source", "license",
)


@dataclass(frozen=True)
class Document:
    """One corpus document: its metadata and body text (front matter removed)."""

    doc_id: str
    title: str
    meta: tuple[tuple[str, str], ...]
    body: str
    content_hash: str
    source_path: str = ""

    def meta_dict(self) -> dict[str, str]:
        """Return the front matter as an ordered dict (title included)."""
        return dict(self.meta)

    def get(self, key: str, default: str = "") -> str:
        """Return one front-matter value, or `default`."""
        for k, v in self.meta:
            if k == key:
                return v
        return default


@dataclass(frozen=True)
class Clause:
    """A node of a document's clause tree.

    `start`/`end` are character offsets into `Document.body`; the clauses of a
    document partition the body in order. `heading` is the heading line (empty
    for a plain paragraph), `path` the headings from the root down to and
    including this clause's own heading.
    """

    doc_id: str
    clause_id: str
    path: tuple[str, ...]
    heading: str
    kind: str  # e.g. "article", "cn_dun", "arabic", "lead", "paragraph", "md"
    depth: int
    start: int
    end: int
    text: str  # body[start:end] stripped of surrounding whitespace

    @property
    def title(self) -> str:
        """The clause's own heading words, or '' for a plain paragraph."""
        return self.heading


@dataclass(frozen=True)
class Chunk:
    """A retrieval unit: a clause, or a sentence-aligned piece of a long clause."""

    chunk_id: int
    doc_id: str
    clause_id: str
    ordinal: int  # position of the chunk within the document
    start: int
    end: int
    text: str  # body[start:end] exactly
    index_text: str  # what is indexed: title and heading path prepended
    context: str = ""  # an item's lead-in (the clause text before its first item), read with it; not stored


@dataclass(frozen=True)
class Hit:
    """One search result: a clause with its document and score."""

    rank: int
    score: float
    doc: Document
    clause: Clause
    channels: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    exact: bool = False
    also_in: tuple[tuple[Document, Clause], ...] = ()  # outdated versions of this clause with (nearly) the same text
    situation: str = ""  # the everyday situation that matched this clause (kb/retrieval/situations.py): never policy text
