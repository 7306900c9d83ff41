"""Clause search: options, the result, and `Searcher.search`, a short pipeline over the stages of kb/retrieval/.

analyse the question once -> lexical channels (words, bigrams, everyday forms) and, where
lexical matching is unsure, the dense channel -> fusion -> document priors and filters ->
best chunk per clause -> exact lookup -> floor (confidence high | low, or refused).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np

from kb.backends import EVERYWHERE, Where
from kb.backends.embedded import EmbeddedBackend
from kb.cite import Validity, validity_of
from kb.embed import Encoder
from kb.index import KnowledgeIndex
from kb.query import Understanding
from kb.retrieval import floor
from kb.retrieval.analysis import AnalysedQuestion, Analyser
from kb.retrieval.dense import DenseChannel, PendingVector
from kb.retrieval.documents import DocumentStage, Filters
from kb.retrieval.exact import exact_rows
from kb.retrieval.fusion import (DEFAULT_TUNING, USE_SCALE, Tuning, best_chunk_per_clause, combine, for_encoder,
                                 fuse_lexical, fuse_situations, top_rows)
from kb.retrieval.lexical import LexicalChannel
from kb.retrieval.situations import SituationMatch
from kb.retrieval.slots import slot_mask
from kb.segment import Segmenter
from kb.text import nfkc  # noqa: F401  (kb.evaluation and scripts read it from here)
from kb.types import Hit
from kb.versions import fold_versions, prefer_in_force

__all__ = ["DEFAULT_TUNING", "Filters", "MAX_K", "MAX_QUERY_CHARS", "QueryError", "SearchOptions", "SearchResult",
           "Searcher", "Tuning", "check_k", "clean_query", "nfkc", "top_rows", "with_tuning"]

MAX_QUERY_CHARS = 500
MAX_K = 100
# a hit shows the everyday situation that matched it best when that situation adds at least this much (a
# full lexical match adds Tuning.situation_weight, 0.3): the reader sees why a clause without their words is there
SHOW_SITUATION_MIN = 0.15
VERSION_SLACK = 10  # extra candidates: the version in force can move up past an outdated one, which may fold into it


class QueryError(ValueError):
    """The query or its options cannot be searched; the message says why."""


@dataclass(frozen=True)
class SearchOptions:
    """How to search: result count, channels, filters."""

    k: int = 5
    mode: str = "hybrid"  # hybrid | lexical | dense
    filters: Filters = field(default_factory=Filters)
    tuning: Tuning = DEFAULT_TUNING
    expand: bool = True  # thesaurus and bridge expansions on/off
    as_of: date | None = None  # the reference date validity is judged on (None: today)


@dataclass(frozen=True)
class SearchResult:
    """Hits for a query, with what the query was understood as."""

    query: str
    hits: tuple[Hit, ...]
    terms: tuple[str, ...]
    understanding: Understanding  # an AnalysedQuestion
    message: str = ""
    confidence: str = "high"  # high | low (weak match, shown with a notice) | none (refused)
    coverage: float = 0.0  # share of the question's content the best clause matches

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



class Searcher:
    """Answers queries against one loaded index; each stage lives in kb/retrieval/."""

    def __init__(self, index: KnowledgeIndex, encoder: Encoder | None, segmenter: Segmenter, backend=None) -> None:
        self.index = index
        self.segmenter = segmenter
        self.analyser = Analyser(segmenter)
        self.words = LexicalChannel(index.bm25_words)
        self.bigrams = LexicalChannel(index.bm25_bigrams)
        bridge_model = getattr(index, "bm25_bridge", None)
        self.everyday = LexicalChannel(bridge_model) if bridge_model is not None else None
        self.dense = DenseChannel(index, encoder)
        self.encoder = self.dense.encoder
        self._question_encoder = encoder  # the backend's encoder (a Milvus build has no FAISS index here)
        self.dense_scale = getattr(encoder, "dense_scale", USE_SCALE)  # where this encoder's cosines mean something
        # where channel scores come from (kb/backends): the index folder, or a Milvus collection of this build
        channels = {"words": self.words, "bigrams": self.bigrams}
        if self.everyday is not None:
            channels["everyday"] = self.everyday
        self.backend = backend or EmbeddedBackend(index, encoder, channels, self.dense)
        self.docs = DocumentStage(index.documents)
        # words of the titles in this index count as policy words too (a corpus the bundled inventory does not cover)
        self.policy_words = self.analyser.vocab.policy_words | frozenset(
            w for d in index.documents for w in segmenter.content_words(d.title))
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

    def analyse(self, query: str, expand: bool = True, tuning: Tuning = DEFAULT_TUNING) -> AnalysedQuestion:
        """Return the analysed question, given the document types and regions in this index."""
        return self.analyser.analyse(query, doc_types=self.docs.doc_types, regions=self.docs.region_names,
                                     expand=expand, tuning=tuning)

    understand = analyse  # the name eligibility and older callers use

    def doc_mask(self, filters: Filters, as_of: date | None = None) -> np.ndarray | None:
        """Return a boolean mask over documents, or None when no filter is set."""
        return self.docs.mask(filters, lambda d: self.validity(d, as_of))

    # -- stages --------------------------------------------------------------
    def lexical_scores(self, q: AnalysedQuestion, t: Tuning, where: Where = EVERYWHERE) -> np.ndarray:
        """Return the fused lexical score per chunk row (about 0..1)."""
        words = self.backend.lexical("words", dict(q.word_query), where)
        bigrams = self.backend.lexical("bigrams", dict(q.bigram_query), where)
        everyday = None
        if self.backend.has_channel("everyday") and t.index_bridge_weight > 0:
            everyday = self.backend.lexical("everyday", {w: 1.0 for w in q.user_words}, where)
        return fuse_lexical(words, bigrams, everyday, t)

    def relevance(self, query: str, tuning: Tuning = DEFAULT_TUNING) -> np.ndarray:
        """Return a lexical relevance in [0, 1] per clause row (its best chunk), e.g. for eligibility needs."""
        scores = np.zeros(self.index.n_clauses, dtype=np.float32)
        if len(self.index.chunk_ids) == 0:
            return scores
        fused = self.lexical_scores(self.analyse(query, tuning=tuning), tuning)
        np.maximum.at(scores, self.index.chunk_clause, fused.astype(np.float32))
        top = float(scores.max()) if scores.size else 0.0
        return scores / top if top > 0 else scores

    def _situation_dense(self, t: Tuning) -> bool:
        situations = self.index.situations
        return (situations is not None and situations.vectors is not None and t.situation_dense_weight > 0
                and (self._question_encoder or self.encoder) is not None)

    def situation_scores(self, q: AnalysedQuestion, t: Tuning, mode: str = "hybrid",
                         vector: np.ndarray | None = None) -> SituationMatch | None:
        """Return how the question matches the everyday situations (kb/retrieval/situations.py), per clause row
        and per situation, or None when the build has none or they weigh nothing: the user's own words by
        BM25 (not in dense mode), and the question's vector by cosine when it was computed."""
        situations = self.index.situations
        if situations is None or not len(situations):
            return None
        words = situations.word_scores({w: 1.0 for w in q.user_words}) if mode != "dense" else None
        cosines = situations.cosines(vector) if vector is not None and self._situation_dense(t) else None
        per_clause = fuse_situations(None if words is None else situations.best_per_clause(words),
                                     None if cosines is None else situations.best_per_clause(cosines), t)
        if per_clause is None:
            return None
        return SituationMatch(per_clause, fuse_situations(words, cosines, t))

    def coverage_terms(self, q: AnalysedQuestion, t: Tuning = DEFAULT_TUNING) -> list[floor.CoverageTerm]:
        """Return the question's content words as coverage terms, weighed by their idf in this index."""
        terms = []
        # a word in at least this many chunks is what the corpus is about (农业 in the reports), not a
        # word it happens to use once (葡萄, 上海): topical even where the bundled inventory does not know it
        common_df = max(2.0, t.topical_share * self.words.n_rows)
        oov_idf = 0.6 * self.words.unknown_idf()  # a word the corpus never uses: weaker evidence (everyday phrasing)
        for c in q.content:
            variants = tuple(dict.fromkeys((c.word,) + c.parts + c.expansions))
            idf = self.words.idf(c.word)
            if idf is None:
                known = [x for x in (self.words.idf(v) for v in variants) if x is not None]
                idf = max(known) if known else oov_idf
            idf = max(idf, 1.0)  # words in every chunk (a one-document corpus's title) still count
            topical = c.word in self.policy_words or self.words.df(c.word) >= common_df
            # an everyday form of a policy word (退, 拖着不给钱), or a compound with a policy word in it
            # (招聘启事): topical when most of the question is words the corpus knows (floor.judge)
            everyday = c.word in self.analyser.vocab.policy_forms or any(
                len(p) >= 2 and p in self.policy_words for p in c.parts)
            if self.words.known(c.word):
                terms.append(floor.CoverageTerm(c.word, idf, variants, known=True, topical=topical, everyday=everyday))
            else:  # an unknown compound counts when all its known parts are there, or an expansion is
                parts = tuple(p for p in c.parts if len(p) >= 2 and self.words.known(p))
                known = bool(parts) or any(self.words.known(v) for v in c.expansions)
                terms.append(floor.CoverageTerm(c.word, idf, c.expansions, parts, known=known, topical=topical,
                                                everyday=everyday))
        return terms

    def lexical_factors(self, q: AnalysedQuestion, t: Tuning, cover_terms: list[floor.CoverageTerm]) -> list[np.ndarray]:
        """Return what the fused score is multiplied by, per chunk row: the document prior, the share of the
        question's content words a chunk has (Tuning.coverage_weight), and the answer type (Tuning.slot_weight)."""
        factors = [self.docs.prior(q, t, self.words, self.index.chunk_doc)[self.index.chunk_doc]]
        if t.coverage_weight > 0 and cover_terms:
            cov = floor.coverage_rows(cover_terms, self.words.rows_with, len(self.index.chunk_ids))
            factors.append((1 - t.coverage_weight) + t.coverage_weight * cov)
        slots = slot_mask(self.index.slot_bits, q.slot) if t.slot_weight > 0 else None
        if slots is not None:  # chunks stating the kind of value asked for (几年: a time span)
            factors.append(1 + t.slot_weight * slots)
        return factors

    def coverage(self, q: AnalysedQuestion, chunk_row: int) -> float:
        """Return the idf-weighted share of the question's content words that a chunk matches."""
        return floor.coverage(self.coverage_terms(q), lambda tok: self.words.has(tok, chunk_row))

    def highlight_terms(self, q: AnalysedQuestion) -> tuple[str, ...]:
        """Return the words to highlight: whole words first; words in most chunks (企业, 发展) are left out."""
        n = self.words.n_rows
        return tuple(w for w in q.highlight_candidates() if n < 200 or self.words.df(w) <= 0.05 * n)

    # -- search --------------------------------------------------------------
    def search(self, query: str, options: SearchOptions = SearchOptions()) -> SearchResult:
        """Return the top clauses for a query; a weak match is flagged low confidence, nothing known is refused."""
        query = clean_query(query)
        k = check_k(options.k)
        if options.mode not in ("hybrid", "lexical", "dense"):
            raise QueryError(f"mode must be hybrid, lexical or dense, not {options.mode!r}")
        t = for_encoder(options.tuning, self.dense_scale)
        early = None
        if (options.mode != "lexical" and not t.dense_expansions and self._question_encoder is not None
                and self.backend.dense_available()):
            # the encoder reads the question as typed: start it now, beside the analysis and lexical stages
            # (most of an enterprise question's time); stopped below when lexical matching is sure
            early = PendingVector(self._question_encoder, dense_text(None, query, t))
        try:
            return self._search(query, k, options, t, early)
        finally:
            if early is not None:
                early.cancel()  # nothing when it finished

    def _search(self, query: str, k: int, options: SearchOptions, t: Tuning, early: PendingVector | None) -> SearchResult:
        q = self.analyse(query, options.expand, t)
        terms = self.highlight_terms(q)
        n = len(self.index.chunk_ids)
        if n == 0:
            return SearchResult(query, (), terms, q, "the index is empty", floor.NONE)
        if q.is_empty:
            return SearchResult(query, (), terms, q, "nothing to search for: the question has no content words",
                                floor.NONE)

        mask = self.doc_mask(options.filters, options.as_of)
        where = Where(options.filters, mask)
        lex = self.lexical_scores(q, t, where) if options.mode != "dense" else np.zeros(n, dtype=np.float32)
        cover_terms = self.coverage_terms(q, t)
        top_lex = int(np.argmax(lex)) if lex.max() > 0 else -1
        sure = top_lex >= 0 and floor.coverage(cover_terms, lambda tok: self.words.has(tok, top_lex)) >= t.sure_coverage
        use_dense = options.mode == "dense" or (options.mode == "hybrid" and not sure)
        if early is not None and not use_dense:
            early.cancel()  # now: its core is free for the rest of this search
        # computed while the question's vector may still be on its way
        factors = self.lexical_factors(q, t, cover_terms) if options.mode != "dense" else []
        dense = np.zeros(n, dtype=np.float32)
        vector = None
        if use_dense:
            text = dense_text(q, query, t)
            vector = early.result() if early is not None and early.text == text else None
            if vector is None and self._situation_dense(t):  # the situations need it too: computed once, here
                vector = (self._question_encoder or self.encoder).encode_queries([text])
            dense = self.backend.dense(text, t.dense_candidates, where, vector)
        score = combine(lex, dense, options.mode, t)
        for factor in factors:
            score = score * factor
        situation = self.situation_scores(q, t, options.mode, vector)
        if situation is not None:  # each clause's best everyday situation, on every chunk of the clause; after the
            # factors: a situation is evidence of its own, not to be discounted for the words the clause lacks
            score = score + situation.clauses[self.index.chunk_clause]
        if mask is not None:
            score = np.where(mask[self.index.chunk_doc], score, -np.inf)

        best_chunk = best_chunk_per_clause(score, self.index.chunk_clause, max(k, 200))
        ranked = list(best_chunk)  # clause rows, best first
        exact = exact_rows(self.index, q, mask, {row: i for i, row in enumerate(ranked)})
        if q.clause.phrases:
            # a quoted phrase is a filter: only clauses containing it, best first
            if not exact:
                return SearchResult(query, (), terms, q, "no clause contains the quoted phrase", floor.NONE)
            chosen = exact[:k + VERSION_SLACK]
            verdict = floor.Verdict(floor.HIGH, 1.0, 1.0)
        else:
            if not exact and not ranked:
                return SearchResult(query, (), terms, q, "nothing relevant found", floor.NONE)
            top = best_chunk[ranked[0]] if ranked else -1
            best_coverage = floor.coverage(cover_terms, lambda tok: self.words.has(tok, top)) if top >= 0 else 0.0
            if options.mode == "dense":
                verdict = floor.Verdict(floor.HIGH if float(dense[top]) >= t.min_dense else floor.LOW, best_coverage, 1.0)
            else:
                verdict = floor.judge(cover_terms, best_coverage, float(dense[top]) if top >= 0 else 0.0,
                                      min_coverage=t.min_coverage, offtopic_coverage=t.offtopic_coverage,
                                      min_dense=t.min_dense, exact=bool(exact))
            if verdict.confidence == floor.NONE:
                return SearchResult(query, (), terms, q, verdict.message, floor.NONE, verdict.coverage)
            exact_set = set(exact)
            chosen = (exact + [r for r in ranked if r not in exact_set])[:k + VERSION_SLACK]
        exact_set = set(exact)
        hits: list[Hit] = []
        for rank, (clause_row, clause) in enumerate(zip(chosen, self.index.clauses_at(chosen)), start=1):
            chunk_row = best_chunk.get(clause_row)
            doc = self.index.documents[int(self.index.clause_doc[clause_row])]
            value = float(score[chunk_row]) if chunk_row is not None else 0.0
            channels = ((("lexical", float(lex[chunk_row])), ("dense", float(dense[chunk_row])))
                        if chunk_row is not None else ())
            shown = ""
            if situation is not None:
                channels += (("situation", float(situation.clauses[clause_row])),)
                said, weight = self.index.situations.best_text(clause_row, situation.rows)
                shown = said if weight >= SHOW_SITUATION_MIN else ""
            hits.append(Hit(rank=rank, score=round(value, 4), doc=doc, clause=clause, channels=channels,
                            exact=clause_row in exact_set, situation=shown))
        day = options.as_of or date.today()
        hits = fold_versions(prefer_in_force(hits, day, self.index.versions), day, self.index.versions)[:k]
        return SearchResult(query, tuple(hits), terms, q, verdict.message, verdict.confidence, verdict.coverage)


# The encoder reads at most this many characters of a question; the lexical channels read all of it. e5's cost
# grows faster than the length (one core: 32 characters 48 ms, 128 123 ms, 500, the longest question, 838 ms),
# so a pasted paragraph must not cost most of a second; the longest dev question has 37 characters.
DENSE_QUERY_CHARS = 128


def dense_text(q: AnalysedQuestion | None, query: str, t: Tuning) -> str:
    """Return what the encoder reads for a question: its first DENSE_QUERY_CHARS characters, plus
    (Tuning.dense_expansions, which needs the analysed question `q`) the corpus terms the bridge and
    answer types give for its everyday words."""
    query = query[:DENSE_QUERY_CHARS]
    if not t.dense_expansions or q is None:
        return query
    extra = dict.fromkeys(e.term for e in q.expansions if e.provenance != "thesaurus" and e.term not in query)
    return query + " " + " ".join(extra) if extra else query


def with_tuning(options: SearchOptions, **changes) -> SearchOptions:
    """Return options with some tuning values replaced (for sweeps)."""
    return replace(options, tuning=replace(options.tuning, **changes))

