"""Hybrid clause search: two lexical channels (jieba words, character bigrams) and a dense channel.

Lexical scores are normalised per query and summed with tuned weights; documents a
question names by year get a prior; the dense channel adds only where it is
confident (cosine above a threshold), so it cannot drown a good lexical match.
Results are whole clauses, best chunk per clause.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np

from kb.ann import configure_search
from kb.cite import Validity, validity_of
from kb.embed import Encoder
from kb.index import KnowledgeIndex
from kb.lookup import ClauseQuery, parse_clause_query, title_matches
from kb.query import LEVEL_CUES, Understanding, region_terms, understand
from kb.segment import Segmenter, bigrams, compact, normalize
from kb.types import Hit
from kb.versions import prefer_in_force

MAX_QUERY_CHARS = 500
MAX_K = 100
VERSION_SLACK = 5  # extra candidates, so the version in force can move up past an outdated one


class QueryError(ValueError):
    """The query or its options cannot be searched; the message says why."""


@dataclass(frozen=True)
class Tuning:
    """Fusion weights, tuned on ../shared/eval/dev.jsonl with scripts/eval.py --sweep."""

    word_weight: float = 0.6
    bigram_weight: float = 0.4
    expansion_weight: float = 0.4
    year_boost: float = 0.35
    named_boost: float = 1.0  # a document the question names (type + year, or 《title》)
    level_boost: float = 0.3  # documents of the level or region the question points at
    dense_weight: float = 0.8
    dense_floor: float = 0.35  # cosine below this adds nothing
    dense_candidates: int = 200
    prf_docs: int = 5  # pseudo-relevance feedback (RM3-style): top chunks to read ...
    prf_terms: int = 0  # ... and terms to add (0 = off; the dev set showed no gain, see README)
    prf_weight: float = 0.3
    min_coverage: float = 0.34  # share of the query's IDF mass the best clause must match ...
    min_dense: float = 0.5  # ... unless the dense channel is at least this sure
    sure_coverage: float = 0.8  # lexical match this complete: skip the dense channel (set > 1 to always use it)


DEFAULT_TUNING = Tuning()


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


@dataclass(frozen=True)
class SearchOptions:
    """How to search: result count, channels, filters."""

    k: int = 5
    mode: str = "hybrid"  # hybrid | lexical | dense
    filters: Filters = field(default_factory=Filters)
    tuning: Tuning = DEFAULT_TUNING
    expand: bool = True  # thesaurus expansions on/off
    as_of: date | None = None  # the reference date validity is judged on (None: today)


@dataclass(frozen=True)
class SearchResult:
    """Hits for a query, with what the query was understood as."""

    query: str
    hits: tuple[Hit, ...]
    terms: tuple[str, ...]
    understanding: Understanding
    message: str = ""

    @property
    def years(self) -> tuple[int, ...]:
        """Years the question names."""
        return self.understanding.years


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def clean_query(query: str) -> str:
    """Return the query without control characters or lone surrogates; raise QueryError if unusable."""
    if not isinstance(query, str):
        raise QueryError("the query must be text")
    if len(query) > MAX_QUERY_CHARS * 4:
        raise QueryError(f"the query is too long ({len(query)} characters; at most {MAX_QUERY_CHARS})")
    text = _CONTROL_RE.sub(" ", query)
    text = " ".join(text.split())
    if not text:
        raise QueryError("the query is empty; type a question or the words of a clause")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is too long ({len(text)} characters; at most {MAX_QUERY_CHARS})")
    return text


def check_k(k) -> int:
    """Return k as an int in 1..MAX_K, or raise QueryError."""
    try:
        value = int(str(k).strip())
    except (TypeError, ValueError):
        raise QueryError(f"k must be a whole number from 1 to {MAX_K}, not {str(k)[:20]!r}") from None
    if not 1 <= value <= MAX_K:
        raise QueryError(f"k must be a whole number from 1 to {MAX_K}, not {value}")
    return value


def _idf(model, token_id: int) -> float:
    indptr = model.scores["indptr"]
    df = int(indptr[token_id + 1] - indptr[token_id])
    n = int(model.scores["num_docs"])
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def _weighted(user: list[str], extra: list[str], extra_weight: float) -> dict[str, float]:
    weights = {t: 1.0 for t in user}
    for t in extra:
        weights.setdefault(t, extra_weight)
    return weights


def _channel_scores(model, weights: dict[str, float]) -> tuple[np.ndarray, list[tuple[float, np.ndarray]]]:
    """Return weighted BM25 scores per chunk row and, per user token (weight 1), (idf, rows containing it)."""
    n = int(model.scores["num_docs"])
    scores = np.zeros(n, dtype=np.float32)
    data, indices, indptr = model.scores["data"], model.scores["indices"], model.scores["indptr"]
    postings: list[tuple[float, np.ndarray]] = []
    for tok, weight in weights.items():
        tid = model.vocab_dict.get(tok)
        if tid is None:
            if weight >= 1.0:
                postings.append((math.log(1 + n), np.empty(0, dtype=np.int64)))
            continue
        s, e = int(indptr[tid]), int(indptr[tid + 1])
        rows = indices[s:e]
        scores[rows] += weight * data[s:e]
        if weight >= 1.0:
            postings.append((_idf(model, tid), rows))
    return scores, postings


def _coverage(postings: list[tuple[float, np.ndarray]], row: int) -> float:
    total = sum(idf for idf, _ in postings)
    if total <= 0:
        return 0.0
    got = sum(idf for idf, rows in postings if rows.size and np.any(rows == row))
    return got / total


def _doc_year(doc) -> int | None:
    m = re.match(r"\s*((?:19|20)\d{2})", doc.get("published"))
    return int(m.group(1)) if m else None


class Searcher:
    """Answers queries against one loaded index."""

    def __init__(self, index: KnowledgeIndex, encoder: Encoder | None, segmenter: Segmenter) -> None:
        self.index = index
        self.encoder = encoder if index.faiss is not None else None
        self.segmenter = segmenter
        docs = index.documents
        self.doc_years = np.array([_doc_year(d) or 0 for d in docs], dtype=np.int32)
        self.doc_types = tuple(sorted({d.get("doc_type") for d in docs if d.get("doc_type")}, key=len, reverse=True))
        self.doc_regions = [region_terms(d.get("region")) for d in docs]
        self.region_names = tuple(sorted({r for rs in self.doc_regions for r in rs}))
        self._validity: dict[date, list[Validity]] = {}

    def validity(self, doc, as_of: date | None = None, *, text: str = "") -> Validity:
        """Return a document's validity on `as_of` (default today), versions and repeals applied."""
        day = as_of or date.today()
        versions = self.index.versions
        row = self.index.doc_row.get(doc.doc_id)
        if text or row is None or self.index.documents[row].content_hash != doc.content_hash:
            # with the text (plan periods stated in it), or a document of another build
            return validity_of(versions.effective_meta(doc, day), doc.title, day, text=text)
        cached = self._validity.get(day)
        if cached is None:
            if len(self._validity) > 8:
                self._validity.clear()
            cached = [validity_of(versions.effective_meta(d, day), d.title, day) for d in self.index.documents]
            self._validity[day] = cached
        return cached[row]

    def understand(self, query: str, expand: bool = True, tuning: Tuning = DEFAULT_TUNING) -> Understanding:
        """Return what the query names and needs, given the documents in this index."""
        return understand(query, doc_types=self.doc_types, regions=self.region_names, expand=expand,
                          expansion_weight=tuning.expansion_weight)

    def doc_prior(self, u: Understanding, t: Tuning) -> np.ndarray:
        """Return a multiplicative prior per document from the years, titles, types and places a query names."""
        prior = np.ones(len(self.index.documents), dtype=np.float32)
        if not (u.years or u.titles or u.levels or u.regions):
            return prior
        titles = [normalize(x) for x in u.titles]
        for i, d in enumerate(self.index.documents):
            year_hit = bool(u.years) and int(self.doc_years[i]) in u.years
            type_hit = d.get("doc_type") in u.doc_types
            title = normalize(d.title)
            if year_hit:
                prior[i] *= 1 + t.year_boost
                if type_hit:
                    prior[i] *= 1 + t.named_boost
            if titles and any(x in title or (len(title) >= 4 and title in x) for x in titles):
                prior[i] *= 1 + t.named_boost
            if d.get("level") in u.levels or set(self.doc_regions[i]) & set(u.regions):
                prior[i] *= 1 + t.level_boost
        return prior

    # -- filters -----------------------------------------------------------
    def doc_mask(self, filters: Filters, as_of: date | None = None) -> np.ndarray | None:
        """Return a boolean mask over documents, or None when no filter is set."""
        if filters.is_empty():
            return None
        mask = np.ones(len(self.index.documents), dtype=bool)
        for i, d in enumerate(self.index.documents):
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
            if filters.active_only and self.validity(d, as_of).code in ("expired", "superseded", "repealed"):
                ok = False
            year = int(self.doc_years[i])
            if filters.year_from is not None and (not year or year < filters.year_from):
                ok = False
            if filters.year_to is not None and (not year or year > filters.year_to):
                ok = False
            mask[i] = ok
        return mask

    # -- channels ------------------------------------------------------------
    def lexical(self, query: str, tuning: Tuning, expansions: tuple = ()) -> tuple[np.ndarray, list, list]:
        """Return (fused lexical score per chunk row in [0, ~1], word postings, bigram postings)."""
        extra_words = [w for e in expansions for w in self.segmenter.words(e.term)]
        extra_bigrams = [b for e in expansions for b in bigrams(e.term)]
        w_scores, w_post = _channel_scores(
            self.index.bm25_words, _weighted(self.segmenter.words(query), extra_words, tuning.expansion_weight))
        b_scores, b_post = _channel_scores(
            self.index.bm25_bigrams, _weighted(bigrams(query), extra_bigrams, tuning.expansion_weight))
        if tuning.prf_terms > 0 and w_scores.size and w_scores.max() > 0:
            w_scores = self._feedback(query, w_scores, extra_words, tuning)
        fused = np.zeros_like(w_scores)
        if w_scores.size and w_scores.max() > 0:
            fused += tuning.word_weight * w_scores / w_scores.max()
        if b_scores.size and b_scores.max() > 0:
            fused += tuning.bigram_weight * b_scores / b_scores.max()
        return fused, w_post, b_post

    def _feedback(self, query: str, w_scores: np.ndarray, extra_words: list[str], tuning: Tuning) -> np.ndarray:
        """Return word-channel scores re-run with the strongest terms of the top chunks added (RM3-style)."""
        model = self.index.bm25_words
        top = _top_rows(w_scores, tuning.prf_docs)
        seen = set(self.segmenter.words(query)) | set(extra_words)
        weight: dict[str, float] = {}
        for rank, text in enumerate(self.index.chunk_texts([int(r) for r in top])):
            toks = self.segmenter.words(text)
            for tok in set(toks):
                tid = model.vocab_dict.get(tok)
                if tok in seen or tid is None or len(tok) < 2:
                    continue
                weight[tok] = weight.get(tok, 0.0) + toks.count(tok) / len(toks) * _idf(model, tid) / (rank + 1)
        best = sorted(weight.items(), key=lambda kv: -kv[1])[: tuning.prf_terms]
        if not best:
            return w_scores
        top_weight = best[0][1]
        added = {tok: tuning.prf_weight * w / top_weight for tok, w in best}
        extra, _ = _channel_scores(model, added)
        return w_scores + extra

    def dense(self, query: str, tuning: Tuning) -> np.ndarray:
        """Return cosine similarity per chunk row (0 outside the candidates)."""
        n = len(self.index.chunk_ids)
        out = np.zeros(n, dtype=np.float32)
        if self.encoder is None or n == 0:
            return out
        vec = self.encoder.encode_queries([query])
        k = min(n, max(tuning.dense_candidates, 1))
        configure_search(self.index.faiss, k)
        sims, ids = self.index.faiss.search(vec, k)
        rows = self.index.rows_for_chunk_ids(ids[0])
        ok = rows >= 0
        out[rows[ok]] = sims[0][ok]
        return out

    def _distinctive(self, word: str, max_share: float = 0.05) -> bool:
        model = self.index.bm25_words
        tid = model.vocab_dict.get(word)
        n = int(model.scores["num_docs"])
        if tid is None or n < 200:  # a small index has no reliable notion of "common"
            return True
        indptr = model.scores["indptr"]
        return (indptr[tid + 1] - indptr[tid]) <= max_share * n

    def _lexically_sure(self, query: str, u: Understanding, lex: np.ndarray, t: Tuning) -> bool:
        """True when the best lexical chunk covers nearly all of the question: dense would only add noise and time."""
        if not lex.size or lex.max() <= 0:
            return False
        return self.coverage(query, u, int(np.argmax(lex))) >= t.sure_coverage

    def _too_weak(self, query: str, u: Understanding, top_row: int, top_dense: float, t: Tuning) -> bool:
        """Return True when the best chunk matches too little of the question's content, and dense is unsure too."""
        return top_dense < t.min_dense and self.coverage(query, u, top_row) < t.min_coverage

    def coverage(self, query: str, u: Understanding, top_row: int) -> float:
        """Return the IDF-weighted share of the question's content words that a chunk matches.

        Content = the question's precise-mode words (two or more characters) that occur in
        the corpus vocabulary; a word counts as matched when the chunk has it or one of its
        thesaurus expansions. Words that are level cues ("市里") are not content.
        """
        model = self.index.bm25_words
        norm = normalize(query)
        cues = {c for cues in LEVEL_CUES.values() for c in cues if c in norm}
        total = got = 0.0
        oov_idf = 0.6 * math.log(1 + model.scores["num_docs"])
        for word in dict.fromkeys(self.segmenter.content_words(query)):
            if word in cues:
                continue
            # the word itself, its search-mode parts ("专精特新小巨人" -> "小巨人") and its thesaurus expansions
            variants = list(dict.fromkeys([word] + self.segmenter.words(word) + [
                x for e in u.expansions if e.source in word or word in e.source for x in self.segmenter.words(e.term)]))
            known = [model.vocab_dict[v] for v in variants if v in model.vocab_dict]
            if word in model.vocab_dict:
                idf = _idf(model, model.vocab_dict[word])
            elif known:
                idf = max(_idf(model, k) for k in known)
            else:
                idf = oov_idf  # a word the corpus never uses: weaker evidence (often everyday phrasing)
            idf = max(idf, 1.0)  # words in every chunk (a one-document corpus's title) still count
            total += idf
            if word in model.vocab_dict or not known:
                matched = any(self._chunk_has(model, v, top_row) for v in variants)
            else:  # an unknown compound counts only when all its known parts are there
                parts = [v for v in variants[1:] if v in model.vocab_dict and len(v) >= 2]
                matched = all(self._chunk_has(model, v, top_row) for v in parts) if parts else False
            if matched:
                got += idf
        return got / total if total else 0.0

    @staticmethod
    def _chunk_has(model, token: str, row: int) -> bool:
        tid = model.vocab_dict.get(token)
        if tid is None:
            return False
        indptr = model.scores["indptr"]
        rows = model.scores["indices"][int(indptr[tid]):int(indptr[tid + 1])]
        return bool(np.any(rows == row))

    # -- search --------------------------------------------------------------
    def search(self, query: str, options: SearchOptions = SearchOptions()) -> SearchResult:
        """Return the top clauses for a query; empty hits with a message when nothing is relevant."""
        query = clean_query(query)
        k = check_k(options.k)
        if options.mode not in ("hybrid", "lexical", "dense"):
            raise QueryError(f"mode must be hybrid, lexical or dense, not {options.mode!r}")
        t = options.tuning
        u = self.understand(query, options.expand, t)
        n = len(self.index.chunk_ids)
        lex = np.zeros(n, dtype=np.float32)
        w_post: list = []
        b_post: list = []
        if options.mode in ("hybrid", "lexical"):
            lex, w_post, b_post = self.lexical(query, t, u.expansions)
        dense = np.zeros(n, dtype=np.float32)
        if self.encoder is not None and (options.mode == "dense" or (
                options.mode == "hybrid" and not self._lexically_sure(query, u, lex, t))):
            dense = self.dense(query, t)
        if options.mode == "dense":
            score = dense.copy()
        elif options.mode == "lexical":
            score = lex
        else:
            score = lex + t.dense_weight * np.maximum(dense - t.dense_floor, 0)
        if options.mode != "dense":
            score = score * self.doc_prior(u, t)[self.index.chunk_doc]
        mask = self.doc_mask(options.filters, options.as_of)
        if mask is not None:
            score = np.where(mask[self.index.chunk_doc], score, -np.inf)
        # whole words first so highlights cover "专精特新", not just its parts; words in most chunks
        # (企业, 发展) would light up every line, so they are not highlighted
        terms = tuple(w for w in dict.fromkeys(self.segmenter.content_words(query) + self.segmenter.words(query))
                      if self._distinctive(w))
        if n == 0:
            return SearchResult(query, (), terms, u, "the index is empty")
        # best chunk per clause, in score order
        order = _top_rows(score, max(k, 200) * 4)
        best_chunk: dict[int, int] = {}
        for row in order:
            if not np.isfinite(score[row]) or score[row] <= 0:
                break
            best_chunk.setdefault(int(self.index.chunk_clause[row]), int(row))
            if len(best_chunk) >= max(k, 200):
                break
        ranked = list(best_chunk)  # clause rows, best first

        cq = parse_clause_query(query)
        exact = self._exact_rows(query, cq, mask, best_chunk)
        if cq.phrases:
            # a quoted phrase is a filter: only clauses containing it, best first
            if not exact:
                return SearchResult(query, (), terms, u, "no clause contains the quoted phrase")
            chosen = exact[:k + VERSION_SLACK]
        else:
            if not exact and not ranked:
                return SearchResult(query, (), terms, u, "nothing relevant found")
            if not exact and options.mode != "dense" and self._too_weak(
                    query, u, best_chunk[ranked[0]], float(dense[best_chunk[ranked[0]]]), t):
                return SearchResult(query, (), terms, u, "nothing relevant found")
            chosen = (exact + [r for r in ranked if r not in set(exact)])[:k + VERSION_SLACK]
        exact_set = set(exact)
        hits: list[Hit] = []
        for rank, clause_row in enumerate(chosen, start=1):
            chunk_row = best_chunk.get(clause_row)
            clause = self.index.clause_at(clause_row)
            doc = self.index.documents[int(self.index.clause_doc[clause_row])]
            value = float(score[chunk_row]) if chunk_row is not None else 0.0
            channels = ((("lexical", float(lex[chunk_row])), ("dense", float(dense[chunk_row])))
                        if chunk_row is not None else ())
            hits.append(Hit(rank=rank, score=round(value, 4), doc=doc, clause=clause, channels=channels,
                            exact=clause_row in exact_set))
        hits = prefer_in_force(hits, options.as_of or date.today(), self.index.versions)[:k]
        return SearchResult(query, tuple(hits), terms, u)

    def _exact_rows(self, query: str, cq: ClauseQuery, mask: np.ndarray | None,
                    best_chunk: dict[int, int]) -> list[int]:
        """Return clause rows the query names exactly (phrase, clause number, heading), best first."""
        allowed = (lambda row: True) if mask is None else (lambda row: bool(mask[self.index.clause_doc[row]]))
        rank_of = {row: i for i, row in enumerate(best_chunk)}

        def order(rows: list[int], title: str = "") -> list[int]:
            rows = [r for r in dict.fromkeys(rows) if allowed(r)]
            if title:
                named = [r for r in rows if title_matches(title, self.index.documents[self.index.clause_doc[r]].title)]
                rows = named or rows
            return sorted(rows, key=lambda r: (rank_of.get(r, len(rank_of)), r))

        if cq.phrases:
            rows: set[int] | None = None
            for phrase in cq.phrases:
                found = set(self.index.rows_with_phrase(phrase, limit=100000))
                rows = found if rows is None else rows & found
            return order(list(rows or ()), cq.title)
        if cq.markers:
            return order(self.index.rows_with_marker_path(list(cq.markers)), cq.title)
        words = _TITLE_BRACKETS.sub(" ", query).strip()
        matches = self.index.rows_with_heading(words) if len(compact(words)) >= 4 else []
        equal = [row for row, is_equal in matches if is_equal]
        if not equal:
            equal = [row for row, _ in matches if compact(_strip_number(self.index.clause_at(row).heading)) == compact(words)]
        return order(equal, cq.title)


_TITLE_BRACKETS = re.compile(r"《[^《》]*》")
_NUMBER_PREFIX = re.compile(r"^(?:第[^条章节编]{1,6}[条章节编]|[一二三四五六七八九十]+[、.．]|[（(][^）)]{1,4}[）)]|[0-9]+[、.．])\s*")


def _strip_number(heading: str) -> str:
    return _NUMBER_PREFIX.sub("", heading.strip())


def _top_rows(score: np.ndarray, m: int) -> np.ndarray:
    """Return the rows of the m best scores, best first (partial sort: a full one costs ~80 ms at 1M chunks)."""
    if score.size <= m:
        return np.argsort(-score, kind="stable")
    part = np.argpartition(-score, m)[:m]
    return part[np.argsort(-score[part], kind="stable")]


def with_tuning(options: SearchOptions, **changes) -> SearchOptions:
    """Return options with some tuning values replaced (for sweeps)."""
    return replace(options, tuning=replace(options.tuning, **changes))


def nfkc(text: str) -> str:
    """Return NFKC-normalised text (how gold strings are compared)."""
    return unicodedata.normalize("NFKC", text)
