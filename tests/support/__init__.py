"""Helpers for tests and benchmarks only (not shipped): synthetic results, a headless browser.

Tests import them as ``support.*`` (pytest puts ``tests/`` on the path, as for ``conftest``); bench
scripts put ``tests/`` on ``sys.path`` first.
"""
