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
"$py" - "$wheel" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
assets = ("heads/assets/general_verbs.tsv", "organism/assets/base/model.safetensors",
          "organism/assets/tuned/tokenizer.json", "organism/assets/prompts.jsonl", "report/assets/report.js",
          "organism/assets/ground_truth.json", "organism/assets/continued/model.safetensors",
          "organism/assets/tuned-seed1/model.safetensors", "organism/assets/tuned-seed2/model.safetensors",
          "models/assets/smollm2-lora-demo/adapter/adapter_model.safetensors",
          "models/assets/smollm2-lora-demo/adapter/adapter_config.json",
          "models/assets/smollm2-lora-demo/ground_truth.json")
missing = [a for a in assets if f"shiftlens/{a}" not in names]
test_only = sorted(n for n in names if n.startswith(("tests/", "support/", "shiftlens/data/")))
if missing or test_only:
    sys.exit(f"wheel: missing package data {missing}; test-only or stale files {test_only}")
PY
"$py" -m pip install -q "$wheel"
cd "$work"
installed=$(env -u PYTHONPATH "$py" -c 'import shiftlens; print(shiftlens.__file__)')
case "$installed" in
  "$repo"/*) echo "shiftlens was imported from the checkout ($installed), not the wheel" >&2; exit 1 ;;
esac
env -u PYTHONPATH "$work/venv/bin/shiftlens" demo --out "$work/demo" --limit 20
test -s "$work/demo/report.html"
echo "wheel $(basename "$wheel"): $(du -k "$wheel" | cut -f1) KiB; demo from the installed wheel wrote $work/demo/report.html"
