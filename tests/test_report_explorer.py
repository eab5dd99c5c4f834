"""The report reads like text (issue 16d): the tokenizer's spacing, labelled heatmap axes, human headers,
whole-number layer ticks, error bars inside the quantity's range, failures and tokenizer notes in view.

The report under test is the one `shiftlens demo` writes for a small comparison of the organism pair.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html import unescape

import numpy as np
import pytest
from conftest import save_tiny_model
from support.browser import console_errors, headless_chromium, missing_reason
from support.prompts import SHORT_ROWS

from shiftlens import organism
from shiftlens.attribution.records import ExampleAttribution
from shiftlens.cli.demo import demo_examples
from shiftlens.cli.main import main
from shiftlens.compare import CompareIncomplete, CompareSettings, compare
from shiftlens.models import load_tokenizer
from shiftlens.paper_data import decode_pieces
from shiftlens.prompting import encode
from shiftlens.report import render_report
from shiftlens.report.labels import LABELS
from shiftlens.report.payload import token_texts

SVG = "{http://www.w3.org/2000/svg}"
N_LAYERS = json.loads((organism.model_dir("base") / "config.json").read_text())["n_layer"]
needs_browser = pytest.mark.skipif(missing_reason() is not None, reason=f"no headless browser: {missing_reason()}")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> str:
    """The report of a finished demo on 3 organism prompts (2 null draws), as a path."""
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--out", str(out), "--limit", "3", "--null-draws", "2"]) == 0
    return out / "report.html"


def explorer_data(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" class="sl-data">(.*?)</script>', html).group(1))


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg .*?</svg>", html)]


def texts(svg: ET.Element, cls: str) -> list[ET.Element]:
    return [t for t in svg.iter(f"{SVG}text") if t.get("class") == cls]


# ---- decoded text -------------------------------------------------------------------------------------


def test_byte_level_tokens_keep_the_space_the_offsets_trim():
    text = "The word issue is used like this: issue a new uniform."
    encoded = encode(load_tokenizer("organism-tuned"), text)
    assert encoded.tokens[1] == "word"  # the tokenizer's offsets leave the space out
    shown = token_texts(text, encoded.tokens, encoded.offsets)
    assert shown[:3] == ["The", " word", " issue"] and "".join(shown) == text


def test_sentencepiece_tokens_keep_their_spaces_with_or_without_offsets():
    pieces = ["▁The", "▁word", "▁is", "▁used", "."]
    text, offsets = decode_pieces(pieces)
    assert token_texts(text, pieces, offsets) == ["The", " word", " is", " used", "."]
    assert token_texts("", pieces, []) == [" The", " word", " is", " used", "."]  # no offsets: the ▁ is a space


def test_the_demo_reports_prompts_and_responses_with_their_spaces(demo_report):
    data = explorer_data(demo_report.read_text())
    first = data["examples"][0]["base"]
    assert "".join(first["prompt"]) == demo_examples()[0].prompt
    assert len(first["response"]) > 2 and all(t.startswith(" ") for t in first["response"][1:3])


# ---- headers, axes, ticks, error bars ------------------------------------------------------------------


def test_no_raw_key_in_any_header_axis_label_title_or_legend(demo_report):
    html = demo_report.read_text()
    shown = [unescape(h) for h in re.findall(r"<th>(.*?)</th>", html)]
    for svg in svgs(html):
        shown += [t.text or "" for t in svg.iter(f"{SVG}text")]  # titles, axis labels, ticks, legends
    assert shown
    assert [s for s in shown if "_" in s or s in LABELS] == []
    assert "paired examples" in shown and "mean principal angle (°)" in shown


def test_layer_axes_have_whole_number_ticks(demo_report):
    charts = [s for s in svgs(demo_report.read_text()) if [t.text for t in texts(s, "sl-axis-label")][-1:] == ["layer"]]
    assert len(charts) >= 3  # head overlap and the FFN rotation charts
    for chart in charts:
        ticks = [t.text for t in texts(chart, "sl-tick") if t.get("text-anchor") == "middle"]
        assert ticks == [str(layer) for layer in range(N_LAYERS)], ticks


def zero_and_one(svg: ET.Element) -> dict[str, float]:
    """Pixel rows of the y ticks labelled "0" and "1" (tick text sits 4 px below its grid line)."""
    return {t.text: float(t.get("y")) - 4 for t in texts(svg, "sl-tick") if t.get("text-anchor") == "end"}


def test_error_bars_stay_inside_the_range_of_the_quantity(tmp_path):
    wide = {"mean": 0.1, "std": 0.5, "n": 9}  # a share of 0.1 ± 0.5: the bar would reach -0.4 and 0.6
    high = {"mean": 0.9, "std": 0.4, "n": 9}  # 0.9 ± 0.4 would pass 1
    results = {
        "instructions": {"table1": {"all": {"followed": wide, "unfollowed": high, "p_value": 0.5}}},
        "heads": {"groups": [{"layers": [0, 1], "instruction": wide, "general": high, "p_value": 0.5}]},
    }
    charts = svgs(render_report(results, tmp_path / "r.html").read_text())
    assert len(charts) == 2
    score, share = charts
    for chart, top in ((score, None), (share, "1")):
        rows = zero_and_one(chart)
        ends = [float(line.get(k)) for line in chart.iter(f"{SVG}line") if line.get("class") == "sl-err"
                for k in ("y1", "y2")]  # fmt: skip
        assert len(ends) == 4
        assert max(ends) <= rows["0"] + 0.05  # never below 0 (pixel rows grow downwards)
        if top:
            assert min(ends) >= rows[top] - 0.05  # a share never above 1


# ---- failures and tokenizer notes -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def failed_compare(tmp_path_factory):
    """A comparison of a tiny model (its own tokenizer) with the organism where one example is too long."""
    root = tmp_path_factory.mktemp("failed")
    save_tiny_model(root / "tiny")
    rows = [
        *SHORT_ROWS,
        {"id": "too-long", "prompt": "word " * 300, "instruction_spans": [[0, 4]], "response": "Yes."},
    ]
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = CompareSettings(responses="data", methods=("attribution",), allow_different_tokenizers=True)
    with pytest.raises(CompareIncomplete):
        compare(str(root / "tiny"), "organism-tuned", data, organism.vocab_path(), root / "out", settings)
    return root / "out" / "report.html"


def test_failures_and_tokenizer_differences_are_a_section_of_their_own(failed_compare):
    html = failed_compare.read_text()
    notes = re.search(r'<section id="sl-notes".*?</section>', html).group(0)
    assert "<details" not in notes  # in the open, not folded away
    assert "tuned model: 1 examples failed" in notes and "too-long" in notes
    assert "Tokenizers differ" in notes and "vocabularies differ" in notes
    assert html.index('id="sl-notes"') < html.index('id="sl-instructions"')  # before the tables they qualify


# ---- in a browser ----------------------------------------------------------------------------------------


def open_first(driver, path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get("about:blank")
    console_errors(driver)
    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return window.__shiftlensReady !== undefined"))
    root = driver.find_element("css selector", ".sl-explorer-root")
    driver.execute_script("arguments[0].click()", root.find_element("css selector", ".sl-list li"))
    WebDriverWait(driver, 20).until(lambda d: root.get_attribute("data-drawn"))


def long_example(n: int, m: int) -> ExampleAttribution:
    prompt = [f" p{i}" for i in range(n)]
    response = [f" r{j}" for j in range(m)]
    ends = np.cumsum([len(t) for t in prompt]), np.cumsum([len(t) for t in response])
    return ExampleAttribution(
        id="long",
        prompt="".join(prompt),
        response="".join(response),
        prompt_tokens=[t.strip() for t in prompt],
        prompt_offsets=[(int(e) - len(t) + 1, int(e)) for t, e in zip(prompt, ends[0])],  # spaces trimmed
        response_tokens=[t.strip() for t in response],
        response_offsets=[(int(e) - len(t) + 1, int(e)) for t, e in zip(response, ends[1])],
        instruction_mask=[i < 20 for i in range(n)],
        attribution=np.random.default_rng(0).random((n, m)).astype(np.float32),
    )


LAYOUT = """
const heat = arguments[0], lab = s => getComputedStyle(s);
const rows = heat.querySelectorAll('.sl-rows .sl-lab'), cols = heat.querySelectorAll('.sl-cols .sl-lab');
const canvas = heat.querySelector('canvas');
heat.scrollTop = heat.scrollHeight; heat.scrollLeft = heat.scrollWidth;
const box = heat.getBoundingClientRect(), last = rows[rows.length - 1].getBoundingClientRect();
const header = heat.querySelector('.sl-cols').getBoundingClientRect();
return {rows: rows.length, cols: cols.length, font: parseFloat(lab(rows[0]).fontSize),
        rowHeight: rows[0].getBoundingClientRect().height, colWidth: cols[0].getBoundingClientRect().width,
        canvasHeight: canvas.getBoundingClientRect().height, scrolls: heat.scrollHeight > heat.clientHeight,
        lastVisible: last.bottom <= box.bottom + 1 && last.top >= box.top,
        headerAtTop: Math.abs(header.top - box.top) < 2,
        lastText: rows[rows.length - 1].textContent, firstCol: cols[0].textContent};
"""


@needs_browser
def test_heatmap_axes_are_labelled_and_readable_at_300_by_150_tokens(tmp_path):
    from selenium.webdriver.support.ui import Select

    from shiftlens.report import examples_payload

    path = render_report({"examples": examples_payload([long_example(300, 150)], [])}, tmp_path / "r.html")
    with headless_chromium() as driver:
        open_first(driver, path)
        heat = driver.find_element("css selector", ".sl-heat")
        layout = driver.execute_script(LAYOUT, heat)
        assert layout["rows"] == 300 and layout["cols"] == 150
        assert layout["font"] >= 9 and layout["rowHeight"] >= 11 and layout["colWidth"] >= 11
        assert layout["canvasHeight"] == pytest.approx(300 * layout["rowHeight"], abs=1)
        assert layout["scrolls"] and layout["lastVisible"] and layout["headerAtTop"]  # labels stay in view
        assert layout["lastText"] == "p299" and layout["firstCol"] == "r0"
        Select(driver.find_element("css selector", "select.sl-zoom")).select_by_value("2")
        small = driver.execute_script(LAYOUT, heat)
        assert small["canvasHeight"] == pytest.approx(600, abs=1) and small["font"] == 0  # overview: no labels
        assert console_errors(driver) == []


@needs_browser
def test_the_browser_shows_the_demo_text_with_spaces_and_the_notes(demo_report, failed_compare):
    with headless_chromium() as driver:
        open_first(driver, demo_report)
        panel = driver.find_element("css selector", ".sl-detail .sl-tokens")
        assert panel.get_attribute("textContent").startswith(demo_examples()[0].prompt)
        open_first(driver, failed_compare)
        warning = driver.find_element("css selector", "#sl-notes .sl-warning")
        assert warning.is_displayed() and "too-long" in warning.text
        assert console_errors(driver) == []
