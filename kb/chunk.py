"""Clause-aware chunks: a short clause is one chunk, a long one is split at sentence ends.

Chunk spans partition each clause's span, so every character of a document is in
exactly one chunk, in order. What gets indexed carries the document title and
the clause's heading path.
"""

from __future__ import annotations

import hashlib
import re

from kb.text import nfkc
from kb.types import Chunk, Clause, Document

CHUNKER_VERSION = "3"
MAX_CHUNK_CHARS = 320
_SENTENCE_END_RE = re.compile(r"[。！？!?；;]+[”’」』）)]*|\n+")


def chunk_id_for(doc_id: str, clause_id: str, start: int, text: str) -> int:
    """Return a stable positive 63-bit id for a chunk (same content, same id across builds)."""
    digest = hashlib.blake2b(f"{doc_id}\x1f{clause_id}\x1f{start}\x1f{text}".encode("utf-8"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") & 0x7FFF_FFFF_FFFF_FFFF


def _split_points(text: str, max_chars: int) -> list[int]:
    """Return cut offsets within `text`: pieces end at sentence ends and stay <= max_chars where possible."""
    ends = [m.end() for m in _SENTENCE_END_RE.finditer(text)] + [len(text)]
    cuts: list[int] = []
    last = prev = 0
    for e in ends:
        if e - last > max_chars and prev > last:
            cuts.append(prev)
            last = prev
        while e - last > 2 * max_chars:  # a run with no sentence end is cut hard, never lost
            last += max_chars
            cuts.append(last)
        prev = e
    return sorted({c for c in cuts if 0 < c < len(text)})


def _compact(text: str) -> str:
    return "".join(nfkc(text).split())


def is_title_line(doc: Document, clause: Clause) -> bool:
    """True for a top-level paragraph that only repeats (part of) the document title: not worth retrieving."""
    text = _compact(clause.text)
    return clause.kind == "paragraph" and not clause.path and len(text) >= 2 and text in _compact(doc.title)


def index_text_for(doc: Document, clause: Clause, piece: str) -> str:
    """Return what is indexed for a chunk: title, heading path, then the text itself ('' for a title line)."""
    if is_title_line(doc, clause):
        return ""
    path = " ".join(p for p in clause.path if p and p not in piece)
    return f"{doc.title}\n{path}\n{piece}".strip()


def chunk_document(doc: Document, clauses: list[Clause], max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """Return the document's chunks in order; their spans partition the body."""
    chunks: list[Chunk] = []
    for clause in clauses:
        span = doc.body[clause.start:clause.end]
        bounds = [0] + _split_points(span, max_chars) + [len(span)]
        for a, b in zip(bounds, bounds[1:]):
            if b <= a:
                continue
            piece = span[a:b]
            start = clause.start + a
            chunks.append(Chunk(
                chunk_id=chunk_id_for(doc.doc_id, clause.clause_id, start, piece),
                doc_id=doc.doc_id,
                clause_id=clause.clause_id,
                ordinal=len(chunks),
                start=start,
                end=clause.start + b,
                text=piece,
                index_text=index_text_for(doc, clause, piece.strip()),
            ))
    return chunks
