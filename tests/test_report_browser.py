"""The report in a real headless Chromium: no console errors, no network, hover tooltips, filters, screenshot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.browser import console_errors, headless_chromium, missing_reason, requested_urls
from support.synthetic import synthetic_results

from shiftlens.report import render_report

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=f"no headless browser: {missing_reason()}")


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module's tests."""
    with headless_chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def report_uri(tmp_path_factory) -> str:
    """A report of 20 synthetic examples (tricky token texts included) as a file:// URI."""
    path = render_report(synthetic_results(20, prompt_len=30, response_len=40), tmp_path_factory.mktemp("r") / "r.html")
    return path.resolve().as_uri()


def open_report(driver, uri: str) -> None:
    """Load the report fresh and wait until the explorer says it is ready (logs flushed before)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get("about:blank")
    requested_urls(driver), console_errors(driver)
    driver.get(uri)
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return window.__shiftlensReady !== undefined"))


def visible_items(driver) -> list:
    return [li for li in driver.find_elements("css selector", ".sl-list li") if li.is_displayed()]


def open_example(driver, index: int) -> str:
    """Click the index-th visible example and wait for its heatmaps; returns its id."""
    from selenium.webdriver.support.ui import WebDriverWait

    item = visible_items(driver)[index]
    example_id = item.find_element("css selector", ".sl-id").text
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", item)
    root = driver.find_element("css selector", ".sl-explorer-root")
    WebDriverWait(driver, 20).until(lambda d: root.get_attribute("data-drawn") == example_id)
    return example_id


def test_loads_offline_without_errors(browser, report_uri):
    open_report(browser, report_uri)
    requests = [u for u in requested_urls(browser) if not u.startswith("data:")]
    assert requests == [report_uri]
    assert console_errors(browser) == []
    assert len(visible_items(browser)) == 20
    assert browser.find_element("css selector", ".sl-count").text == "20 of 20 examples shown"


def test_group_and_rating_filters_and_search_reduce_the_list(browser, report_uri):
    from selenium.webdriver.support.ui import Select

    open_report(browser, report_uri)
    group = Select(browser.find_element("css selector", "select.sl-group"))
    group.select_by_value("lima")
    lima = visible_items(browser)
    assert 0 < len(lima) < 20
    assert all("lima" in li.text for li in lima)
    Select(browser.find_element("css selector", "select.sl-rating")).select_by_value("2")
    both = visible_items(browser)
    assert 0 < len(both) < len(lima)
    assert all("rating 2" in li.text for li in both)
    group.select_by_value("")
    Select(browser.find_element("css selector", "select.sl-rating")).select_by_value("")
    search = browser.find_element("css selector", "input.sl-search")
    search.send_keys("ex-0013")
    assert [li.find_element("css selector", ".sl-id").text for li in visible_items(browser)] == ["ex-0013"]
    search.clear()
    search.send_keys("no such text anywhere")
    assert visible_items(browser) == []
    assert console_errors(browser) == []


def hover_tooltip(driver, canvas, x: int, y: int) -> str:
    """Move the mouse to pixel (x, y) of a canvas and return the visible tooltip's text."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", canvas)
    width, height = canvas.size["width"], canvas.size["height"]
    ActionChains(driver).move_to_element_with_offset(canvas, x - width // 2, y - height // 2).perform()
    tooltip = driver.find_element("css selector", ".sl-tooltip")
    assert tooltip.is_displayed()
    return tooltip.text


def test_heatmap_hover_shows_value_tooltip_and_highlights_tokens(browser, report_uri):
    open_report(browser, report_uri)
    open_example(browser, 0)
    canvases = browser.find_elements("css selector", ".sl-map canvas")
    assert len(canvases) == 3  # base, tuned, tuned − base (same response in both runs)
    text = hover_tooltip(browser, canvases[0], 12, 3)
    assert re.search(r"base: level \d+ of 10", text), text
    assert "prompt" in text and "response" in text
    assert len(browser.find_elements("css selector", ".sl-tok.sl-hl")) == 2  # its row and column tokens
    diff = hover_tooltip(browser, canvases[2], 12, 3)
    assert re.search(r"tuned − base: [+-]\d+ \(base \d+, tuned \d+\)", diff), diff
    browser.execute_script("window.scrollTo(0, 0)")
    ARTIFACTS.mkdir(exist_ok=True)
    open_example(browser, 1)
    browser.execute_script("document.querySelector('#sl-examples').scrollIntoView()")
    browser.save_screenshot(str(ARTIFACTS / "report.png"))
    assert (ARTIFACTS / "report.png").stat().st_size > 0
    assert console_errors(browser) == []


def test_hostile_token_text_is_shown_as_text(browser, report_uri):
    open_report(browser, report_uri)
    open_example(browser, 0)  # ex-0000 carries markup-like tokens
    tokens = [t.get_attribute("textContent") for t in browser.find_elements("css selector", ".sl-tokens .sl-tok")]
    assert "</script><b>x</b>" in tokens
    assert browser.find_elements("css selector", ".sl-tokens b") == []
    assert console_errors(browser) == []


def test_different_responses_show_no_difference_map(browser, tmp_path):
    path = render_report(synthetic_results(3, 20, 30, seed=1, same_response=False), tmp_path / "r.html")
    open_report(browser, path.resolve().as_uri())
    open_example(browser, 0)
    assert len(browser.find_elements("css selector", ".sl-map canvas")) == 2
    assert "No cell-wise difference map" in browser.find_element("css selector", ".sl-detail").text
    assert console_errors(browser) == []


def test_notebook_snippets_work_side_by_side(browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait
    from support.synthetic import synthetic_records

    from shiftlens.report import ComparisonView, ExampleView

    base, tuned = synthetic_records(1, 10, 8)
    page = tmp_path / "notebook.html"
    cells = ExampleView(base[0], tuned[0])._repr_html_() + ComparisonView(synthetic_results(4, 10, 8))._repr_html_()
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{cells}</body></html>")
    browser.get("about:blank")
    console_errors(browser)
    browser.get(page.resolve().as_uri())
    roots = browser.find_elements("css selector", ".sl-explorer-root")
    assert len(roots) == 2
    WebDriverWait(browser, 20).until(lambda d: roots[0].get_attribute("data-drawn") == "ex-0000")
    assert roots[1].get_attribute("data-ready") == "1"
    assert roots[0].find_elements("css selector", ".sl-list") == []  # a single example: no list
    assert len(roots[0].find_elements("css selector", ".sl-map canvas")) == 3
    assert len(roots[1].find_elements("css selector", ".sl-list li")) == 4
    assert console_errors(browser) == []


def test_a_632_example_report_becomes_interactive_and_its_time_is_recorded(tmp_path):
    """The paper's run size (632 examples × 2 models, shorter texts to keep the test quick); time not asserted."""
    import json

    from support.browser import measure_interactivity

    path = render_report(
        synthetic_results(632, prompt_len=40, response_len=60, same_response=False), tmp_path / "r.html"
    )
    figures = measure_interactivity(path, loads=3)
    assert figures["console_errors"] == []
    assert figures["interactive_ms"] > 0 and figures["open_example_ms"] > 0
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-632-timing.json").write_text(json.dumps({**figures, "mib": path.stat().st_size / 2**20}))
