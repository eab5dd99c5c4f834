"""Planted-signal validation of an organism build: `shiftlens validate` (kept for old instructions).

Every argument goes to `shiftlens validate` (docs/validation.md): a planted pair's directory (default: the
shipped organism's assets), --json PATH, --limit N, --seeds, --draws K, --seed, --device.
Usage: python scripts/validate_organism.py [DIR] [--json PATH] [--limit N] [--draws K]
"""

from __future__ import annotations

import sys

from shiftlens.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["validate", *sys.argv[1:]]))
