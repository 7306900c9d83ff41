"""Shared fixtures: the real bundled corpus, small real text from ../shared when present, a real index.

Without ../shared beside the checkout the index is built over corpus/ alone (the seed and the national
laws, all real documents); tests that need the shared government work reports are marked
`needs_reports` and skip with that reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = ROOT / "corpus"
SEED_DOC = CORPUS / "lianyungang-zjtx-plan-interpretation.md"
GWR = SHARED / "corpora" / "gov-work-reports"


def shared_available() -> bool:
    return GWR.is_dir()


needs_reports = pytest.mark.skipif(not shared_available(),
                                   reason="needs the government work reports of ../shared/corpora")


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """A corpus folder with copies of two real government work reports from ../shared (empty without it)."""
    folder = tmp_path_factory.mktemp("gwr")
    if shared_available():
        for name in ("gwr-2024.md", "gwr-2023.md"):
            shutil.copy(GWR / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, small_corpus):
    """A real index (jieba, bm25s, FAISS, SQLite, the default encoder: e5) over corpus/ plus two reports if present."""
    from kb.config import Settings
    from kb.service import KnowledgeBase

    index_dir = tmp_path_factory.mktemp("index")
    settings = Settings(corpus_dirs=(CORPUS, small_corpus), index_dir=index_dir)
    kb = KnowledgeBase(settings)
    kb.build()
    return kb


@pytest.fixture()
def app(built_index):
    from web import create_app

    app = create_app(settings=built_index.settings, kb=built_index, test_config={"TESTING": True})
    return app


@pytest.fixture()
def client(app):
    return app.test_client()
