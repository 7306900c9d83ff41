"""Dense channel: the question's vector against the FAISS index, as cosine per chunk row.

The question's vector can be started early (PendingVector): the encoder then runs in a worker
thread while the analysis and lexical stages run in the request's thread, and is stopped when
lexical matching turns out sure enough that the search does not read it. A large exact index is
scanned in parts, one of them in a worker thread (kb.ann.search).
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor
from functools import partial

import numpy as np

from kb import ann
from kb.embed import Encoder, EncodingStopped, Stop

# Worker threads: per request being served at a time (kb serve runs 8 request threads), one for the
# question's vector and one for part of the vector scan; a thread is started only when needed.
QUESTION_WORKERS = 16


def _new_pool() -> None:
    global _POOL
    _POOL = ThreadPoolExecutor(max_workers=QUESTION_WORKERS, thread_name_prefix="kb-question")


_new_pool()
os.register_at_fork(after_in_child=_new_pool)  # a forked child (a server worker) has none of its parent's threads


class PendingVector:
    """A question's vector being computed in a worker thread; `result()` waits for it, `cancel()` drops it."""

    def __init__(self, encoder: Encoder, text: str) -> None:
        self.text = text
        self._stop = Stop()
        running = None
        if hasattr(encoder, "question_job"):  # the Python part here, the rest (no GIL) in the worker
            running = threading.Event()
            job = encoder.question_job(text, self._stop, running.set)
        else:  # another encoder (USE, sentence-transformers) runs whole in the worker
            job = partial(encoder.encode_queries, [text])
        self._future = _POOL.submit(self._encode, job)
        if running is not None:
            # until the worker is inside the encoder (no GIL needed), this thread's Python would hold it up
            # (E5Model.question_job); a busy pool is not waited for beyond the interpreter's switch interval
            running.wait(sys.getswitchinterval())

    def _encode(self, job) -> np.ndarray | None:
        if self._stop.stopped:
            return None
        try:
            return np.asarray(job(), dtype=np.float32)
        except EncodingStopped:
            return None

    def result(self) -> np.ndarray:
        """Return the question's vector, shape (1, dim); the encoder's errors are raised here."""
        try:
            vectors = self._future.result()
        except CancelledError:
            vectors = None
        if vectors is None:
            raise EncodingStopped("the question's vector was cancelled")
        return vectors

    def cancel(self) -> None:
        """Drop the vector: not started yet -> never started; running -> stopped where the encoder can stop."""
        self._stop.stop()
        self._future.cancel()


class DenseChannel:
    """Cosine similarity of a question to every candidate chunk (0 outside the candidates)."""

    def __init__(self, index, encoder: Encoder | None) -> None:
        self.index = index
        self.encoder = encoder if index.faiss is not None else None

    @property
    def available(self) -> bool:
        """True when the index has vectors and an encoder is loaded."""
        return self.encoder is not None and len(self.index.chunk_ids) > 0

    def similarities(self, text: str, candidates: int, vector: np.ndarray | None = None) -> np.ndarray:
        """Return cosine per chunk row for the `candidates` nearest chunks, 0 elsewhere
        (`vector`: the question's vector when already computed, e.g. by a PendingVector)."""
        n = len(self.index.chunk_ids)
        out = np.zeros(n, dtype=np.float32)
        if not self.available:
            return out
        vec = vector if vector is not None else self.encoder.encode_queries([text])
        k = min(n, max(candidates, 1))
        sims, ids = ann.search(self.index.faiss, vec, k, _POOL)
        rows = self.index.rows_for_chunk_ids(ids[0])
        ok = rows >= 0
        out[rows[ok]] = sims[0][ok]
        return out
