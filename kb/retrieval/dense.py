"""Dense channel: the question's vector against the FAISS index, as cosine per chunk row."""

from __future__ import annotations

import numpy as np

from kb.ann import configure_search
from kb.embed import Encoder


class DenseChannel:
    """Cosine similarity of a question to every candidate chunk (0 outside the candidates)."""

    def __init__(self, index, encoder: Encoder | None) -> None:
        self.index = index
        self.encoder = encoder if index.faiss is not None else None

    @property
    def available(self) -> bool:
        """True when the index has vectors and an encoder is loaded."""
        return self.encoder is not None and len(self.index.chunk_ids) > 0

    def similarities(self, text: str, candidates: int) -> np.ndarray:
        """Return cosine per chunk row for the `candidates` nearest chunks, 0 elsewhere."""
        n = len(self.index.chunk_ids)
        out = np.zeros(n, dtype=np.float32)
        if not self.available:
            return out
        vec = self.encoder.encode_queries([text])
        k = min(n, max(candidates, 1))
        configure_search(self.index.faiss, k)
        sims, ids = self.index.faiss.search(vec, k)
        rows = self.index.rows_for_chunk_ids(ids[0])
        ok = rows >= 0
        out[rows[ok]] = sims[0][ok]
        return out
