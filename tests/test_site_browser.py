"""The built site in a real browser: Debian's chromium, headless, driven by selenium through chromedriver, each page
opened from ``file://`` as a reader would. No page may log a console error (a missing file, a script error), a click
on a header must re-order the rows (numerically for a numeric column), and every link of the front page must load.

Skipped when chromium, chromedriver or selenium is missing, unless ``SMOOTHBENCH_REQUIRE_BROWSER`` is set (CI sets it
after installing the browser), where a missing browser fails instead: a skip there would pass a site nobody opened.
A screenshot of the front page goes to the test's tmp folder and, when ``SMOOTHBENCH_ARTEFACTS`` names a folder,
there too.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from benchmark.config.suite import snapshots
from benchmark.site.build import build_site
from tests.test_site import RESULTS, SUITE, cards

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
    "--window-size=1400,1000",
)


def _missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return "no chromium/chromedriver installed: apt-get install chromium chromium-driver"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed: pip install -e '.[dev]'"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_site(RESULTS, out, snapshots([SUITE]), cards)
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    why = _missing()
    if why:
        if os.environ.get("SMOOTHBENCH_REQUIRE_BROWSER"):
            pytest.fail(f"SMOOTHBENCH_REQUIRE_BROWSER is set, but {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")  # both paths given: selenium never tries to download one
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _errors(browser) -> list[str]:
    """The console errors logged since the last call (reading the log drains it)."""
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def _open(browser, url: str) -> None:
    """Load ``url`` and fail unless it is one of the site's pages (a missing file shows chromium's error page, titled
    with its URL and logging nothing), with a title, that logged no console error."""
    from selenium.webdriver.common.by import By

    browser.get(url)
    assert browser.find_elements(By.CSS_SELECTOR, 'meta[name="generator"][content="smoothbench site"]'), url
    assert browser.title and browser.title not in url, f"{url}: no title"
    errors = _errors(browser)
    assert not errors, f"{url}: {errors}"


def test_every_page_loads_without_console_errors_and_runs_its_script(browser, site, tmp_path):
    from selenium.webdriver.common.by import By

    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 10
    for page in pages:
        _open(browser, page.as_uri())
        for th in browser.find_elements(By.CSS_SELECTOR, "table.sortable th")[:1]:
            assert th.get_attribute("tabindex") == "0", f"{page.name}: site.js did not run"
    _open(browser, (site / "index.html").as_uri())
    shot = tmp_path / "front-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("SMOOTHBENCH_ARTEFACTS"):
        folder = Path(os.environ["SMOOTHBENCH_ARTEFACTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, folder / "site-front-page.png")


def _column(table, index: int) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        row.find_elements(By.TAG_NAME, "td")[index].get_attribute("data-sort")
        for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]


def test_a_header_click_reorders_the_rows_numerically(browser, site):
    from selenium.webdriver.common.by import By

    _open(browser, (site / "index.html").as_uri())
    table = browser.find_elements(By.CSS_SELECTOR, "table.sortable")[0]
    headers = table.find_elements(By.CSS_SELECTOR, "thead th")
    titles = [h.get_attribute("textContent") for h in headers]
    acr, fit = titles.index("ACR"), titles.index("fit s")
    before = [float(v) for v in _column(table, acr)]
    assert before == sorted(before, reverse=True) and len(set(before)) > 2  # the page lists ranked rows by ACR
    headers[acr].click()
    after = [float(v) for v in _column(table, acr)]
    assert after == sorted(before) and after != before
    assert headers[acr].get_attribute("aria-sort") == "ascending"
    headers[acr].click()
    assert [float(v) for v in _column(table, acr)] == before
    # fit seconds span 1 to 4 digits, so text order would differ; missing values (no fit) stay last
    headers[fit].click()
    values = _column(table, fit)
    known = [float(v) for v in values if v]
    assert known == sorted(known) and values == [*(v for v in values if v), *(v for v in values if not v)]
    assert not _errors(browser), "sorting logged a console error"


def test_every_link_of_the_front_page_loads(browser, site):
    from selenium.webdriver.common.by import By

    index = (site / "index.html").as_uri()
    _open(browser, index)
    links = sorted({a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href]")})
    assert len(links) > 20 and all(link.startswith("file://") for link in links)
    for link in links:
        _open(browser, link)
        url, _, fragment = link.partition("#")
        if fragment:
            assert browser.find_elements(By.ID, fragment), f"{link}: no element with id {fragment}"
