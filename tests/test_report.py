"""The HTML report without a browser: payload encoding, escaping, sections, findings, charts, notebook views."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from support.synthetic import synthetic_records, synthetic_results

from shiftlens.attribution.records import ExampleAttribution
from shiftlens.density import DensityParams, importance_density, instruction_score
from shiftlens.errors import ShiftlensError
from shiftlens.evidence import Finding
from shiftlens.report import ComparisonView, ExampleView, examples_payload, render_report
from shiftlens.report.findings import fmt_p, gather, verdict
from shiftlens.report.html import json_for_script
from shiftlens.report.payload import decode_levels, token_texts
from shiftlens.report.svg import bar_chart, line_chart, nice_ticks

HOSTILE = "</script><b>x</b>"


def levels_reference(matrix: np.ndarray, levels: int = 10) -> np.ndarray:
    """ceil(L · max(x, 0) / column max), cell by cell, 0 where the column has no positive value."""
    n, m = matrix.shape
    out = np.zeros((n, m), dtype=int)
    for j in range(m):
        top = max(max(matrix[i, j] for i in range(n)), 0.0)
        for i in range(n):
            if top > 0 and matrix[i, j] > 0:
                out[i, j] = math.ceil(levels * matrix[i, j] / (top + 1e-10))
    return out


def record(example_id: str, matrix: np.ndarray, **fields) -> ExampleAttribution:
    n, m = matrix.shape
    prompt_tokens = [f"p{i}" for i in range(n)]
    response_tokens = [f"r{j}" for j in range(m)]
    defaults = dict(
        prompt=" ".join(prompt_tokens),
        response=" ".join(response_tokens),
        prompt_tokens=prompt_tokens,
        prompt_offsets=[(3 * i, 3 * i + 2) for i in range(n)],
        response_tokens=response_tokens,
        response_offsets=[(3 * j, 3 * j + 2) for j in range(m)],
        instruction_mask=[i < 2 for i in range(n)],
        group="lima",
        rating=2.0,
    )
    return ExampleAttribution(id=example_id, attribution=matrix, **{**defaults, **fields})


# ---- payload ----------------------------------------------------------------------------------------


def test_levels_match_the_literal_formula_and_round_trip():
    rng = np.random.default_rng(3)
    matrix = rng.standard_t(3, size=(7, 9))
    matrix[:, 4] = -1.0  # a column with no positive attribution
    entry = examples_payload([record("a", matrix)], [])["examples"][0]
    stored = decode_levels(entry["base"]["z"], (7, 9))
    np.testing.assert_array_equal(stored, levels_reference(matrix))
    assert stored[:, 4].tolist() == [0] * 7


def test_released_integer_matrices_are_kept_as_they_are():
    matrix = np.array([[0, 3, 10], [10, 10, 1]], dtype=float)
    entry = examples_payload([record("a", matrix)], [])["examples"][0]
    np.testing.assert_array_equal(decode_levels(entry["base"]["z"], (2, 3)), matrix)


def test_densities_and_scores_are_the_analysis_ones():
    rng = np.random.default_rng(4)
    matrix = rng.normal(size=(6, 5))
    params = DensityParams(threshold=5)
    side = examples_payload([record("a", matrix)], [], params)["examples"][0]["base"]
    density = importance_density(matrix, params)
    assert side["density"] == pytest.approx(density, abs=1e-4)
    assert side["score"] == pytest.approx(instruction_score(density, np.arange(6) < 2), abs=1e-6)


def test_pairs_by_id_keeps_unpaired_examples_and_stores_shared_prompt_once():
    base = [record("a", np.ones((3, 2))), record("b", np.ones((3, 2)))]
    tuned = [record("c", np.ones((3, 4)), group="mt_bench"), record("a", np.eye(3)[:, :2] + 0.1)]
    payload = examples_payload(base, tuned)
    entries = {e["id"]: e for e in payload["examples"]}
    assert [e["id"] for e in payload["examples"]] == ["a", "b", "c"]
    assert entries["a"]["tuned"]["prompt"] is None and entries["a"]["base"]["prompt"] == ["p0", " p1", " p2"]
    assert entries["b"]["tuned"] is None and entries["c"]["base"] is None
    assert entries["c"]["group"] == "mt_bench"


def test_different_prompt_tokens_are_kept_per_model():
    base = record("a", np.ones((3, 2)))
    tuned = record("a", np.ones((2, 2)), prompt_tokens=["x", "y"], prompt_offsets=[], instruction_mask=[1, 0])
    entry = examples_payload([base], [tuned])["examples"][0]
    assert entry["tuned"]["prompt"] == ["x", "y"] and entry["tuned"]["mask"] == [1, 0]


def test_duplicate_ids_are_refused_with_the_id():
    with pytest.raises(ShiftlensError, match=r"tuned run: example id 'dup' appears twice"):
        examples_payload([], [record("dup", np.ones((2, 2))), record("dup", np.ones((2, 2)))])


def test_token_texts_come_from_offsets_with_the_token_as_fallback():
    assert token_texts("Hello world", ["Hello", "Ġworld", "x"], [(0, 5), (5, 11), (20, 22)]) == [
        "Hello",
        " world",
        "x",
    ]


# ---- escaping and self-containment ------------------------------------------------------------------


def test_json_for_script_cannot_close_the_script_and_round_trips():
    data = {"t": [HOSTILE, "<!--", "a & b", "\u2028", "🙂"]}
    text = json_for_script(data)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == data


def test_non_finite_numbers_are_refused():
    with pytest.raises(ShiftlensError, match="non-finite"):
        json_for_script({"x": float("nan")})


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> str:
    results = synthetic_results(6, 12, 10)
    results["instructions"]["table2"][HOSTILE] = results["instructions"]["table2"]["lima"]
    results["heads"]["examples"]["<img src=x onerror=alert(1)>"] = ["a=<b>"]
    path = render_report(results, tmp_path_factory.mktemp("report"))
    assert path.name == "report.html"
    return path.read_text(encoding="utf-8")


def test_report_is_self_contained(report_html):
    assert not re.search(r"<(link|img|iframe|object|embed)\b", report_html, re.I)
    assert not re.search(r"<[a-z][^>]*\ssrc\s*=", report_html, re.I)
    assert not re.search(r"url\((?!data:)", report_html)
    hrefs = re.findall(r'href="([^"]*)"', report_html)
    assert hrefs and all(h.startswith("#") for h in hrefs)
    assert "Content-Security-Policy" in report_html and "default-src 'none'" in report_html


def test_hostile_text_is_escaped_everywhere(report_html):
    assert HOSTILE not in report_html and "<b>x</b>" not in report_html
    assert "<img" not in report_html and "a=<b>" not in report_html
    assert "&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in report_html  # the table row, escaped
    assert report_html.count("</script>") == report_html.count("<script")


def test_every_section_is_rendered(report_html):
    for anchor in ("summary", "instructions", "heads", "ffn", "diff", "examples", "meta"):
        assert f'id="sl-{anchor}"' in report_html
    assert "not run" not in report_html
    assert report_html.count("<svg") >= 8
    assert "synthetic-base" in report_html and "0000000000000000" in report_html


def test_missing_sections_say_not_run(tmp_path):
    html = render_report({}, tmp_path / "r.html").read_text()
    assert html.count("not run") == 4 + 6  # four methods in the summary + six section bodies
    assert 'class="sl-explorer-root"' not in html


def test_undefined_statistics_show_as_a_dash(tmp_path):
    """A group with no unfollowed responses has mean None: shown as "–", not a crash."""
    empty = {"mean": None, "std": None, "n": 0}
    table1 = {"all": {"followed": {"mean": 0.5, "std": 0.1, "n": 9}, "unfollowed": empty, "p_value": None}}
    html = render_report({"instructions": {"table1": table1}}, tmp_path / "r.html").read_text()
    assert "– (n=0)" in html and "0.5 ± 0.1 (n=9)" in html


def test_results_must_be_a_dict(tmp_path):
    with pytest.raises(ShiftlensError, match="must be a dict"):
        render_report([1, 2], tmp_path / "r.html")


def test_unknown_fields_are_shown_not_dropped(tmp_path):
    html = render_report({"instructions": {"brand_new": {"k": "<v>"}}}, tmp_path / "r.html").read_text()
    assert "brand_new" in html and "&lt;v&gt;" in html


# ---- findings ---------------------------------------------------------------------------------------


def finding(method, claim, p, **kw):
    return Finding(method, claim, True, p_value=p, **kw).to_json()


def test_findings_are_adjusted_together_across_methods():
    results = {
        "instructions": {"finding": [finding("attribution", "Tuned attributes more to instructions", 0.01)]},
        "heads": {"finding": [finding("heads", "Heads gain verb pairs (layers 0–3)", 0.02)]},
        "ffn": {"finding": [finding("ffn", "Share of writing concepts differs", 0.04)]},
    }
    adjusted = gather(results)
    assert [f.p_adjusted for f in adjusted] == pytest.approx([0.03, 0.04, 0.04])
    assert all(f.significant for f in adjusted)
    results["ffn"]["finding"][0]["p_value"] = 0.03  # Holm: 3·0.01, then max(2·0.02, ·), then max(1·0.03, ·)
    results["heads"]["finding"].append(finding("heads", "Another group", 0.5))
    adjusted = gather(results)  # four claims now: 4·0.01 = 0.04, 3·0.02 = 0.06, ...
    assert [f.significant for f in adjusted] == [True, False, False, False]


def test_verdicts_say_shown_not_shown_or_not_testable_with_the_numbers():
    shown = Finding("attribution", "Tuned attributes more", True, p_value=0.001, p_adjusted=0.003,
                    significant=True, effect_size=0.41, ci=(0.2, 0.6))  # fmt: skip
    cls, text = verdict(shown)
    assert cls == "sl-yes" and text.startswith("Shown: Tuned attributes more: p = 0.001, adjusted p = 0.003")
    assert "effect 0.41 (95% CI 0.2 to 0.6)" in text
    cls, text = verdict(Finding("heads", "Heads gain pairs", True, p_value=0.03, p_adjusted=0.09))
    assert cls == "sl-unclear" and text.startswith("Not shown (adjusted p ≥ 0.05): Heads gain pairs")
    cls, text = verdict(Finding.untestable("heads", "Heads gain pairs (layers 1–1)", "side 1: n = 3 < 5"))
    assert cls == "sl-untestable" and text == "Not testable: Heads gain pairs (layers 1–1) (side 1: n = 3 < 5)."
    assert "p =" not in text


def test_summary_lists_each_method_counts_claims_and_flags_heuristic_labels(tmp_path):
    results = {
        "instructions": {"protocol": "sound", "finding": [finding("attribution", "Tuned attributes more", 1e-6)]},
        "heads": {"finding": [Finding.untestable("heads", "Heads gain pairs", "side 1: n = 3 < 5").to_json()]},
        "ffn": {"finding": [finding("ffn", "Writing share rises", 0.2)], "annotations": {"heuristic": True},
                "components": 19, "hidden": 256},
    }  # fmt: skip
    html = render_report(results, tmp_path / "r.html").read_text()
    assert "1 of 1 claims shown" in html and "0 of 1 claims shown" in html
    assert "Not testable: Heads gain pairs (side 1: n = 3 &lt; 5)." in html
    assert "heuristic labels from a lexical annotator" in html
    assert "Departures from the paper" in html and "R = 19 principal components per layer of hidden size 256" in html
    assert "Protocol sound" in html and "over all 3 claims" in html
    assert "attends" not in html and "Instruction attribution" in html


def test_fmt_p():
    assert fmt_p(0.0001) == "p < 0.001" and fmt_p(0.0312) == "p = 0.0312" and fmt_p(None) == "p = –"


# ---- charts -----------------------------------------------------------------------------------------


def test_bar_heights_are_proportional_to_values():
    svg = bar_chart(["a", "b"], {"base": [1.0, 3.0], "tuned": [2.0, 0.5]}, title="t", y_label="y")
    rects = [r for r in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}rect") if r.find("*") is not None]
    heights = [float(r.get("height")) for r in rects]  # order: a/base, a/tuned, b/base, b/tuned
    assert np.allclose(np.array(heights) / heights[0], [1.0, 2.0, 3.0, 0.5], atol=0.01)


def test_line_chart_skips_missing_points_and_escapes_labels():
    svg = line_chart([0, 1, 2], {"<s>": [1.0, None, float("nan")]}, title="<t>", x_label="x", y_label="y")
    root = ET.fromstring(svg)  # well-formed despite the markup in names
    assert len(list(root.iter("{http://www.w3.org/2000/svg}circle"))) == 1
    assert "<s>" not in svg and "&lt;s&gt;" in svg


@pytest.mark.parametrize("lo,hi", [(0.0, 0.47), (-3.2, 7.9), (0.0, 0.0), (5.0, 5.0), (1e-4, 3e-4)])
def test_nice_ticks_cover_the_range(lo, hi):
    ticks = nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and len(ticks) <= 12


# ---- notebook ---------------------------------------------------------------------------------------


def test_example_view_is_a_self_contained_snippet_with_its_data():
    base, tuned = synthetic_records(1, 8, 6)
    html = ExampleView(base[0], tuned[0])._repr_html_()
    assert html.startswith('<div class="sl"') and "ShiftlensReport.mount" in html and "<style>" in html
    data = json.loads(re.search(r'<script type="application/json" class="sl-data">(.*?)</script>', html).group(1))
    assert data["single"] is True and [e["id"] for e in data["examples"]] == ["ex-0000"]
    assert ExampleView(base[0], None)._repr_html_() != html


def test_views_get_unique_roots_and_bad_input_is_refused():
    results = synthetic_results(2, 6, 5)
    first, second = ComparisonView(results)._repr_html_(), ComparisonView(results)._repr_html_()
    ids = lambda html: set(re.findall(r'id="(sl-[0-9a-f]{32})"', html))  # noqa: E731
    assert ids(first) and not ids(first) & ids(second)
    with pytest.raises(ShiftlensError, match="needs a base or a tuned record"):
        ExampleView(None, None)
    base, tuned = synthetic_records(2, 6, 5)
    with pytest.raises(ShiftlensError, match="'ex-0000' paired with tuned example 'ex-0001'"):
        ExampleView(base[0], tuned[1])


def test_instruction_gain_is_shown_beside_its_control_spans(tmp_path):
    control = {"instruction_gain": {"mean": 0.22, "std": 0.6, "n": 278}, "control_gain": {"mean": 0.11, "std": 0.5,
               "n": 278}, "effect_size": 0.35, "ci": [0.23, 0.48], "p_value": 0.0001, "p_adjusted": 0.0012}  # fmt: skip
    table2 = {"all": {"base": {"mean": 1.1, "std": 0.5, "n": 9}, "tuned": {"mean": 1.3, "std": 0.5, "n": 9},
                      "control": control}}  # fmt: skip
    untestable = {"n": 3, "reason": "side 1: n = 3 < 5", "p_value": None, "p_adjusted": None}
    results = {"instructions": {"table2": table2, "nulls": {"strata": {"middle": untestable}}}}
    html = render_report(results, tmp_path / "r.html").read_text()
    assert "Instruction vs control spans" in html and "0.22 ± 0.6 (n=278)" in html and "0.11 ± 0.5 (n=278)" in html
    assert "0.23 to 0.48" in html and "instruction at the middle of the prompt" in html
    assert "side 1: n = 3 &lt; 5" in html
