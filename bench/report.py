"""Benchmark: size and time-to-interactive of the HTML report of a 632-prompt run in headless Chromium.

Builds synthetic results with the paper's run size (632 examples × base and tuned; prompts ~150 tokens,
responses ~300, each model its own response), renders the report, then loads it in headless Chromium
several times and reads when the explorer finished starting (``window.__shiftlensReady``, ms since
navigation start) and how long opening one example (inflate + draw three heatmaps) takes.

    .venv/bin/python bench/report.py [--examples 632] [--prompt 150] [--response 300] [--loads 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support: not shipped

from support.browser import measure_interactivity, missing_reason  # noqa: E402
from support.synthetic import synthetic_results  # noqa: E402

from shiftlens.report import render_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=632)
    parser.add_argument("--prompt", type=int, default=150)
    parser.add_argument("--response", type=int, default=300)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    reason = missing_reason()
    if reason:
        raise SystemExit(f"cannot run the browser benchmark: {reason}")

    start = time.perf_counter()
    results = synthetic_results(args.examples, args.prompt, args.response, same_response=False)
    built = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = render_report(results, Path(tmp) / "report.html")
        rendered = time.perf_counter() - start
        figures = {
            "examples": args.examples,
            "prompt_tokens": args.prompt,
            "response_tokens": args.response,
            "payload_build_s": round(built, 2),
            "render_s": round(rendered, 2),
            "file_mb": round(path.stat().st_size / 2**20, 2),
            **measure_interactivity(path, args.loads),
        }
    print(f"report of {args.examples} examples × 2 models (prompt ~{args.prompt}, response ~{args.response} tokens)")
    print(f"  payload build (scale, density, compress): {figures['payload_build_s']:.2f} s")
    print(f"  render to HTML:                            {figures['render_s']:.2f} s")
    print(f"  file size:                                 {figures['file_mb']:.2f} MiB")
    print(
        f"  time to interactive (median of {args.loads}):       {figures['interactive_ms']:.0f} ms "
        f"(wall incl. driver {figures['interactive_wall_ms']:.0f} ms)"
    )
    print(f"  open one example (inflate + 2 heatmaps):   {figures['open_example_ms']:.0f} ms")
    print(f"  console errors:                            {len(figures['console_errors'])}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
