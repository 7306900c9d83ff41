"""The embedded backend: channel scores from the index folder's own files (bm25s score matrices, FAISS).

Unfiltered, this is exactly what search always did. Under filters a lexical channel is 0
outside the document mask (as a backend that filters inside its engine returns), so each
channel is normalised over the rows the filters allow; the dense channel searches the whole
index and the caller masks.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from kb.backends import EVERYWHERE, Where
from kb.retrieval.dense import DenseChannel
from kb.retrieval.lexical import LexicalChannel


class EmbeddedBackend:
    """Lexical channels and dense similarities over one loaded KnowledgeIndex."""

    name = "embedded"

    def __init__(self, index, encoder, channels: Mapping[str, LexicalChannel] | None = None,
                 dense: DenseChannel | None = None) -> None:
        self.index = index
        if channels is None:
            channels = {"words": LexicalChannel(index.bm25_words), "bigrams": LexicalChannel(index.bm25_bigrams)}
            if getattr(index, "bm25_bridge", None) is not None:
                channels["everyday"] = LexicalChannel(index.bm25_bridge)
        self.channels = dict(channels)
        self.dense_channel = dense if dense is not None else DenseChannel(index, encoder)

    def has_channel(self, channel: str) -> bool:
        """True when the build has this lexical channel."""
        return channel in self.channels

    def lexical(self, channel: str, weights: Mapping[str, float], where: Where = EVERYWHERE) -> np.ndarray:
        """Return the channel's weighted BM25 score per chunk row (0 outside the filters)."""
        scores = self.channels[channel].scores(weights)
        if where.mask is not None:
            scores[~where.mask[self.index.chunk_doc]] = 0.0
        return scores

    def dense_available(self) -> bool:
        """True when the build has vectors and an encoder is loaded."""
        return self.dense_channel.available

    def dense(self, text: str, candidates: int, where: Where = EVERYWHERE, vector: np.ndarray | None = None) -> np.ndarray:
        """Return cosine per chunk row for the nearest `candidates` chunks of the whole index (`vector`: the
        text's vector when already computed)."""
        return self.dense_channel.similarities(text, candidates, vector)

    def clause_row(self, doc_id: str, clause_id: str) -> int | None:
        """Return the clause row of a clause id, or None."""
        return self.index.clause_row(doc_id, clause_id)
