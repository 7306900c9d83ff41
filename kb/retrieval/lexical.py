"""Lexical channel adapter: the only code that reads bm25s internals (the CSC score matrix and vocabulary)
and builds its indexes (`save_bm25`: bm25s's own format, its token-to-score step done in numpy).

A channel scores weighted tokens over every chunk row at once (so filters apply inside
retrieval) and answers the questions coverage and highlighting ask: is a token known,
how rare is it, does a row contain it.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np


class LexicalChannel:
    """One BM25 field (jieba words, character bigrams, or everyday forms) over all chunk rows."""

    def __init__(self, model) -> None:
        self._vocab: dict[str, int] = model.vocab_dict
        self._data = model.scores["data"]
        self._indices = model.scores["indices"]
        self._indptr = model.scores["indptr"]
        self.n_rows = int(model.scores["num_docs"])

    def known(self, token: str) -> bool:
        """True when some chunk contains the token."""
        return token in self._vocab

    def df(self, token: str) -> int:
        """Return how many chunk rows contain the token."""
        tid = self._vocab.get(token)
        return 0 if tid is None else int(self._indptr[tid + 1] - self._indptr[tid])

    def idf(self, token: str) -> float | None:
        """Return the token's BM25 idf, or None when no chunk contains it."""
        tid = self._vocab.get(token)
        if tid is None:
            return None
        df = int(self._indptr[tid + 1] - self._indptr[tid])
        return math.log(1 + (self.n_rows - df + 0.5) / (df + 0.5))

    def unknown_idf(self) -> float:
        """Return the idf a token no chunk contains would have."""
        return math.log(1 + self.n_rows)

    def rows_with(self, token: str) -> np.ndarray:
        """Return the chunk rows containing the token."""
        tid = self._vocab.get(token)
        if tid is None:
            return np.empty(0, dtype=np.int64)
        return self._indices[int(self._indptr[tid]):int(self._indptr[tid + 1])]

    def has(self, token: str, row: int) -> bool:
        """True when chunk `row` contains the token."""
        rows = self.rows_with(token)
        return bool(rows.size) and bool(np.any(rows == row))

    def scores(self, weights: Mapping[str, float]) -> np.ndarray:
        """Return the weighted sum of the tokens' BM25 scores per chunk row."""
        out = np.zeros(self.n_rows, dtype=np.float32)
        for token, weight in weights.items():
            tid = self._vocab.get(token)
            if tid is None or weight <= 0:
                continue
            s, e = int(self._indptr[tid]), int(self._indptr[tid + 1])
            out[self._indices[s:e]] += weight * self._data[s:e]
        return out


# bm25s's parameters for every field (its defaults otherwise: the Lucene variant)
K1, B = 1.2, 0.75


def save_bm25(corpus_tokens: list[list[str]], folder: Path) -> None:
    """Build a BM25 index over the token lists, one row per list, and save it in bm25s's format."""
    model = _vectorised_bm25()(k1=K1, b=B)
    # an empty document still needs a row, so every chunk keeps its position
    model.index([toks if toks else [""] for toks in corpus_tokens], show_progress=False)
    model.save(str(folder), show_progress=False)


@lru_cache(maxsize=1)
def _vectorised_bm25():
    """bm25s.BM25 whose index build (its documented override point) counts terms with numpy.

    bm25s loops over documents in Python (a Counter, a score array and a set intersection per
    document): 7.6 of a 15 s rebuild of the 13,544-chunk benchmark index went there. Same
    formulas (bm25s's own scorers), same CSC layout; tests/test_retrieval.py compares every
    score with bm25s's build."""
    import bm25s
    from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer

    class VectorisedBM25(bm25s.BM25):
        def build_index_from_tokens(self, corpus_tokens, show_progress=True, leave_progress=False):
            if self.method in self.methods_requiring_nonoccurrence:  # BM25L, BM25+: bm25s's own way
                return super().build_index_from_tokens(corpus_tokens, show_progress, leave_progress)
            vocab: dict[str, int] = {}
            ids = np.fromiter((vocab.setdefault(t, len(vocab)) for doc in corpus_tokens for t in doc), dtype=np.int64)
            lengths = np.fromiter((len(doc) for doc in corpus_tokens), dtype=np.int64, count=len(corpus_tokens))
            n_docs, n_vocab = len(lengths), len(vocab)
            pairs, tf = np.unique(np.repeat(np.arange(n_docs), lengths) * n_vocab + ids, return_counts=True)
            doc_idx, voc_idx = pairs // n_vocab, pairs % n_vocab
            df = np.bincount(voc_idx, minlength=n_vocab)
            idf_of = _select_idf_scorer(self.idf_method)
            distinct, where = np.unique(df, return_inverse=True)
            idf = np.array([idf_of(int(d), N=n_docs) for d in distinct], dtype=self.dtype)[where]
            tfc = _select_tfc_scorer(self.method)(tf_array=tf.astype(self.dtype), l_d=lengths[doc_idx],
                                                   l_avg=lengths.mean(), k1=self.k1, b=self.b, delta=self.delta)
            scores = (idf[voc_idx] * tfc).astype(self.dtype)
            self.nonoccurrence_array = None
            rows, cols = doc_idx.astype(self.int_dtype), voc_idx.astype(self.int_dtype)
            if self.csc_backend == "scipy":
                import scipy.sparse as sp

                matrix = sp.csc_matrix((scores, (rows, cols)), shape=(n_docs, n_vocab), dtype=self.dtype)
                data, indices, indptr = matrix.data, matrix.indices, matrix.indptr
            else:
                data, indices, indptr = self._np_csc(data=scores, rows=rows, cols=cols, shape=(n_docs, n_vocab))
                data = data.astype(self.dtype)
            return {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}, vocab

    return VectorisedBM25
