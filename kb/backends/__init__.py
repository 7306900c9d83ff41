"""The backend seam: where the channel scores come from (the index folder, or Milvus), and how a build becomes current.

Search stages ask a backend for
- the scores of one lexical channel (words, bigrams, everyday) for weighted query tokens,
- the dense similarities of a question to the chunk rows,
both per chunk row of the loaded build, under a `Where` (metadata filters plus the document
mask they give) that a backend may apply inside its engine; and for a clause row by id.
The publish step asks a backend to make a finished build current.

`embedded` (kb/backends/embedded.py) is the index folder itself (bm25s, FAISS) and the
default; `milvus` (kb/backends/milvus.py) keeps the same rows in one Milvus collection per
build behind an alias. Both return arrays over the same chunk rows, so the fusion, priors,
exact lookup and floor in kb/retrieval/ do not know which one ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

import numpy as np

BACKENDS = ("embedded", "milvus")
LEXICAL_CHANNELS = ("words", "bigrams", "everyday")


@dataclass(frozen=True)
class Where:
    """Which documents a query may return: the filters as set, and the boolean document mask they give.

    `filters` is a kb.retrieval.documents.Filters; `mask` is None when no filter is set.
    A backend that filters inside its engine translates `filters`; the mask is the exact
    answer (the embedded backend applies it after scoring, as search always did).
    """

    filters: object = None
    mask: np.ndarray | None = None

    @property
    def is_empty(self) -> bool:
        """True when every document may be returned."""
        return self.mask is None


EVERYWHERE = Where()


class Backend(Protocol):
    """Channel scores over the chunk rows of one loaded build."""

    name: str

    def has_channel(self, channel: str) -> bool:
        """True when the build has this lexical channel (everyday forms are optional)."""

    def lexical(self, channel: str, weights: Mapping[str, float], where: Where = EVERYWHERE) -> np.ndarray:
        """Return per chunk row the weighted sum of the tokens' BM25 scores in one channel (0 where not found)."""

    def dense_available(self) -> bool:
        """True when the build has vectors and an encoder is loaded."""

    def dense(self, text: str, candidates: int, where: Where = EVERYWHERE, vector: np.ndarray | None = None) -> np.ndarray:
        """Return cosine per chunk row for the `candidates` nearest chunks (0 elsewhere); `vector` is the
        text's vector when the caller already has it (kb.retrieval.dense.PendingVector)."""

    def clause_row(self, doc_id: str, clause_id: str) -> int | None:
        """Return the clause row of a clause id, or None."""


class BackendError(RuntimeError):
    """A backend cannot be used as configured (package missing, server unreachable); the message says what to do."""
