"""Shared fixtures: the real bundled corpus, small real text from ../shared, a real index."""

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


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """A corpus folder holding copies of two real government work reports (read from ../shared)."""
    if not shared_available():
        pytest.skip("../shared/corpora is not present")
    folder = tmp_path_factory.mktemp("gwr")
    for name in ("gwr-2024.md", "gwr-2023.md"):
        shutil.copy(GWR / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, small_corpus):
    """A real index (jieba, bm25s, FAISS, SQLite, the bundled USE encoder) over corpus/ plus two reports."""
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
