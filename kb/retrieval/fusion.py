"""Fusion of the channel scores: the tuning weights and pure array arithmetic (no index, no text).

Lexical channels are normalised per query (divided by their best score) and summed with
weights; the dense channel adds only above a cosine floor, normalised the same way and weighed
below the lexical channels, so it cannot drown a good lexical match; coverage of the question
and document priors multiply. Results are whole clauses, best chunk per clause.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class DenseScale:
    """Where an encoder's cosines mean something: each model spreads them differently (USE about 0.2-0.7,
    e5 about 0.75-0.95), so the dense channel's floor, its weight and the cosine that makes an answer
    sure belong to the encoder, not to the fusion."""

    floor: float  # cosine below this adds nothing
    sure: float  # a best chunk at least this close answers with confidence even when few words match
    weight: float  # the channel above its floor, divided by its best score, times this
    situation_floor: float = 1.0  # a question's cosine with an everyday situation below this adds nothing (1: off)


USE_SCALE = DenseScale(floor=0.35, sure=0.5, weight=0.2)  # tuned on dev with the bundled USE (sessions 2-4)


@dataclass(frozen=True)
class Tuning:
    """Fusion weights and thresholds, tuned on ../shared/eval/dev.jsonl and dev-laws.jsonl with scripts/eval.py."""

    word_weight: float = 0.6
    bigram_weight: float = 0.4
    expansion_weight: float = 0.4  # the bundled thesaurus (kb/data/thesaurus.tsv), below the user's words
    bridge_weight: float = 0.3  # times the bridge's own weight: everyday word -> corpus term (query side)
    # a longer everyday form (请客吃饭, 拖着不给钱) rarely matches by accident: its weight x (1 + this * (chars - 2) / 2),
    # at most the user's own words' 1 (0 -> 2 with bridge pass 7: dev and tuning hit@5 pooled 0.845 -> 0.861)
    bridge_long_form_boost: float = 2.0
    answer_type_weight: float = 0.2  # slot words of the question's interrogative (多久 -> 期限), below the user's words
    index_bridge_weight: float = 0.1  # the clause's everyday forms (index side), a channel of its own (0.2+ costs dev MRR)
    doc_channel_weight: float = 0.5  # documents whose title names the question's subject
    doc_channel_max_docs: int = 4  # ... when only this many titles name it
    doc_coverage_weight: float = 0.0  # documents holding all the question's rarer words (squared idf share); off: no gain on dev or dev-laws
    use_frames: bool = True  # question frames (有没有, 怎么办 …) are left out of matching and coverage
    year_boost: float = 0.35
    named_boost: float = 1.0  # a document the question names (type + year, or 《title》)
    level_boost: float = 0.3  # documents of the level or region the question points at
    coverage_weight: float = 0.5  # share of the score that depends on how much of the question a chunk covers (0.4-0.8 alike on dev)
    slot_weight: float = 0.3  # chunks stating the kind of value asked for (几年 -> a time span): score x (1 + this)
    dense_weight: float | None = None  # the dense channel above its floor, divided by its best score; None: the encoder's
    dense_floor: float | None = None  # cosine below this adds nothing; None: the encoder's (DenseScale)
    dense_expansions: bool = False  # the encoder also reads the bridge's and answer types' corpus terms (not the thesaurus's)
    # everyday situations of an article (kb/retrieval/situations.py): each clause's best situation, normalised
    # like the channels, added to every chunk of the clause after the factors; the user's words by BM25, the
    # question's vector by cosine above the encoder's floor (session 10, dev and tuning sets pooled: hit@5
    # 0.856 -> 0.948, MRR 0.671 -> 0.821; words alone 0.4 -> 0.918, vectors alone 0.5 -> 0.912)
    situation_weight: float = 0.3
    situation_dense_weight: float = 0.4
    situation_floor: float | None = None  # None: the encoder's (DenseScale.situation_floor)
    dense_candidates: int = 400  # nearest chunks the dense channel scores (200 → 400: +2 dev questions with e5, none lost)
    min_coverage: float = 0.34  # below this share of the question's content matched: answer, flagged low confidence ...
    min_dense: float | None = None  # ... unless the dense channel is at least this sure; None: the encoder's
    topical_share: float = 0.01  # a word in this share of chunks (at least 2) is a topic of the corpus
    offtopic_coverage: float = 0.75  # a question with no policy word is refused below this (and dense unsure)
    # lexical match this complete: skip the dense channel (> 1: run it on every question; with the normalised
    # dense channel and coverage in the score that changes no dev or held-out rank and costs ~5 ms a search)
    sure_coverage: float = 0.8


DEFAULT_TUNING = Tuning()


def for_encoder(t: Tuning, scale: DenseScale) -> Tuning:
    """Return the tuning with the dense values it leaves open (None) taken from the encoder's scale."""
    return replace(t, dense_weight=scale.weight if t.dense_weight is None else t.dense_weight,
                   dense_floor=scale.floor if t.dense_floor is None else t.dense_floor,
                   min_dense=scale.sure if t.min_dense is None else t.min_dense,
                   situation_floor=scale.situation_floor if t.situation_floor is None else t.situation_floor)


def normalised(scores: np.ndarray) -> np.ndarray:
    """Return scores divided by their maximum (all zeros stay zeros)."""
    top = float(scores.max()) if scores.size else 0.0
    return scores / top if top > 0 else scores


def fuse_lexical(words: np.ndarray, bigrams: np.ndarray, bridge: np.ndarray | None, t: Tuning) -> np.ndarray:
    """Return the weighted sum of the normalised lexical channels (about 0..1 per chunk row)."""
    fused = t.word_weight * normalised(words) + t.bigram_weight * normalised(bigrams)
    if bridge is not None and t.index_bridge_weight > 0:
        fused = fused + t.index_bridge_weight * normalised(bridge)
    return fused.astype(np.float32, copy=False)


def fuse_situations(lexical: np.ndarray | None, cosine: np.ndarray | None, t: Tuning) -> np.ndarray | None:
    """Return the situation score per clause row (each part divided by its best), or None when neither part
    is given or weighed."""
    out = None
    if lexical is not None and t.situation_weight > 0:
        out = t.situation_weight * normalised(lexical)
    if cosine is not None and t.situation_dense_weight > 0:
        part = t.situation_dense_weight * normalised(np.maximum(cosine - t.situation_floor, 0))
        out = part if out is None else out + part
    return None if out is None else out.astype(np.float32, copy=False)


def combine(lexical: np.ndarray, dense: np.ndarray, mode: str, t: Tuning) -> np.ndarray:
    """Return the score per chunk row for a search mode (hybrid | lexical | dense)."""
    if mode == "dense":
        return dense.copy()
    if mode == "lexical":
        return lexical.copy()
    return lexical + t.dense_weight * normalised(np.maximum(dense - t.dense_floor, 0))


def top_rows(score: np.ndarray, m: int) -> np.ndarray:
    """Return the rows of the m best scores, best first (partial sort: a full one costs ~80 ms at 1M chunks)."""
    if score.size <= m:
        return np.argsort(-score, kind="stable")
    part = np.argpartition(-score, m)[:m]
    return part[np.argsort(-score[part], kind="stable")]


def best_chunk_per_clause(score: np.ndarray, chunk_clause: np.ndarray, m: int) -> dict[int, int]:
    """Return {clause row: its best chunk row} for the m best clauses with a positive score, best first."""
    rows = top_rows(score, m * 4)
    values = score[rows]
    bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
    rows = rows[:bad[0]] if bad.size else rows  # best first: stop at the first score that is not positive
    clauses = chunk_clause[rows]
    _, first = np.unique(clauses, return_index=True)  # each clause's first (best) chunk among the rows
    first = np.sort(first)[:m]
    return dict(zip(clauses[first].tolist(), rows[first].tolist()))
