"""Headless Chromium through Selenium, for checking and timing reports in a real browser (tests, bench).

Needs Debian's ``chromium`` and ``chromium-driver`` (or ``$SHIFTLENS_CHROMIUM``/``$SHIFTLENS_CHROMEDRIVER``)
and the ``selenium`` package; never downloads a browser or driver.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) executables, or None when either is not installed."""
    chromium = os.environ.get("SHIFTLENS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("SHIFTLENS_CHROMEDRIVER") or shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def missing_reason() -> str | None:
    """Why a browser session cannot start here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install -e '.[dev]')"
    if browser_paths() is None:
        return "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
    return None


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A Selenium WebDriver on a fresh headless Chromium profile, logging console and network events."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = browser_paths()
    if paths is None:
        raise RuntimeError(missing_reason())
    with tempfile.TemporaryDirectory(prefix="shiftlens-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = paths[0]
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=paths[1]), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked the network stack for since the last call (from the performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def console_errors(driver: Any) -> list[str]:
    """Console messages at level SEVERE since the last call (JS errors, CSP violations, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


OPEN_FIRST = """
const done = arguments[arguments.length - 1];
const root = document.querySelector('.sl-explorer-root');
const item = root.querySelector('.sl-list li');
const t0 = performance.now();
item.click();
(function poll() {
  if (root.dataset.drawn) done(performance.now() - t0); else requestAnimationFrame(poll);
})();
"""


def measure_interactivity(path: Path, loads: int, timeout: float = 60.0) -> dict[str, Any]:
    """Median time to interactive and to opening the first example over ``loads`` fresh page loads.

    Time to interactive is ``window.__shiftlensReady``: ms from navigation start until the explorer is built.
    """
    ready, opened, wall = [], [], []
    with headless_chromium() as driver:
        driver.set_script_timeout(60)
        for _ in range(loads):
            driver.get("about:blank")
            start = time.perf_counter()
            driver.get(path.resolve().as_uri())
            while driver.execute_script("return window.__shiftlensReady") is None:
                if time.perf_counter() - start > timeout:
                    raise RuntimeError(
                        f"{path} did not become interactive within {timeout} s: {console_errors(driver)}"
                    )
                time.sleep(0.005)
            wall.append((time.perf_counter() - start) * 1000)
            ready.append(driver.execute_script("return window.__shiftlensReady"))
            opened.append(driver.execute_async_script(OPEN_FIRST))
        errors = console_errors(driver)
    return {
        "interactive_ms": statistics.median(ready),
        "interactive_wall_ms": statistics.median(wall),
        "open_example_ms": statistics.median(opened),
        "console_errors": errors,
    }
