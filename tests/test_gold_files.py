"""Every gold file in tests/data names real text: each gold string occurs (NFKC) in a document of corpus/ whose
title contains the gold's title (a question without a title may be about the government work reports of
../shared/corpora: checked against those too when they are present). Checks the files' integrity only; no
ranking is computed here."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.corpus import read_corpus
from kb.evaluation import load_gold
from kb.text import nfkc
from conftest import CORPUS, SHARED, shared_available

DATA = Path(__file__).parent / "data"
GOLD_FILES = sorted(p for p in DATA.glob("*.jsonl") if p.name not in ("nonsense.jsonl", "labelled_clauses.jsonl"))


@pytest.fixture(scope="module")
def bodies() -> list[tuple[str, str]]:
    return [(nfkc(d.title), nfkc(d.body)) for d in read_corpus([CORPUS])]


@pytest.fixture(scope="module")
def report_bodies() -> list[str]:
    if not shared_available():
        return []
    return [nfkc(d.body) for d in read_corpus(sorted(p for p in (SHARED / "corpora").iterdir() if p.is_dir()))]


@pytest.mark.parametrize("path", GOLD_FILES, ids=lambda p: p.name)
def test_every_gold_string_is_in_the_named_document(path, bodies, report_bodies):
    missing = []
    for n, q in enumerate(load_gold(path), start=1):
        assert q["query"].strip() and q["gold"], f"{path.name}: question {n} needs a query and gold strings"
        title = nfkc(q.get("title", ""))
        texts = [body for t, body in bodies if title in t]
        assert texts, f"{path.name}: question {n}: no document of corpus/ is titled like {q.get('title')!r}"
        if not title:
            if not report_bodies:
                continue  # possibly about the reports, which are absent here
            texts = texts + report_bodies
        if not any(nfkc(g) in body for g in q["gold"] for body in texts):
            missing.append(n)
    assert not missing, f"{path.name}: questions {missing} have no gold string in the named document"
