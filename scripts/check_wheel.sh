#!/usr/bin/env bash
# The wheel is complete: build it, install it into a new venv, and run `shiftlens demo` from a directory
# outside the checkout, so that every file the demo reads must come from the installed package.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
"$py" -m pip wheel -q --no-deps -w "$work/dist" "$repo"
wheel=$(ls "$work"/dist/shiftlens-*.whl)
"$py" -m pip install -q "$wheel"
cd "$work"
installed=$(env -u PYTHONPATH "$py" -c 'import shiftlens; print(shiftlens.__file__)')
case "$installed" in
  "$repo"/*) echo "shiftlens was imported from the checkout ($installed), not the wheel" >&2; exit 1 ;;
esac
env -u PYTHONPATH "$work/venv/bin/shiftlens" demo --out "$work/demo" --limit 20
test -s "$work/demo/report.html"
echo "wheel $(basename "$wheel"): $(du -k "$wheel" | cut -f1) KiB; demo from the installed wheel wrote $work/demo/report.html"
