"""The knowledge base as the CLI and the web app use it: settings in, index handle and searcher out.

Owns the wiring (encoder per settings, one segmenter, hot-swapping searcher); results are turned into
the contract JSON (and the command's text) by kb/present.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from kb.config import Settings
from kb.embed import Encoder, load_encoder
from kb.index import BuildReport, IndexHandle, KnowledgeIndex, build_index
from kb.search import SearchOptions, SearchResult, Searcher
from kb.segment import Segmenter

_SEGMENTER = Segmenter()


def shared_segmenter() -> Segmenter:
    """Return the process-wide segmenter (jieba's dictionary is loaded once)."""
    return _SEGMENTER


class KnowledgeBase:
    """Settings-bound facade: build, search, read documents; follows newly published builds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.segmenter = shared_segmenter()
        self._encoder: Encoder | None = None
        self._encoder_lock = threading.Lock()
        self._milvus = None
        if settings.backend == "milvus":  # the build the Milvus alias names (kb/backends/milvus.py)
            from kb.backends.milvus import MilvusIndexHandle

            self.handle = MilvusIndexHandle(Path(settings.index_dir), self.encoder_id(), self.milvus())
        else:
            self.handle = IndexHandle(Path(settings.index_dir), self.encoder_id())
        self._searcher: tuple[KnowledgeIndex, Searcher] | None = None

    def milvus(self):
        """Return the Milvus client of the settings (milvus-lite file inside the index folder by default)."""
        if self._milvus is None:
            from kb.backends import milvus

            uri = self.settings.milvus_uri or milvus.default_uri(Path(self.settings.index_dir))
            self._milvus = milvus.client(uri, self.settings.milvus_token)
        return self._milvus

    def backend_for(self, index: KnowledgeIndex):
        """Return the channel backend for a loaded build (None = the embedded one the searcher makes)."""
        if self.settings.backend != "milvus":
            return None
        from kb.backends.milvus import MilvusBackend

        return MilvusBackend(self.milvus(), index, self.encoder(),
                             lexical_candidates=self.settings.milvus_lexical_candidates,
                             replicas=self.settings.milvus_replicas)

    def encoder_id(self) -> str | None:
        """Return the configured encoder's id without loading its weights (None when dense is off)."""
        if not self.settings.dense:
            return None
        return self.encoder().model_id

    def encoder(self) -> Encoder | None:
        """Return the configured encoder (weights load lazily on first use), or None when dense is off."""
        if not self.settings.dense:
            return None
        if self._encoder is None:
            with self._encoder_lock:
                if self._encoder is None:
                    self._encoder = load_encoder(self.settings.model)
        return self._encoder

    def build(self, *, force: bool = False, progress: Callable[[str, int, int], None] | None = None) -> BuildReport:
        """Build or update the index from the configured corpora."""
        from kb import roles

        report = build_index(list(self.settings.corpus_dirs), Path(self.settings.index_dir), self.encoder(),
                             self.segmenter, force=force, progress=progress,
                             annotate=roles.annotate_clause, annotator_version=roles.ROLES_VERSION)
        if self.settings.backend == "milvus":  # then the same build into a new collection, and the alias switch
            from kb.backends.milvus import publish_build

            on_batch = (lambda done, total: progress("milvus", done, total)) if progress else None
            publish_build(self.milvus(), Path(self.settings.index_dir), report.build_name, self.encoder_id(),
                          on_batch=on_batch, replicas=self.settings.milvus_replicas)
        return report

    def has_index(self) -> bool:
        """Return True when a build has been published."""
        from kb.index import read_current

        if self.settings.backend == "milvus":
            from kb.backends.milvus import build_of_alias

            return build_of_alias(self.milvus()) is not None
        return read_current(Path(self.settings.index_dir)) is not None

    def index(self) -> KnowledgeIndex:
        """Return the current published build (reloaded if a newer one was published)."""
        return self.handle.current()

    def searcher(self) -> Searcher:
        """Return a searcher over the current build."""
        index = self.handle.current()
        cached = self._searcher
        if cached is None or cached[0] is not index:
            cached = (index, Searcher(index, self.encoder(), self.segmenter, self.backend_for(index)))
            self._searcher = cached
        return cached[1]

    def search(self, query: str, options: SearchOptions = SearchOptions()) -> SearchResult:
        """Search the current build."""
        return self.searcher().search(query, options)
