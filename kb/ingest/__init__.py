"""Turn raw policy files (txt, html, docx, pdf, corpus md) into corpus documents (`kb add`).

Public API: `ingest_file`, `ingest_bytes`, `write_to_corpus`, `IngestResult`, `IngestError`.
"""

from __future__ import annotations

from kb.ingest.base import IngestError
from kb.ingest.pipeline import (
    DEFAULT_MAX_BYTES,
    OVERRIDE_KEYS,
    SUPPORTED_SUFFIXES,
    IngestResult,
    ingest_bytes,
    ingest_file,
    write_to_corpus,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "OVERRIDE_KEYS",
    "SUPPORTED_SUFFIXES",
    "IngestError",
    "IngestResult",
    "ingest_bytes",
    "ingest_file",
    "write_to_corpus",
]
