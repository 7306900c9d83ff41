"""The score floor: how much of a question the best clause covers, and how sure the answer is.

Pure functions over the question's coverage terms and a `has(token)` test, so they are
tested without an index. A question with words the knowledge base knows always gets its
best clauses; a weak match is answered with confidence "low"; only a question with
nothing the corpus knows, or only everyday words that happen to occur in it and match
little, is refused ("none").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

HIGH, LOW, NONE = "high", "low", "none"


@dataclass(frozen=True)
class CoverageTerm:
    """One content word of a question, with what counts as finding it in a clause.

    `variants`: the word, its search-mode parts and its expansions (any one found counts);
    `parts`: for a word the corpus never uses, its known parts of two or more characters
    (all found counts too);
    `idf`: its weight in the question (rarer words weigh more); `known`: the corpus has
    the word or one of its variants; `topical`: it is a word of the policies themselves (the
    term inventory, the bridge, the thesaurus, a document title), not just a word that
    occurs somewhere in them; `everyday`: it is how people say such a word (a hand-written or
    rule form of the bridge), which makes the question topical only when most of it is
    words the corpus knows (医院 or 名字 in a question about pop songs or a child's fever is not).
    """

    word: str
    idf: float
    variants: tuple[str, ...]
    parts: tuple[str, ...] = ()
    known: bool = True
    topical: bool = False
    everyday: bool = False  # not a policy word, but an everyday form of one (退) or a compound holding one (招聘启事)


@dataclass(frozen=True)
class Verdict:
    """How sure an answer is: confidence high | low | none (refused), with the figures behind it."""

    confidence: str
    coverage: float
    known_share: float
    message: str = ""


def coverage(terms: Sequence[CoverageTerm], has: Callable[[str], bool]) -> float:
    """Return the idf-weighted share of the terms that a clause (given by `has`) matches."""
    total = sum(t.idf for t in terms)
    if total <= 0:
        return 0.0
    got = 0.0
    for t in terms:
        if any(has(v) for v in t.variants) or (t.parts and all(has(p) for p in t.parts)):
            got += t.idf
    return got / total


def coverage_rows(terms: Sequence[CoverageTerm], rows_with: Callable[[str], np.ndarray], n: int) -> np.ndarray:
    """Return `coverage` for every chunk row at once (`rows_with(token)`: the rows holding a token)."""
    total = sum(t.idf for t in terms)
    out = np.zeros(n, dtype=np.float32)
    if total <= 0 or n == 0:
        return out
    for t in terms:
        rows = [rows_with(v) for v in t.variants]
        if t.parts:  # rows holding every part: a row id repeated once per part
            ids, counts = np.unique(np.concatenate([np.unique(rows_with(p)) for p in t.parts]), return_counts=True)
            rows.append(ids[counts == len(t.parts)])
        found = np.zeros(n, dtype=bool)
        if rows:
            found[np.concatenate(rows).astype(np.int64, copy=False)] = True
        out[found] += t.idf
    return out / total


def known_share(terms: Sequence[CoverageTerm]) -> float:
    """Return the idf-weighted share of the terms the corpus knows (itself or through a variant)."""
    total = sum(t.idf for t in terms)
    return sum(t.idf for t in terms if t.known) / total if total > 0 else 0.0


def judge(terms: Sequence[CoverageTerm], best_coverage: float, top_dense: float, *, min_coverage: float,
          offtopic_coverage: float, min_dense: float, exact: bool = False,
          everyday_known_share: float = 0.6) -> Verdict:
    """Return the verdict on an answer whose best clause covers `best_coverage` of the terms.

    A question with a topical word is always answered (confidence low when the best clause
    covers less than `min_coverage` and the dense channel is unsure). A question without one
    is refused unless its best clause covers at least `offtopic_coverage` of it or the dense
    channel is sure; a question with no word the corpus knows at all is refused. An exact
    match (clause number, heading, quoted phrase) is always sure.
    """
    share = known_share(terms)
    if exact:
        return Verdict(HIGH, best_coverage, share)
    if not terms or share <= 0:
        return Verdict(NONE, 0.0, share, "nothing relevant found: the question has no word this knowledge base uses")
    topical = any(t.topical for t in terms) or (any(t.everyday for t in terms) and share > everyday_known_share)
    if not topical and best_coverage < offtopic_coverage and top_dense < min_dense:
        return Verdict(NONE, best_coverage, share,
                       "nothing relevant found: the question uses none of the policies' own words")
    if best_coverage < min_coverage and top_dense < min_dense:
        return Verdict(LOW, best_coverage, share,
                       "weak match: the best clauses share only some of the question's words; check they answer it")
    return Verdict(HIGH, best_coverage, share)
