"""The self-contained HTML report and its notebook views (see `render_report`)."""

from shiftlens.report.html import render_report
from shiftlens.report.notebook import ComparisonView, ExampleView
from shiftlens.report.payload import examples_payload

__all__ = ["ComparisonView", "ExampleView", "examples_payload", "render_report"]
