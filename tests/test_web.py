"""Pages and the JSON API against a real index."""

from __future__ import annotations

import re

QUESTION = "国家级专精特新小巨人企业到2025年要培育多少家"


def test_api_contract(client):
    r = client.get("/api/search", query_string={"q": QUESTION, "k": 5})
    assert r.status_code == 200
    data = r.get_json()
    assert data["query"] == QUESTION
    first = data["results"][0]
    for key in ("rank", "score", "doc_id", "title", "clause_id", "clause_path", "text", "url", "doc"):
        assert key in first
    assert first["rank"] == 1 and "企业25家" in first["text"]
    assert first["clause_path"] == ["二、主要内容", "2.拟定主要目标"]
    assert first["url"] == f"/doc/{first['doc_id']}#{first['clause_id']}"
    for key in ("issuer", "level", "status", "published"):
        assert key in first["doc"]
    assert len(data["results"]) <= 5
    assert data["confidence"] == "high"


def test_weak_and_refused_answers_say_so(client):
    data = client.get("/api/search", query_string={"q": "红烧肉怎么做才好吃"}).get_json()
    assert data["results"] == [] and data["confidence"] == "none" and data["message"]
    weak = "商铺租金太高能找谁反映"
    data = client.get("/api/search", query_string={"q": weak}).get_json()
    assert data["results"] and data["confidence"] == "low"
    page = client.get("/search", query_string={"q": weak}).get_data(as_text=True)
    assert "low-confidence" in page and "匹配较弱" in page


def test_url_lands_on_clause_anchor(client):
    first = client.get("/api/search", query_string={"q": QUESTION}).get_json()["results"][0]
    path, anchor = first["url"].split("#")
    page = client.get(path).get_data(as_text=True)
    section = re.search(rf'<section id="{anchor}"[^>]*>(.*?)</section>', page, re.S)
    assert section and "企业25家" in section.group(1)
    assert 'href="#c2-3-6"' in page  # outline links to 数字技术赋能工程


def test_search_page_highlights_and_links(client):
    page = client.get("/search", query_string={"q": QUESTION}).get_data(as_text=True)
    assert "<mark>小巨人</mark>" in page and "25家" in page
    assert "二、主要内容 › 2.拟定主要目标" in page
    assert 'href="/doc/lianyungang-zjtx-plan-interpretation?hl=c2-2#c2-2"' in page
    assert "政策解读" in page  # status label


def test_home_page(client):
    page = client.get("/").get_data(as_text=True)
    assert '<form class="search"' in page and 'name="q"' in page


def test_api_errors_are_json_4xx(client):
    for qs in ({"q": ""}, {"q": "x", "k": "0"}, {"q": "x", "k": "abc"}, {"q": "x", "k": "1000000000"}, {}):
        r = client.get("/api/search", query_string=qs)
        assert r.status_code == 400, qs
        assert set(r.get_json()["error"]) == {"code", "message"}
    r = client.get("/api/nothing-here")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"


def test_unknown_and_traversal_doc_ids_are_404(client):
    for path in ("/doc/nope", "/doc/..%2F..%2Fetc%2Fpasswd", "/doc/../../etc/passwd"):
        assert client.get(path).status_code == 404


def test_document_markdown_is_sanitised(tmp_path):
    from web.pages import render_clause_markdown

    html = str(render_clause_markdown('<script>alert(1)</script>[x](javascript:alert(1))<img src=x onerror=alert(1)>'))
    # shown as text (escaped), never as markup: no element, no link
    assert "<script" not in html and "<img" not in html and "<a" not in html and "href" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;[x](javascript:alert(1))" in html
    assert "<ol>" not in str(render_clause_markdown("1. 三大基本原则"))


def test_security_headers(client):
    r = client.get("/")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]


def test_about_page_renders_the_projects_markdown(client):
    """/about is web/content/about.md rendered with markdown and sanitised with nh3 (the project's own text)."""
    r = client.get("/about")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert "<h1>关于本知识库</h1>" in page and "<h2>效力与版本</h2>" in page
    assert '<a href="/docs">文件列表</a>' in page  # Markdown links rendered
    assert "<strong>原文条款</strong>" in page
    assert "**" not in page and "](/" not in page  # no raw Markdown left
    home = client.get("/").get_data(as_text=True)
    assert 'href="/about"' in home


def test_about_markdown_is_sanitised(tmp_path, monkeypatch):
    """Even the project's own page goes through the sanitiser: a script or handler in the file stays inert."""
    from web import pages

    fake = tmp_path / "about.md"
    fake.write_text("# 标题\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror=alert(1)>\n",
                    encoding="utf-8")
    monkeypatch.setattr(pages, "ABOUT_PAGE", fake)
    pages.about_html.cache_clear()
    try:
        html = str(pages.about_html())
    finally:
        pages.about_html.cache_clear()
    assert "<h1>标题</h1>" in html
    assert "<script" not in html and "javascript:" not in html and "onerror" not in html and "<img" not in html


def test_the_same_article_of_two_versions_is_listed_once(client):
    """保障中小企业款项支付条例 2020 and 2025 (real, bundled) share 第三条 word for word: the version in
    force is the result, the outdated one is named under it (API, page)."""
    data = client.get("/api/search", query_string={"q": "本条例所称中小企业 大型企业 企业规模类型", "k": 10}).get_json()
    ids = [r["doc_id"] for r in data["results"]]
    first = next(r for r in data["results"] if r["doc_id"].startswith("baozhang-zhongxiaoqiye"))
    assert first["doc_id"].endswith("2025") and first["validity"]["code"] == "effective"
    assert [(a["doc_id"], a["validity"]["code"]) for a in first["also_in"]] == [
        ("baozhang-zhongxiaoqiye-kuanxiang-zhifu-tiaoli-2020", "superseded")]
    assert first["also_in"][0]["url"] not in [r["url"] for r in data["results"]]
    assert len(ids) == len(data["results"])
    page = client.get("/search", query_string={"q": "本条例所称中小企业 大型企业 企业规模类型"}).get_data(as_text=True)
    assert "同一条文亦见于" in page and "/doc/baozhang-zhongxiaoqiye-kuanxiang-zhifu-tiaoli-2020" in page
