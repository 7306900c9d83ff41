"""Lexical channel adapter: the only code that reads bm25s internals (the CSC score matrix and vocabulary).

A channel scores weighted tokens over every chunk row at once (so filters apply inside
retrieval) and answers the questions coverage and highlighting ask: is a token known,
how rare is it, does a row contain it.
"""

from __future__ import annotations

import math
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
