"""The built book in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium, with the network blocked for the page.

The session's site (tests/book_site.py) is served from 127.0.0.1; every other host resolves
to nothing and any proxied request goes to a closed port. For the index and every page of the
table of contents the test asserts: no request left 127.0.0.1, no request failed (network
error or HTTP status >= 400), no console error, every image has a natural width > 0, the
equations are typeset by MathJax (each ``.math`` element holds an ``mjx-container``, no raw
``$$`` in the text), and the scorecard table has one row per claim (or not-run notebook).
A full-page screenshot of each page is saved in the test's output folder,
``outputs/tests/browser/`` (``$KC_TEST_OUTPUTS/browser/`` when that is set).

By default the site is the session's smoke book. ``KC_BROWSER_BOOK=1`` checks the book that
``make book`` or ``make site`` built in this repository instead (``_build/html``, made from the
published results ``book/published/small/``; CI does this after the suite)::

    KC_BROWSER_BOOK=1 .venv/bin/python -m pytest -q tests/test_browser.py
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from kc.book import pages as book
from tests.book_site import ROOT, Site, built_site

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
LOCAL = "127.0.0.1"


#: Width of the browser window and of every screenshot (pixels).
WINDOW_WIDTH = 1280
#: Tallest screenshot taken (pixels); longer pages are cut there.
MAX_SHOT_HEIGHT = 12000


def _skip_reason() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.is_file() or not Path(CHROMEDRIVER).is_file():
        return (
            "Debian's chromium and chromium-driver are not installed (make setup installs them "
            "where apt-get is usable as root)"
        )
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Site:
    if os.environ.get("KC_BROWSER_BOOK"):  # the repository's own book, as `make book` left it
        from kc.run.results import results_dir

        made = Site(ROOT, results_dir(os.environ.get("KC_BROWSER_PROFILE", "small")), 0, {})
        if not (made.html / "index.html").is_file():
            pytest.fail(f"KC_BROWSER_BOOK is set but {made.html} has no index.html: run make book")
        return made
    # the smoke tree only when it is needed: KC_BROWSER_BOOK checks a book without building it
    built = built_site(request.getfixturevalue("smoke_tree"), tmp_path_factory.mktemp("site"))
    if built.code != 0:
        pytest.fail("the book did not build; see tests/test_book.py")
    return built


@pytest.fixture(scope="session")
def server(site: Site) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(site.html))
    httpd = http.server.ThreadingHTTPServer((LOCAL, 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://{LOCAL}:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kc-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW_WIDTH},1000",
        # no network but the local server: other hosts do not resolve, and a proxied
        # request would go to a closed port (loopback bypasses the proxy)
        f"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {LOCAL}",
        f"--proxy-server=http://{LOCAL}:9",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    driver.execute_cdp_cmd("Network.enable", {})
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _pages(site: Site) -> list[str]:
    """index.html and the HTML page of every file of the table of contents."""
    files: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    toc = book.toc()
    files.append(toc["root"])
    walk(toc["parts"])
    return ["index.html", *[f"{f}.html" for f in files]]


_WAIT_JS = """
const done = arguments[arguments.length - 1];
document.querySelectorAll('img').forEach(img => { img.loading = 'eager'; });
const images = Promise.all(Array.from(document.images).map(img => img.complete ? null :
    new Promise(r => { img.onload = r; img.onerror = r; })));
const math = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
Promise.all([images, math]).then(() => done(true), e => done(String(e)));
"""

_CHECK_JS = """
const body = document.body.cloneNode(true);
body.querySelectorAll('pre, code, script, style, textarea').forEach(e => e.remove());
return {
  title: document.title,
  images: Array.from(document.images).map(i => [i.currentSrc || i.src, i.naturalWidth]),
  mathElements: document.querySelectorAll('.math').length,
  untypeset: Array.from(document.querySelectorAll('.math'))
      .filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60)),
  typeset: document.querySelectorAll('mjx-container').length,
  rawDollars: body.innerText.includes('$$'),
  scorecardRows: document.querySelectorAll('table tbody tr').length,
};
"""


def _network(entries: list[dict]) -> tuple[list[str], list[str]]:
    """(URLs requested, failures) from Chrome's performance log."""
    urls, failures, by_id = [], [], {}
    for entry in entries:
        message = json.loads(entry["message"])["message"]
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            by_id[params["requestId"]] = url
            urls.append(url)
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            failures.append(f"{by_id.get(params['requestId'], '?')}: {params.get('errorText')}")
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            failures.append(f"{params['response']['url']}: HTTP {params['response']['status']}")
    return urls, failures


def test_every_page_in_chromium(site: Site, server: str, browser) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    base = os.environ.get("KC_TEST_OUTPUTS") or ROOT / "outputs" / "tests"
    shots = Path(base) / "browser"
    if shots.exists():
        shutil.rmtree(shots)
    shots.mkdir(parents=True)
    browser.set_script_timeout(60)
    problems: list[str] = []
    checked: dict[str, dict] = {}
    for page in _pages(site):
        browser.get_log("performance")  # drop what an earlier page left
        browser.get(f"{server}/{page}")
        if page == "index.html":  # a redirect to the root page of the toc
            WebDriverWait(browser, 30).until(lambda d: d.current_url.endswith("intro.html"))
        WebDriverWait(browser, 30).until(
            lambda d: (
                d.execute_script("return document.readyState") == "complete"
                and d.execute_script("return document.body !== null")
            )
        )
        waited = browser.execute_async_script(_WAIT_JS)
        state = browser.execute_script(_CHECK_JS)
        urls, failures = _network(browser.get_log("performance"))
        errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        # the whole page, cut at MAX_SHOT_HEIGHT pixels: Chromium refuses larger captures
        # ("Page is too large"), which a long page such as the API reference exceeds
        # The viewport is made as tall as the page for the capture (captureBeyondViewport with a
        # clip drew pages holding a table wider than the article shifted to the left, which a
        # reader's browser does not show)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WINDOW_WIDTH, "height": min(height, MAX_SHOT_HEIGHT), "deviceScaleFactor": 1,
             "mobile": False},
        )  # fmt: skip
        try:
            shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        finally:
            browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        name = page.replace("/", "__").removesuffix(".html") + ".png"
        (shots / name).write_bytes(base64.b64decode(shot["data"]))
        checked[page] = state
        outside = [u for u in urls if urlparse(u).scheme in ("http", "https", "ws", "wss")]
        outside = [u for u in outside if urlparse(u).hostname != LOCAL]
        problems += [f"{page}: request to another host {u}" for u in outside]
        problems += [f"{page}: failed request {f}" for f in failures]
        problems += [f"{page}: console error {e}" for e in errors]
        if waited is not True:
            problems.append(f"{page}: waiting for images / MathJax gave {waited}")
        if "404" in state["title"] or not urls:
            problems.append(f"{page}: did not load ({state['title']!r})")
        problems += [
            f"{page}: image {src} has natural width 0" for src, w in state["images"] if w == 0
        ]
        if state["untypeset"] or state["rawDollars"]:
            problems.append(
                f"{page}: math not typeset {state['untypeset']} raw $$ {state['rawDollars']}"
            )
    assert not problems, "\n".join(problems)

    # the checks were not vacuous: pages with math and images were seen
    assert checked["book/intro.html"]["typeset"] > 0
    assert any(s["images"] for p, s in checked.items() if "00_toy_consistency" in p)
    rows = book.scorecard_rows(site.outputs)
    assert checked["book/results/scorecard.html"]["scorecardRows"] == len(rows)
    assert len(list(shots.glob("*.png"))) == len(_pages(site))
    print(f"screenshots: {shots}")
