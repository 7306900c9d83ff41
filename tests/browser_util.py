"""Shared helpers for the tests that use a real server or a real browser: the site served by waitress
on a free loopback port in a thread (recording the paths it was asked for), the app with every
blueprint that exists, and headless Debian Chromium driven by Selenium (never downloading anything).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--lang=zh-CN")


def require_browser() -> None:
    """Skip the calling test when Chromium, its driver or Selenium is not installed (the only reason to skip)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            pytest.skip(f"{path} is missing (apt-get install chromium chromium-driver fonts-noto-cjk)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip('selenium is not installed (pip install -e ".[test]")')


def make_driver(profile_dir: Path, width: int = 1280, height: int = 900):
    """Return a headless Chromium WebDriver using the system chromium and chromedriver, with a fresh profile.

    SE_OFFLINE and the explicit driver path keep Selenium Manager from downloading a browser or driver.
    """
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages, for driver.get_log
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    return driver


def site_app(settings, kb, **config):
    """Return the Flask app (all blueprints, admin and eligibility included) in testing mode."""
    from web import create_app

    return create_app(settings=settings, kb=kb, test_config={"TESTING": True, **config})


class LiveServer:
    """A WSGI app served by waitress on 127.0.0.1 (free port) in a background thread; records request paths."""

    def __init__(self, app, threads: int = 4) -> None:
        from waitress.server import create_server

        self.paths: list[str] = []
        self._app = app
        logging.getLogger("waitress").setLevel(logging.ERROR)
        self.server = create_server(self._record, host="127.0.0.1", port=0, threads=threads, ident="kb-test")
        self.port = self.server.effective_port
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"waitress-{self.port}")

    def _record(self, environ, start_response):
        self.paths.append(environ.get("PATH_INFO", ""))
        return self._app(environ, start_response)

    def _run(self) -> None:
        try:
            self.server.run()
        except (OSError, ValueError):  # the socket map is torn down by stop()
            pass

    def url(self, path: str) -> str:
        return self.base + path

    def __enter__(self) -> "LiveServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        server = self.server
        server.task_dispatcher.shutdown(timeout=5)
        for channel in list(server._map.values()):
            channel.handle_close()
        self._thread.join(timeout=10)

    def __exit__(self, *exc) -> None:
        self.stop()


def screenshot(driver, name: str) -> Path:
    """Save a screenshot of the whole page (up to 5000 px tall) to tests/artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = driver.get_window_size()
    height = driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight);")
    driver.set_window_size(size["width"], min(max(int(height) + 40, size["height"]), 5000))
    path = SCREENSHOTS / f"{name}.png"
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(size["width"], size["height"])
    return path


# DOM checks for content that must have been made inert (used on pages showing hostile documents).
DANGEROUS_DOM_JS = r"""
var found = [];
var main = document.querySelector('main') || document.body;
main.querySelectorAll('script, iframe, frame, object, embed, svg, math, style, link, meta, base')
  .forEach(function (el) { found.push('<' + el.tagName.toLowerCase() + '>'); });
document.querySelectorAll('script').forEach(function (el) {
  if (!el.src || el.src.indexOf(location.origin + '/static/') !== 0 || el.textContent.trim()) found.push('script:' + el.src);
});
document.querySelectorAll('*').forEach(function (el) {
  for (var i = 0; i < el.attributes.length; i++) {
    var a = el.attributes[i], n = a.name.toLowerCase(), v = (a.value || '').replace(/\s+/g, '').toLowerCase();
    if (n.indexOf('on') === 0) found.push(el.tagName + '@' + n);
    if (n === 'style' || n === 'srcdoc' || n === 'formaction') found.push(el.tagName + '@' + n);
    if (['href', 'src', 'action', 'data', 'poster', 'background', 'xlink:href'].indexOf(n) >= 0 &&
        (v.indexOf('javascript:') === 0 || v.indexOf('data:') === 0 || v.indexOf('vbscript:') === 0 ||
         v.indexOf('__beacon') >= 0)) found.push(el.tagName + '@' + n + '=' + v.slice(0, 40));
  }
});
return found;
"""

# Inserts an inline script through the DOM: a page whose Content-Security-Policy forbids inline
# script leaves window.__csp_probe undefined.
CSP_PROBE_JS = r"""
var s = document.createElement('script');
s.textContent = 'window.__csp_probe = 1;';
document.head.appendChild(s);
return window.__csp_probe === 1;
"""
