"""Hostile corpus documents are rendered inert: clause text escaped (shown as text) on the document page, escaped
highlights on the search page, escaped metadata everywhere, and a Content-Security-Policy that forbids
inline script. Checked in the HTML the app returns (Flask test client) and in a real browser
(headless Debian Chromium through Selenium), where the payloads try to set window.__pwned, change
document.title or request /__beacon/*.

The documents below are MADE UP for this test (虚构示例): no real organ, number or policy.
"""

from __future__ import annotations

import re
import time

import pytest
from bs4 import BeautifulSoup

from kb.config import Settings
from kb.service import KnowledgeBase

from browser_util import CSP_PROBE_JS, DANGEROUS_DOM_JS, LiveServer, make_driver, require_browser, site_app

MARKER = "琉璃穹顶检测"  # a made-up phrase in every hostile clause, so a search finds them all
REF_TITLE = '虚构示例<img src=x onerror="window.__pwned=1">引用测试办法'

HOSTILE_DOC = f"""---
title: 虚构示例<script>window.__pwned=1;document.title="PWNED"</script>安全测试办法<img src=x onerror="window.__pwned=1">
issuer: 虚构示例机关<b onmouseover="window.__pwned=1">加粗</b>
doc_no: 虚〔2099〕1号"><svg onload="window.__pwned=1">
level: national
published: 2024-01-01
status: effective
source: javascript:window.__pwned=1
superseded_by: <script>window.__pwned=1</script>
note: 本文件为虚构示例，仅用于安全测试<iframe src="javascript:parent.__pwned=1"></iframe>
---

# 一、总则（虚构示例）

本文件为虚构示例，内容不真实。{MARKER}：脚本。<script>window.__pwned=1;document.title="PWNED";fetch("/__beacon/script")</script>

{MARKER} 事件处理：<img src="/__beacon/img" onerror="window.__pwned=1;document.title='PWNED'"> <svg onload="window.__pwned=1"><circle r="1"></circle></svg> <body onload="window.__pwned=1"> <details open ontoggle="window.__pwned=1">展开</details>

{MARKER} 框架：<iframe src="javascript:parent.__pwned=1"></iframe><iframe srcdoc="&lt;script&gt;parent.__pwned=1&lt;/script&gt;"></iframe><object data="/__beacon/object"></object><embed src="/__beacon/embed">

{MARKER} 样式：<style>body{{background:url("/__beacon/style")}}</style><div style="background:url('/__beacon/inline-style')">内联样式</div>

{MARKER} 链接：[点击这里](javascript:window.__pwned=1) [大小写](JaVaScRiPt:window.__pwned=1) [实体](java&#x09;script:window.__pwned=1) [编码](&#106;avascript:window.__pwned=1) [尖括号](<javascript:window.__pwned=1>) [数据](data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX19wd25lZD0xPC9zY3JpcHQ+) [带标题](/doc/refdoc "t" onmouseover="window.__pwned=1") <a href="javascript:window.__pwned=1" onclick="window.__pwned=1">HTML 链接</a> <javascript:window.__pwned=1> <http://127.0.0.1/"onmouseover="window.__pwned=1> [引用式链接][evil] ![图片](/__beacon/md-image) ![属性](x" onerror="window.__pwned=1)

{MARKER} 文件引用：《<script>window.__pwned=1</script>虚构示例文件》和《{REF_TITLE}》，以及[《虚构示例伪装标题》](javascript:window.__pwned=1)。

{MARKER} 表单：<form action="/__beacon/form"><button formaction="javascript:window.__pwned=1">提交</button></form><meta http-equiv="refresh" content="0;url=/__beacon/refresh"><base href="/__beacon/base/"><link rel="stylesheet" href="/__beacon/link.css"><math><mi xlink:href="javascript:window.__pwned=1">x</mi></math>

| {MARKER} | 表格 |
|---|---|
| <img src=x onerror="window.__pwned=1"> | [表格链接](javascript:window.__pwned=1) |

[evil]: javascript:window.__pwned=1
"""

REF_DOC = f"""---
title: {REF_TITLE}
issuer: 虚构示例机关
level: national
published: 2023
status: effective
---

第一条 本办法为虚构示例，仅供安全测试引用。{MARKER}。
"""

URL_ATTRS = ("href", "src", "action", "formaction", "data", "poster", "background", "xlink:href", "srcdoc")
FORBIDDEN_TAGS = ("script", "iframe", "frame", "frameset", "object", "embed", "svg", "math", "style", "base",
                  "applet")


@pytest.fixture(scope="module")
def hostile_kb(tmp_path_factory) -> KnowledgeBase:
    root = tmp_path_factory.mktemp("hostile")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "hostile.md").write_text(HOSTILE_DOC, encoding="utf-8")
    (corpus / "refdoc.md").write_text(REF_DOC, encoding="utf-8")
    kb = KnowledgeBase(Settings(corpus_dirs=(corpus,), index_dir=root / "index", dense=False))
    kb.build()
    return kb


@pytest.fixture(scope="module")
def hostile_app(hostile_kb):
    return site_app(hostile_kb.settings, hostile_kb)


def dangerous_html(html: str) -> list[str]:
    """Return what in a page could run script, load a resource the page did not choose, or navigate to
    a script URL: forbidden tags, on* / style / srcdoc attributes, script: and data: URLs, /__beacon."""
    soup = BeautifulSoup(html, "lxml")
    found = []
    for tag in soup.find_all(True):
        name = tag.name.lower()
        if name in FORBIDDEN_TAGS and not (name == "script" and _own_script(tag)):
            found.append(f"<{name}>")
        if name in ("meta", "link") and tag.find_parent("main") is not None:
            found.append(f"<{name}> in main")
        for attr, value in tag.attrs.items():
            attr = attr.lower()
            text = " ".join(value) if isinstance(value, list) else str(value)
            squeezed = re.sub(r"\s+", "", text).lower()
            if attr.startswith("on") or attr in ("style", "srcdoc", "formaction"):
                found.append(f"<{name} {attr}>")
            if attr in URL_ATTRS and (squeezed.startswith(("javascript:", "vbscript:", "data:"))
                                      or "__beacon" in squeezed):
                found.append(f"<{name} {attr}={text[:40]!r}>")
    return found


def _own_script(tag) -> bool:
    return bool(tag.get("src", "").startswith("/static/")) and not tag.get_text(strip=True)


def test_document_page_is_inert(hostile_app):
    client = hostile_app.test_client()
    html = client.get("/doc/hostile").get_data(as_text=True)
    assert MARKER in html and "内联样式" in html  # the text is there, only the markup is gone
    assert dangerous_html(html) == []
    # metadata and title are shown as text, escaped
    soup = BeautifulSoup(html, "lxml")
    assert "<script>" in soup.find("h1").get_text()
    assert 'onmouseover="window.__pwned=1"' in soup.find("dl", class_="docmeta").get_text()
    # a resolved 《reference》 whose title holds HTML becomes a link with the HTML removed
    links = [a for a in soup.select(".body a[href]") if a["href"] == "/doc/refdoc"]
    assert links and all(not a.find_all(True) for a in links)


def test_search_page_escapes_hits_and_query(hostile_app):
    client = hostile_app.test_client()
    query = f'{MARKER} <img src=x onerror="window.__pwned=1"> <script>'
    r = client.get("/search", query_string={"q": query, "k": 30})
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    soup = BeautifulSoup(html, "lxml")
    hits = soup.select("li.result")
    assert len(hits) >= 6, "the hostile clauses should be found"
    assert dangerous_html(html) == []
    for mark in soup.select("blockquote.clause-text *"):
        assert mark.name == "mark" and not mark.attrs, mark  # highlights are the only markup
    # the payloads are visible as text (escaped), so a reader sees exactly what the source says
    texts = " ".join(b.get_text() for b in soup.select("blockquote.clause-text"))
    assert "<script>" in texts and 'onerror="window.__pwned=1"' in texts
    assert soup.find("input", id="q")["value"] == query


@pytest.mark.parametrize("path", ["/docs", "/references", "/docs?sort=title", "/api/search?q=" + MARKER])
def test_listing_pages_and_api_are_inert(hostile_app, path):
    r = hostile_app.test_client().get(path)
    assert r.status_code == 200
    if path.startswith("/api/"):
        assert r.mimetype == "application/json"  # data, never rendered as a page
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert any("<script>" in hit["text"] for hit in r.get_json()["results"])
    else:
        html = r.get_data(as_text=True)
        assert "虚构示例" in html
        assert dangerous_html(html) == []


@pytest.mark.parametrize("path", ["/", "/search?q=" + MARKER, "/doc/hostile", "/docs", "/references",
                                  "/doc/no-such-doc", "/api/search?q=", "/search?q="])
def test_every_response_carries_a_strict_csp(hostile_app, path):
    r = hostile_app.test_client().get(path)
    policy = r.headers.get("Content-Security-Policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    script = directives.get("script-src", directives.get("default-src"))
    assert script == ["'self'"], policy  # no 'unsafe-inline', no 'unsafe-eval', no other host
    assert directives.get("object-src") == ["'none'"] and directives.get("base-uri") == ["'none'"]
    assert directives.get("frame-src", directives.get("child-src")) == ["'none'"]
    assert "'unsafe-inline'" not in directives.get("style-src", directives.get("default-src", []))


def test_hostile_document_in_a_real_browser(hostile_app, tmp_path):
    require_browser()
    from selenium.webdriver.common.by import By

    with LiveServer(hostile_app) as server:
        driver = make_driver(tmp_path / "profile")
        try:
            pages = [
                "/search?" + _qs(q=f'{MARKER} <img src=x onerror="window.__pwned=1">', k="30"),
                "/doc/hostile?hl=c1-p1#c1-p1",
                "/doc/refdoc",
                "/docs",
            ]
            for path in pages:
                driver.get(server.url(path))
                _settle(driver)
                _assert_untouched(driver, server, path)
                assert driver.execute_script(DANGEROUS_DOM_JS) == [], path
                assert driver.execute_script(CSP_PROBE_JS) is False, f"{path}: inline script ran (no CSP?)"
            # click every link inside the rendered clauses that stays on the site (or has no href left): none may
            # run script
            driver.get(server.url("/doc/hostile"))
            _settle(driver)
            links = driver.find_elements(By.CSS_SELECTOR, ".body section a:not(.permalink)")
            count = len(links)
            # clause text is shown as text: the only links are the ones the page makes for 《titles》 it has
            assert count >= 1 and all(link.text.startswith("《") for link in links), [link.text for link in links]
            for i in range(count):
                link = driver.find_elements(By.CSS_SELECTOR, ".body section a:not(.permalink)")[i]
                href = link.get_attribute("href")
                if href and not href.startswith(server.base):
                    assert href.startswith(("http://", "https://")), href  # an outside link: not followed
                    continue
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", link)
                link.click()
                _settle(driver)
                _assert_untouched(driver, server, f"after clicking link {i}")
                assert driver.current_url.startswith(server.base), driver.current_url
                if "/doc/hostile" not in driver.current_url:
                    driver.get(server.url("/doc/hostile"))
                    _settle(driver)
        finally:
            driver.quit()


def _qs(**params) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def _settle(driver) -> None:
    """Wait until the page has loaded and anything it scheduled (onload, timers, fetch) had a chance to run."""
    deadline = time.monotonic() + 10
    while driver.execute_script("return document.readyState") != "complete" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)


def _assert_untouched(driver, server: LiveServer, where: str) -> None:
    assert driver.execute_script("return typeof window.__pwned") == "undefined", f"{where}: a payload ran"
    title = driver.execute_script("return document.title")
    assert title != "PWNED" and title.endswith("专精特新政策知识库"), f"{where}: title changed to {title!r}"
    beacons = [p for p in server.paths if "__beacon" in p]
    assert beacons == [], f"{where}: the page requested {beacons}"
