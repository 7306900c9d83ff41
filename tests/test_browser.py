"""The site in a real browser: headless Debian Chromium driven by Selenium, against the app served by
waitress on a free loopback port over a real index (corpus/, plus two real reports from ../shared when present).

Searching and reading the cited clause, following a citation to the highlighted clause, keyboard-only
use of the search and eligibility forms, the admin upload with and without a token, the "复制引用"
button, no console errors, and a screenshot of each main page saved to tests/artifacts/screenshots/
for review. Skipped only when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import shutil
import time
from urllib.parse import quote, urlsplit

import pytest

from kb.config import Settings
from kb.service import KnowledgeBase

from browser_util import LiveServer, make_driver, require_browser, screenshot, site_app

QUESTION = "国家级专精特新小巨人企业到2025年要培育多少家"
SEED_ID = "lianyungang-zjtx-plan-interpretation"
ADMIN_TOKEN = "browser-test-admin-token-51e0"
# 虚构示例: a made-up notice for the upload test; no real organ or policy.
UPLOAD_TITLE = "虚构示例市浏览器测试企业扶持办法"
UPLOAD_TEXT = (f"{UPLOAD_TITLE}\n\n第一条 本办法为虚构示例，仅用于浏览器测试，内容不真实。\n\n"
               "第二条 虚构示例市对认定的创新型中小企业给予一次性奖励。\n\n虚构示例市工业和信息化局\n2024年5月1日\n")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    require_browser()
    driver = make_driver(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(request):
    """The site (every blueprint that exists, admin disabled: no token) on a real server."""
    require_browser()  # before the index is built: nothing to build when the browser is missing
    built_index = request.getfixturevalue("built_index")
    app = site_app(built_index.settings, built_index)
    with LiveServer(app) as server:
        server.app = app
        yield server


def wait_for(driver, condition, timeout: float = 15.0, what: str = "condition"):
    """Return condition(driver) once it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition(driver)
        except Exception:  # the element may not exist yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} on {driver.current_url}")
        time.sleep(0.05)


def loaded(driver) -> None:
    wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete", what="page load")


def active(driver) -> dict:
    return driver.execute_script(
        "var e = document.activeElement; return {tag: e.tagName.toLowerCase(), id: e.id, name: e.name || '',"
        " type: e.type || '', text: (e.textContent || '').trim().slice(0, 30), checked: !!e.checked,"
        " cls: e.className || ''};")


def press(driver, *keys) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def tab_until(driver, predicate, limit: int = 60) -> list[dict]:
    """Press Tab until the focused element satisfies `predicate`; return the elements passed on the way."""
    from selenium.webdriver.common.keys import Keys

    seen = []
    for _ in range(limit):
        press(driver, Keys.TAB)
        focused = active(driver)
        seen.append(focused)
        if predicate(focused):
            return seen
    raise AssertionError(f"Tab never reached the element; focus went through {seen}")


def start_from_top(driver, path: str, site) -> None:
    """Load `path` with nothing focused, as a keyboard user arriving on the page."""
    driver.get(site.url(path))
    loaded(driver)
    # focus the document itself, so the next Tab goes to the first focusable element, as on arrival
    driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);"
                          "document.body.tabIndex = -1; document.body.focus(); document.body.removeAttribute('tabindex');")


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


# ---------------------------------------------------------------- search, cite, read


def test_search_and_read_the_cited_clause(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(site.url("/"))
    loaded(browser)
    field = browser.find_element(By.ID, "q")
    field.send_keys(QUESTION)
    field.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: "/search" in d.current_url and d.find_elements(By.CSS_SELECTOR, "li.result"),
             what="search results")
    first = browser.find_element(By.CSS_SELECTOR, "li.result blockquote.clause-text")
    assert "25家" in first.text
    assert browser.find_element(By.ID, "q").get_attribute("value") == QUESTION


def test_follow_a_citation_to_the_highlighted_clause(browser, site):
    from selenium.webdriver.common.by import By

    browser.get(site.url("/search?q=" + quote(QUESTION)))
    loaded(browser)
    link = browser.find_element(By.CSS_SELECTOR, "li.result a.goto")
    assert "在原文中查看" in link.text
    clause_id = urlsplit(link.get_attribute("href")).fragment
    link.click()
    wait_for(browser, lambda d: f"/doc/{SEED_ID}" in d.current_url, what="the document page")
    loaded(browser)
    assert browser.execute_script("return location.hash") == f"#{clause_id}"
    section = browser.find_element(By.ID, clause_id)
    assert "25家" in section.text
    other = browser.execute_script(
        "return Array.from(document.querySelectorAll('section.clause')).find(s => s.id !== arguments[0]);", clause_id)
    colour = browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor;", section)
    plain = browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor;", other)
    assert colour != plain, f"the cited clause is not highlighted ({colour} vs {plain})"
    top, height = browser.execute_script(
        "var r = arguments[0].getBoundingClientRect(); return [r.top, window.innerHeight];", section)
    assert 0 <= top < height, f"the cited clause is not scrolled into view (top {top}, viewport {height})"
    assert browser.execute_script("return window.scrollY") > 0


def test_copy_citation_button(browser, site):
    from selenium.webdriver.common.by import By

    try:  # let the page write (and this test read) the clipboard; headless may still refuse
        browser.execute_cdp_cmd("Browser.grantPermissions", {
            "origin": site.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    except Exception:
        pass
    browser.get(site.url("/search?q=" + quote(QUESTION)))
    loaded(browser)
    button = browser.find_element(By.CSS_SELECTOR, "li.result button.copy-cite")
    citation = button.get_attribute("data-cite")
    assert citation.startswith("《") and "25家" in citation
    assert button.text == "复制引用"
    button.click()
    wait_for(browser, lambda d: button.text == "已复制", timeout=5, what="the label 已复制")
    pasted = browser.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "if (!navigator.clipboard) { done(null); return; }"
        "navigator.clipboard.readText().then(done, function () { done(null); });")
    if pasted is not None:  # the clipboard was readable: it holds exactly the citation
        assert pasted == citation
    wait_for(browser, lambda d: button.text == "复制引用", timeout=5, what="the label to come back")


# ---------------------------------------------------------------- keyboard only


def test_keyboard_only_search(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(site.url("/"))
    loaded(browser)
    assert active(browser)["id"] == "q", "the search field should have the focus when the home page opens"
    start_from_top(browser, "/", site)
    path = tab_until(browser, lambda e: e["id"] == "q")
    assert path[0]["cls"] == "skip" and path[0]["tag"] == "a", f"the first Tab should reach the skip link: {path}"
    press(browser, QUESTION)
    press(browser, Keys.ENTER)
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "li.result"), what="search results")
    assert "25家" in browser.find_element(By.CSS_SELECTOR, "li.result blockquote.clause-text").text
    # and on from the results: Tab reaches the first citation link, Enter follows it
    browser.execute_script("document.body.tabIndex = -1; document.body.focus(); document.body.removeAttribute('tabindex');")
    tab_until(browser, lambda e: e["tag"] == "a" and "在原文中查看" in e["text"], limit=120)
    press(browser, Keys.ENTER)
    wait_for(browser, lambda d: f"/doc/{SEED_ID}" in d.current_url, what="the document page")


def test_keyboard_only_eligibility_form(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    if "eligibility.form" not in site.app.view_functions:
        pytest.skip("no /eligibility page (web/eligibility.py is not there)")
    start_from_top(browser, "/eligibility", site)
    tab_until(browser, lambda e: e["type"] == "checkbox" and e["name"] == "needs", limit=80)
    checkbox = active(browser)
    assert not checkbox["checked"]
    press(browser, Keys.SPACE)
    assert active(browser)["checked"], "Space did not check the focused need"
    tab_until(browser, lambda e: e["tag"] == "button" and e["type"] == "submit", limit=80)
    press(browser, Keys.ENTER)
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "article.eligibility-result"),
             what="the eligibility result")
    assert "可能适用的支持措施" in browser.find_element(By.TAG_NAME, "h1").text
    assert "needs=" + checkbox["id"].removeprefix("f-needs-") in browser.current_url


# ---------------------------------------------------------------- admin upload


def test_admin_is_404_without_a_token(browser, site):
    browser.get(site.url("/admin/"))
    loaded(browser)
    assert "未找到" in browser.title
    browser.get(site.url("/admin/upload"))
    assert "未找到" in browser.title


def test_admin_login_and_upload_preview(browser, built_index, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    # copies of the corpus and index, so nothing the admin pages could write lands in the repository
    corpora = []
    for n, folder in enumerate(built_index.settings.corpus_dirs):
        corpora.append(shutil.copytree(folder, tmp_path / f"corpus{n}"))
    index = shutil.copytree(built_index.settings.index_dir, tmp_path / "index")
    settings = Settings(corpus_dirs=tuple(corpora), index_dir=index, dense=False, admin_token=ADMIN_TOKEN)
    app = site_app(settings, KnowledgeBase(settings), KB_ADMIN_PENDING_DIR=str(tmp_path / "pending"))
    upload = tmp_path / "browser-upload.txt"
    upload.write_text(UPLOAD_TEXT, encoding="utf-8")
    corpus_before = {p.name for folder in settings.corpus_dirs for p in folder.iterdir()}
    with LiveServer(app) as server:
        browser.get(server.url("/admin/login"))
        loaded(browser)
        screenshot(browser, "admin-login")
        browser.get(server.url("/admin/"))
        loaded(browser)
        assert "/admin/login" in browser.current_url  # not logged in: the login form
        token = browser.find_element(By.ID, "token")
        token.send_keys("wrong-token" + Keys.ENTER)
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "p.error"), what="the wrong-token message")
        browser.find_element(By.ID, "token").send_keys(ADMIN_TOKEN + Keys.ENTER)
        wait_for(browser, lambda d: urlsplit(d.current_url).path == "/admin/", what="the admin overview")
        screenshot(browser, "admin")
        browser.get(server.url("/admin/upload"))
        loaded(browser)
        browser.find_element(By.ID, "files").send_keys(str(upload))
        browser.find_element(By.CSS_SELECTOR, "form.admin-form button[type=submit]").click()
        wait_for(browser, lambda d: "/admin/pending/" in d.current_url, what="the preview page")
        loaded(browser)
        page = browser.find_element(By.TAG_NAME, "main").text
        assert UPLOAD_TITLE in page and "browser-upload.txt" in page
        screenshot(browser, "admin-preview")
    # a preview writes nothing to the corpus
    assert {p.name for folder in settings.corpus_dirs for p in folder.iterdir()} == corpus_before


# ---------------------------------------------------------------- every main page


def test_screenshots_of_the_main_pages_without_console_errors(browser, site):
    pages = {"home": "/", "search": "/search?q=" + quote(QUESTION), "doc": f"/doc/{SEED_ID}", "docs": "/docs",
             "references": "/references", "not-found": "/doc/no-such-document"}
    if "eligibility.form" in site.app.view_functions:
        pages["eligibility"] = "/eligibility"
        pages["eligibility-result"] = "/eligibility/result?needs=financing&region=" + quote("江苏省连云港市")
    browser.get_log("browser")  # forget what earlier tests logged
    problems = {}
    for name, path in pages.items():
        browser.get(site.url(path))
        loaded(browser)
        time.sleep(0.2)
        assert browser.title.endswith("专精特新政策知识库"), (path, browser.title)
        errors = [e for e in console_errors(browser) if not (name == "not-found" and " 404 " in e)]
        if errors:
            problems[path] = errors
        shot = screenshot(browser, name)
        assert shot.stat().st_size > 5000
    assert problems == {}, problems
