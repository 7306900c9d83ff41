"""The web layer's request-scoped knowledge base and its app-level error handlers: one build per request
(even when a rebuild publishes mid-request), the `validity` global reading the pinned build, and the
503 / 400 answers in JSON for /api/* and HTML elsewhere. Runs on the bundled corpus/ alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb.config import Settings
from kb.service import KnowledgeBase

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
PROFILE = {"region": "江苏省连云港市", "industry": "制造业", "employees": 120}


def _app(kb: KnowledgeBase):
    from web import create_app

    return create_app(settings=kb.settings, kb=kb, test_config={"TESTING": True, "KB_TODAY": "2025-06-01"})


@pytest.fixture(scope="module")
def lexical_kb(tmp_path_factory) -> KnowledgeBase:
    """A lexical-only build of the bundled corpus (the encoder plays no part in what is tested here)."""
    settings = Settings(corpus_dirs=(CORPUS,), index_dir=tmp_path_factory.mktemp("request") / "index", dense=False)
    kb = KnowledgeBase(settings)
    kb.build()
    return kb


def _record_builds(monkeypatch, on_first=None) -> list[str]:
    """Record the build every validity judgement reads; call `on_first` at the first one."""
    from kb.search import Searcher

    seen: list[str] = []
    real = Searcher.validity

    def validity(self, doc, *args, **kwargs):
        seen.append(self.index.build_dir.name)
        if len(seen) == 1 and on_first:
            on_first()
        return real(self, doc, *args, **kwargs)

    monkeypatch.setattr(Searcher, "validity", validity)
    return seen


@pytest.mark.parametrize("path", ["/docs", "/search?q=专精特新中小企业&k=10", "/api/search?q=专精特新中小企业&k=10"])
def test_one_request_reads_one_build_while_a_rebuild_publishes(lexical_kb, monkeypatch, path):
    from kb.index import read_current

    index_dir = Path(lexical_kb.settings.index_dir)
    before = read_current(index_dir)
    seen = _record_builds(monkeypatch, on_first=lambda: lexical_kb.build(force=True))
    client = _app(lexical_kb).test_client()
    r = client.get(path)
    assert r.status_code == 200
    after = read_current(index_dir)
    assert after != before  # the rebuild did publish in the middle of the request
    assert len(seen) >= 2 and set(seen) == {before}  # yet every hit of that request was judged on one build
    seen.clear()
    assert client.get(path).status_code == 200
    assert seen and set(seen) == {after}  # and the next request reads the new one


def test_validity_global_reads_the_pinned_build_not_current_per_hit(lexical_kb, monkeypatch):
    import kb.index
    from flask import render_template_string

    reads = []
    real = kb.index.read_current
    monkeypatch.setattr(kb.index, "read_current", lambda folder: reads.append(folder) or real(folder))
    app = _app(lexical_kb)
    docs = lexical_kb.index().documents[:8]
    with app.test_request_context("/docs?as_of=2024-01-01"):
        reads.clear()
        html = render_template_string("{% for d in docs %}[{{ validity(d).label }}]{% endfor %}", docs=docs)
        assert html.count("[") == len(docs) == 8
        assert len(reads) == 1  # one look at CURRENT for the request, not one per document
    reads.clear()
    r = app.test_client().get("/docs")
    assert r.status_code == 200 and r.get_data(as_text=True).count('class="badge validity-') >= len(docs)
    assert len(reads) == 1


def test_validity_global_judges_on_the_request_date(lexical_kb):
    from datetime import date

    from flask import render_template_string

    app = _app(lexical_kb)  # KB_TODAY 2025-06-01 unless the request says as_of
    searcher = lexical_kb.searcher()
    early, today = date(2000, 1, 1), date(2025, 6, 1)
    docs = [d for d in searcher.index.documents
            if searcher.validity(d, early).label != searcher.validity(d, today).label]
    assert docs, "the bundled corpus has documents not yet issued in 2000"
    for url, day in ((f"/docs?as_of={early.isoformat()}", early), ("/docs", today)):
        with app.test_request_context(url):
            labels = render_template_string("{% for d in docs %}{{ validity(d).label }}|{% endfor %}", docs=docs)
        assert labels.split("|")[:-1] == [searcher.validity(d, day).label for d in docs]


# --- app-level errors: index missing or mismatched → 503, bad query → 400 ---------------------------------------

@pytest.fixture()
def no_index_client(tmp_path):
    kb = KnowledgeBase(Settings(corpus_dirs=(CORPUS,), index_dir=tmp_path / "index", dense=False))
    return _app(kb).test_client()


@pytest.fixture()
def damaged_index_client(tmp_path, lexical_kb):
    import shutil

    from kb.index import read_current

    index_dir = tmp_path / "index"
    shutil.copytree(lexical_kb.settings.index_dir, index_dir)
    (index_dir / "builds" / read_current(index_dir) / "manifest.json").write_text("{not json", encoding="utf-8")
    kb = KnowledgeBase(Settings(corpus_dirs=(CORPUS,), index_dir=index_dir, dense=False))
    return _app(kb).test_client()


API_NEEDING_INDEX = [("get", "/api/search?q=专精特新", None), ("get", "/api/doc/some-doc/changes", None),
                     ("post", "/api/eligibility", PROFILE)]
PAGES_NEEDING_INDEX = ["/search?q=专精特新", "/docs", "/references", "/doc/some-doc", "/doc/some-doc/changes",
                       "/eligibility/result?region=江苏省连云港市&industry=制造业"]


@pytest.mark.parametrize("which", ["no_index_client", "damaged_index_client"])
def test_unavailable_index_is_503_json_for_the_api(request, which):
    client = request.getfixturevalue(which)
    for method, path, body in API_NEEDING_INDEX:
        r = getattr(client, method)(path, **({"json": body} if body else {}))
        assert r.status_code == 503, path
        assert r.mimetype == "application/json"
        error = r.get_json()["error"]
        assert error["code"] == "index_unavailable" and set(error) == {"code", "message"}
        assert ("kb build" in error["message"]), error


@pytest.mark.parametrize("which", ["no_index_client", "damaged_index_client"])
def test_unavailable_index_is_503_html_for_pages(request, which):
    client = request.getfixturevalue(which)
    for path in PAGES_NEEDING_INDEX:
        r = client.get(path)
        assert r.status_code == 503, path
        assert r.mimetype == "text/html"
        html = r.get_data(as_text=True)
        assert "索引暂不可用" in html and "kb build" in html and "Traceback" not in html
    assert client.get("/eligibility").status_code == 200  # the form itself needs no index


def test_bad_query_is_400_json_for_the_api(lexical_kb):
    client = _app(lexical_kb).test_client()
    for path in ("/api/search?q=x&mode=sideways", "/api/search?q=x&as_of=2024-13-01", "/api/search?q=x&year_to=abc",
                 "/api/search?q=x&k=0"):
        r = client.get(path)
        assert r.status_code == 400, path
        assert json.loads(r.get_data(as_text=True)) == {"error": {"code": "bad_query", "message": r.get_json()
                                                                  ["error"]["message"]}}
        assert r.get_json()["error"]["message"]


def test_bad_query_is_400_html_for_pages(lexical_kb):
    client = _app(lexical_kb).test_client()
    doc_id = lexical_kb.index().documents[0].doc_id
    for path, words in (("/docs?year_from=abc", "year_from"), (f"/doc/{doc_id}?as_of=2024-02-30", "as_of"),
                        ("/docs?as_of=yesterday", "as_of")):
        r = client.get(path)
        assert r.status_code == 400, path
        assert r.mimetype == "text/html"
        html = r.get_data(as_text=True)
        assert 'class="error"' in html and words in html and "Traceback" not in html


def test_http_errors_follow_the_same_choice(lexical_kb):
    client = _app(lexical_kb).test_client()
    r = client.get("/api/no-such-thing")
    assert r.status_code == 404 and r.get_json() == {"error": {"code": "not_found", "message": "no such resource"}}
    r = client.post("/api/search?q=x")
    assert r.status_code == 405 and r.get_json()["error"]["code"] == "method_not_allowed"
    r = client.get("/no-such-page")
    assert r.status_code == 404 and r.mimetype == "text/html" and "未找到" in r.get_data(as_text=True)


def test_admin_json_errors_share_the_one_shape(tmp_path):
    import secrets

    token = secrets.token_urlsafe(32)
    kb = KnowledgeBase(Settings(corpus_dirs=(tmp_path / "corpus",), index_dir=tmp_path / "index", dense=False,
                                admin_token=token))
    client = _app(kb).test_client()
    r = client.get("/admin/build/status.json")
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    assert set(r.get_json()["error"]) == {"code", "message"}
    r = client.post("/admin/upload", headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["code"] == "upload_refused" and error["problems"] and error["message"] == " ".join(error["problems"])
    r = client.get("/admin/documents", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.mimetype == "text/html"  # no index yet: the page says so instead of failing
    assert "索引暂不可用" in r.get_data(as_text=True)
