"""Clause-aware chunks: a short clause is one chunk, a long one is split at sentence ends, and a
clause that lists items (（一）…（二）…, 一是…二是…) is split at its items.

Chunk spans partition each clause's span, so every character of a document is in
exactly one chunk, in order. What gets indexed carries the document title and
the clause's heading path; an item also carries the clause's lead-in (对下列企业给予税收优惠：),
so "（一）吸纳失业人员的企业" is found as what it is: one case of the rule.
"""

from __future__ import annotations

import hashlib
import re

from kb.text import chinese_number, nfkc
from kb.types import Chunk, Clause, Document

CHUNKER_VERSION = "4"
MAX_CHUNK_CHARS = 320
LEAD_CHARS = 80  # the end of an item's lead-in read with it (the words just before the list: 对下列…：)
# an item marker where a list can start: at the clause start, a line start or after ：；。 (not 第（一）项,
# a reference); numbered 一, 二, 三 … in order
_ITEM_RE = re.compile(r"(?:^|(?<=[\n：:；;。]))[ \t\u3000]*(?:[（(]([一二三四五六七八九十]{1,3})[）)]|([一二三四五六七八九十]{1,3})是)")
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


def item_starts(text: str) -> list[int]:
    """Return where the items of a list in `text` start (（一）（二）… or 一是 二是 …, one kind, numbered 1, 2,
    3 … in order), or [] when the text does not list at least two."""
    starts: dict[int, list[int]] = {1: [], 2: []}  # regex group of the marker kind -> its items
    for m in _ITEM_RE.finditer(text):
        kind = 1 if m.group(1) else 2
        if chinese_number(m.group(kind)) == len(starts[kind]) + 1:
            starts[kind].append(m.end() - len(m.group(0).lstrip(" \t\u3000")))
    best = max(starts[1], starts[2], key=len)  # the parenthesised kind on a tie
    return best if len(best) >= 2 else []


def _compact(text: str) -> str:
    return "".join(nfkc(text).split())


def is_title_line(doc: Document, clause: Clause) -> bool:
    """True for a top-level paragraph that only repeats (part of) the document title: not worth retrieving."""
    text = _compact(clause.text)
    return clause.kind == "paragraph" and not clause.path and len(text) >= 2 and text in _compact(doc.title)


def index_text_for(doc: Document, clause: Clause, piece: str, context: str = "") -> str:
    """Return what is indexed for a chunk: title, heading path, an item's lead-in, then the text itself
    ('' for a title line)."""
    if is_title_line(doc, clause):
        return ""
    path = " ".join(p for p in clause.path if p and p not in piece and p not in context)
    lead_in = f"{context}\n" if context else ""
    return f"{doc.title}\n{path}\n{lead_in}{piece}".strip()


def chunk_document(doc: Document, clauses: list[Clause], max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """Return the document's chunks in order; their spans partition the body."""
    chunks: list[Chunk] = []
    for clause in clauses:
        span = doc.body[clause.start:clause.end]
        items = item_starts(span)
        parts = list(zip([0] + items, items + [len(span)])) if items else [(0, len(span))]
        bounds = sorted({0, len(span), *items, *(a + c for a, b in parts for c in _split_points(span[a:b], max_chars))})
        lead = span[:items[0]].strip()[-LEAD_CHARS:] if items and LEAD_CHARS > 0 else ""
        for a, b in zip(bounds, bounds[1:]):
            if b <= a:
                continue
            piece = span[a:b]
            start = clause.start + a
            context = lead if items and a >= items[0] else ""
            chunks.append(Chunk(
                chunk_id=chunk_id_for(doc.doc_id, clause.clause_id, start, piece),
                doc_id=doc.doc_id,
                clause_id=clause.clause_id,
                ordinal=len(chunks),
                start=start,
                end=clause.start + b,
                text=piece,
                index_text=index_text_for(doc, clause, piece.strip(), context),
                context=context,
            ))
    return chunks
