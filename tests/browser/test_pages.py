"""The built HTML, seen in a real headless browser (Debian's chromium driven by Playwright).

Every page listed in ``_toc.yml`` must load, show its figures as real ``<img>`` elements backed
by non-empty PNG files, and show no error output, traceback or stderr stream. Pages with
formulas must show them typeset by the MathJax copy shipped in ``_static`` (no raw TeX). The
browser is offline: every request that does not go to the local test server is aborted. Where
chromium is
not installed the check is skipped with instructions, except in CI (``CI=true``), where a
missing browser fails.
"""

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from nnlearn.booktools import toc_slugs

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = [f"book/{slug}" for slug in toc_slugs(ROOT / "_toc.yml")]
NO_FIGURES = {"book/intro", "book/scorecard", "book/references"}


def _prose(md):  # the source without code blocks and inline code
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", md.read_text(), flags=re.DOTALL))


# Pages whose source has display or inline math ($...$, $$...$$, {math}): they must show typeset
# math.
MATH_PAGES = [p for p in PAGES if re.search(r"\$[^$\n]+\$|\{math\}", _prose(ROOT / f"{p}.md"))]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            "CI: chromium is not installed, so the browser check cannot run (.ci/run installs it)",
            pytrace=False,
        )
    pytest.skip(
        "browser check SKIPPED: no chromium found. Enable it with `sudo apt-get install chromium` "
        "(Debian) and rerun `make test`.",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").is_file():
        pytest.fail("_build/html is missing: build the book first (make book)", pytrace=False)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_page()
        pg.external_requests = []

        def offline(route):  # the book must work without a network: nothing leaves the local server
            url = route.request.url
            if url.startswith(("http://127.0.0.1:", "data:", "blob:", "about:")):
                route.continue_()
            else:
                pg.external_requests.append(url)
                route.abort()

        pg.route("**/*", offline)
        yield pg
        browser.close()


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_with_figures_and_no_errors(server, page, name):
    response = page.goto(f"{server}/{name}.html", wait_until="load")
    assert response is not None and response.ok, f"{name}.html did not load"
    assert page.locator("h1").count() >= 1, f"{name}: no title"
    text = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
    assert "Traceback (most recent call last)" not in text, f"{name}: shows a traceback"
    assert page.locator("div.output.traceback, div.output.error").count() == 0, (
        f"{name}: shows error output"
    )
    stderr = page.locator("div.output.stderr")
    assert stderr.count() == 0, f"{name}: shows stderr output: {stderr.first.inner_text()[:300]}"
    images = page.locator("main img")
    if name not in NO_FIGURES:
        assert images.count() >= 1, f"{name}: no figures"
    for i in range(images.count()):
        img = images.nth(i)
        src = img.get_attribute("src") or ""
        loaded = img.evaluate("e => e.complete && e.naturalWidth > 0 && e.naturalHeight > 0")
        assert loaded, f"{name}: image {src[:80]} did not render"
        if src.startswith("data:"):
            assert len(src) > 200, f"{name}: empty inline image"
        else:
            path = (HTML / name).parent / src.split("?")[0]
            assert path.resolve().is_file() and path.stat().st_size > 0, (
                f"{name}: image file {src} missing or empty"
            )
            if src.endswith(".png"):
                assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{name}: {src} is not a PNG"


@pytest.mark.parametrize("name", MATH_PAGES)
def test_math_is_typeset_offline(server, page, name):
    """Every formula is rendered by the bundled MathJax: no raw TeX, no request to a CDN."""
    page.external_requests.clear()
    response = page.goto(f"{server}/{name}.html", wait_until="load")
    assert response is not None and response.ok, f"{name}.html did not load"
    try:
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20_000
        )
    except Exception:
        pytest.fail(
            f"{name}: MathJax did not start offline (requests blocked: "
            f"{page.external_requests[:5]})",
            pytrace=False,
        )
    page.evaluate("() => MathJax.startup.promise")
    mathjax = [u for u in page.external_requests if "mathjax" in u.lower()]
    assert not mathjax, f"{name}: MathJax was requested from the network: {mathjax}"
    counts = page.evaluate("""() => {
        const math = [...document.querySelectorAll('main .math')];
        return {math: math.length,
                typeset: math.filter(e => e.querySelector('mjx-container')).length,
                containers: document.querySelectorAll('main mjx-container').length,
                errors: document.querySelectorAll('main mjx-merror').length};
    }""")
    assert counts["math"] >= 1 and counts["containers"] >= 1, f"{name}: no rendered math ({counts})"
    assert counts["typeset"] == counts["math"], f"{name}: some formulas were left as TeX ({counts})"
    assert counts["errors"] == 0, f"{name}: MathJax reports {counts['errors']} TeX errors"
    prose = page.evaluate("""() => {
        const main = document.querySelector('main').cloneNode(true);
        main.querySelectorAll('pre, code, mjx-container, mjx-assistive-mml, script, style')
            .forEach(e => e.remove());
        return main.textContent;
    }""")
    raw = [m for m in ("$$", "\\(", "\\)", "\\[", "\\]", "\\begin{", "\\frac") if m in prose]
    assert not raw, f"{name}: raw TeX left in the page text: {raw}"
