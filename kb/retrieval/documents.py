"""Document-level stage: metadata filters, and the priors that lift documents a question points at.

Priors: the years, types, 《titles》, levels and places a question names, and the document
channel: when a subject word of the question (or one of its expansions) is named by the
titles of only a few documents (所得税, 增值税, 专利, 款项支付 …), those documents are what
the question is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from kb.domain import region_terms
from kb.retrieval.fusion import Tuning
from kb.segment import normalize
from kb.text import leading_year


@dataclass(frozen=True)
class Filters:
    """Metadata filters applied inside retrieval (a document outside them is never scored)."""

    level: tuple[str, ...] = ()
    region: str = ""
    issuer: str = ""
    doc_type: str = ""
    status: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    doc_ids: tuple[str, ...] = ()
    active_only: bool = False  # hide expired, superseded and repealed documents

    def is_empty(self) -> bool:
        """Return True when no filter is set."""
        return self == Filters()


def doc_year(doc) -> int | None:
    """Return the year a document was published, or None."""
    return leading_year(doc.get("published"))


class DocumentStage:
    """Per-document arrays of one index: years, regions, normalised titles."""

    def __init__(self, documents) -> None:
        self.documents = documents
        self.years = np.array([doc_year(d) or 0 for d in documents], dtype=np.int32)
        self.doc_types = tuple(sorted({d.get("doc_type") for d in documents if d.get("doc_type")}, key=len, reverse=True))
        self.regions = [region_terms(d.get("region")) for d in documents]
        self.region_names = tuple(sorted({r for rs in self.regions for r in rs}))
        self.titles = [normalize(d.title) for d in documents]
        self._named_by: dict[str, tuple[int, ...]] = {}

    def mask(self, filters: Filters, validity: Callable) -> np.ndarray | None:
        """Return a boolean mask over documents, or None when no filter is set."""
        if filters.is_empty():
            return None
        mask = np.ones(len(self.documents), dtype=bool)
        for i, d in enumerate(self.documents):
            ok = True
            if filters.level and d.get("level") not in filters.level:
                ok = False
            if filters.status and d.get("status") not in filters.status:
                ok = False
            if filters.region and filters.region not in d.get("region"):
                ok = False
            if filters.issuer and filters.issuer not in d.get("issuer"):
                ok = False
            if filters.doc_type and filters.doc_type != d.get("doc_type"):
                ok = False
            if filters.doc_ids and d.doc_id not in filters.doc_ids:
                ok = False
            if filters.active_only and validity(d).code in ("expired", "superseded", "repealed"):
                ok = False
            year = int(self.years[i])
            if filters.year_from is not None and (not year or year < filters.year_from):
                ok = False
            if filters.year_to is not None and (not year or year > filters.year_to):
                ok = False
            mask[i] = ok
        return mask

    def named_by(self, word: str) -> tuple[int, ...]:
        """Return the rows of the documents whose title contains the word."""
        got = self._named_by.get(word)
        if got is None:
            got = tuple(i for i, t in enumerate(self.titles) if word in t)
            if len(self._named_by) < 20000:
                self._named_by[word] = got
        return got

    def subject_scores(self, q, t: Tuning) -> np.ndarray:
        """Return the document channel: per document, the weight of the strongest subject its title names.

        Subjects are the question's content words (weight 1) and its expansion terms (their
        weight); a subject counts only when at most `t.doc_channel_max_docs` titles name it.
        """
        out = np.zeros(len(self.documents), dtype=np.float32)
        subjects: dict[str, float] = {c.word: 1.0 for c in q.content}
        for e in q.expansions:
            term = normalize(e.term)
            if len(term) >= 2 and subjects.get(term, 0.0) < e.weight:
                subjects[term] = e.weight
        for word, weight in subjects.items():
            rows = self.named_by(word)
            if 0 < len(rows) <= t.doc_channel_max_docs:
                idx = np.array(rows, dtype=np.int64)
                out[idx] = np.maximum(out[idx], weight)
        return out

    def coverage_scores(self, q, channel, chunk_doc: np.ndarray) -> np.ndarray:
        """Return per document the document-level idf share of the question's content words it contains.

        A word counts for a document when one of its chunks has the word, a search-mode part
        or an expansion of it; words in few documents weigh more, so the laws a question's
        rare words concentrate in (验收 + 付款 -> the payment regulation) come first.
        """
        n = len(self.documents)
        out = np.zeros(n, dtype=np.float32)
        total = 0.0
        for c in q.content:
            has = np.zeros(n, dtype=bool)
            for v in (c.word,) + c.parts + c.expansions:
                rows = channel.rows_with(v)
                if rows.size:
                    has[chunk_doc[rows]] = True
            df = int(has.sum())
            if not df:
                continue
            idf = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
            total += idf
            out[has] += idf
        return out / total if total > 0 else out

    def prior(self, q, t: Tuning, channel=None, chunk_doc: np.ndarray | None = None) -> np.ndarray:
        """Return a multiplicative prior per document from what the question names and is about."""
        prior = np.ones(len(self.documents), dtype=np.float32)
        if t.doc_channel_weight > 0 and q.content:
            prior *= 1 + t.doc_channel_weight * self.subject_scores(q, t)
        if t.doc_coverage_weight > 0 and q.content and channel is not None and len(self.documents) > 1:
            prior *= 1 + t.doc_coverage_weight * self.coverage_scores(q, channel, chunk_doc) ** 2
        if not (q.years or q.titles or q.levels or q.regions):
            return prior
        titles = [normalize(x) for x in q.titles]
        for i, d in enumerate(self.documents):
            year_hit = bool(q.years) and int(self.years[i]) in q.years
            type_hit = d.get("doc_type") in q.doc_types
            title = self.titles[i]
            if year_hit:
                prior[i] *= 1 + t.year_boost
                if type_hit:
                    prior[i] *= 1 + t.named_boost
            if titles and any(x in title or (len(title) >= 4 and title in x) for x in titles):
                prior[i] *= 1 + t.named_boost
            if d.get("level") in q.levels or set(self.regions[i]) & set(q.regions):
                prior[i] *= 1 + t.level_boost
        return prior
