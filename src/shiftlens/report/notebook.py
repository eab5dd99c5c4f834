"""Notebook views: the report, or one example's heatmaps, rendered inline through ``_repr_html_``.

They reuse the report's sections and example explorer, as self-contained snippets (styles, script and
data inside the cell output), so a notebook shows exactly what the HTML report shows.
"""

from __future__ import annotations

from typing import Any

from shiftlens.attribution.records import ExampleAttribution
from shiftlens.density import DensityParams
from shiftlens.errors import ShiftlensError
from shiftlens.report.html import body_html, explorer_html, snippet_html
from shiftlens.report.payload import PAPER_PARAMS, example_entry


class ComparisonView:
    """The full base-vs-tuned report of a results dict (same keys as `render_report`) for a notebook."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results

    def _repr_html_(self) -> str:
        return snippet_html(body_html(self.results))


class ExampleView:
    """One example's prompt/response tokens and base, tuned and difference heatmaps for a notebook."""

    def __init__(
        self,
        base_record: ExampleAttribution | None,
        tuned_record: ExampleAttribution | None,
        params: DensityParams = PAPER_PARAMS,
    ) -> None:
        if base_record is None and tuned_record is None:
            raise ShiftlensError("ExampleView needs a base or a tuned record")
        self.entry = example_entry(base_record, tuned_record, params)
        self.levels = params.levels

    def _repr_html_(self) -> str:
        return snippet_html(explorer_html({"levels": self.levels, "examples": [self.entry]}, single=True))
