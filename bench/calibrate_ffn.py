"""Measured false-positive rate of the FFN concept analysis (Table 5) on the organism pair.

`shiftlens ffn` runs of organism-base and organism-tuned with the organism word list, labelled by the
lexical annotator, for each R asked. Then two nulls, each scored by the analysis's own Table 5 code
(`shiftlens.ffn.statistics.table5`, Holm across its rows); a draw *declares a finding* when any row has
p_adjusted < 0.05. Target: at most 10 % of draws (nominal 5 %).

1. ``--shuffles N`` (default 100, at least 50): within each layer, the concept label sets (all runs of
   a component together) are shuffled between the base and the tuned components, so nothing but chance
   separates the two sides.
2. ``--perturbed N`` (default 0): "tuned" is base + `perturb_like`(W_down base, W_down tuned) (the
   tuning's per-row size, a random direction, seed d), run through `explain_ffn` and the lexical
   annotator like a real model, and compared with base: the pipeline end to end under a null update.

Run: ``PYTHONPATH=src .venv/bin/python bench/calibrate_ffn.py --work /tmp/calibrate [--components 19 127]
[--shuffles 100] [--perturbed 50] [--json PATH]``. Set OMP_NUM_THREADS=1 on a shared machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest

from shiftlens import organism
from shiftlens.architecture import ffn_down_rows, geometry, spec_for
from shiftlens.evidence import ALPHA
from shiftlens.ffn.annotate import annotate_ffn, default_out
from shiftlens.ffn.annotation_settings import AnnotationSettings
from shiftlens.ffn.labels import read_labels
from shiftlens.ffn.lexical import LexicalAnnotator
from shiftlens.ffn.pipeline import explain_ffn
from shiftlens.ffn.settings import FfnSettings
from shiftlens.ffn.statistics import table5
from shiftlens.loading import LoadedModel, load_model
from shiftlens.nulls import perturb_like
from shiftlens.weights import ModuleWeights

TARGET = 0.10


def labelled_run(loaded: LoadedModel, out: Path, components: int, annotator: LexicalAnnotator) -> list[dict]:
    """The lexical labels of an FFN run of ``loaded`` (computed once, reused from ``out`` afterwards)."""
    if not (default_out(out) / "labels.parquet").exists():
        explain_ffn(loaded, organism.vocab_path(), out, FfnSettings(components=components))
        # deterministic: one run, as `shiftlens annotate` makes it
        annotate_ffn(out, annotator, AnnotationSettings("lexical", runs=1))
    return read_labels(default_out(out))


def shuffled(base_rows: list[dict], tuned_rows: list[dict], rng: np.random.Generator) -> tuple[list, list]:
    """The label sets of each layer's base and tuned components, dealt out again at random."""
    slots: dict[tuple[str, int, int], list[dict]] = {}
    for model, rows in (("base", base_rows), ("tuned", tuned_rows)):
        for row in rows:
            slots.setdefault((model, row["layer"], row["component"]), []).append(row)
    dealt: dict[str, list[dict]] = {"base": [], "tuned": []}
    for layer in sorted({layer for _, layer, _ in slots}):
        keys = sorted(key for key in slots if key[1] == layer)
        for (model, _, component), source in zip(keys, rng.permutation(len(keys))):
            dealt[model] += [{**row, "component": component} for row in slots[keys[source]]]
    return dealt["base"], dealt["tuned"]


def declared(result: dict[str, Any]) -> tuple[bool, int]:
    """Whether the analysis would declare a finding, and how many rows it could test."""
    return any(f.significant for f in result["finding"]), sum(f.testable for f in result["finding"])


def rate(hits: int, draws: int) -> dict[str, Any]:
    """The false-positive rate with its exact (Clopper–Pearson) 95 % interval."""
    ci = binomtest(hits, draws).proportion_ci() if draws else None
    return {
        "declared": hits,
        "draws": draws,
        "rate": hits / draws if draws else None,
        "ci95": None if ci is None else [ci.low, ci.high],
        "within_target": None if not draws else hits / draws <= TARGET,
    }


def perturbed_model(base: LoadedModel, tuned: LoadedModel, seed: int) -> LoadedModel:
    """base with every layer's down-projection replaced by base + `perturb_like`(base, tuned)."""
    model = copy.deepcopy(base.model)
    config, spec = model.config, spec_for(model.config)
    generator = torch.Generator().manual_seed(seed)
    for layer in range(geometry(config).n_layers):
        rows_b = ffn_down_rows(ModuleWeights(base.model), config, layer)
        rows_t = ffn_down_rows(ModuleWeights(tuned.model), config, layer)
        moved = perturb_like(rows_b, rows_t, generator)
        weight = model.get_parameter(spec.layer.format(i=layer) + spec.down)
        weight.copy_(moved if spec.conv1d else moved.T)
    name = f"{base.name}+null{seed}"
    return LoadedModel(model, base.tokenizer, name, f"null-{seed}", base.dtype, base.device)


def calibrate(work: Path, components: int, shuffles: int, perturbed: int, seed: int) -> dict[str, Any]:
    """Both nulls for one R; the observed (unshuffled) result beside them."""
    annotator = LexicalAnnotator()
    base, tuned = load_model("organism-base"), load_model("organism-tuned")
    base_rows = labelled_run(base, work / f"R{components}" / "base", components, annotator)
    tuned_rows = labelled_run(tuned, work / f"R{components}" / "tuned", components, annotator)
    observed = table5(base_rows, tuned_rows)
    out: dict[str, Any] = {
        "components": components,
        "observed": {
            "declared": declared(observed)[0],
            "testable_rows": declared(observed)[1],
            "nameable": {m: observed["nameable_share"][m]["count"] for m in ("base", "tuned")},
            "labelled": {m: observed["nameable_share"][m]["n"] for m in ("base", "tuned")},
        },
    }
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    results = [declared(table5(*shuffled(base_rows, tuned_rows, rng), seed=i)) for i in range(shuffles)]
    out["shuffled_labels"] = {
        **rate(sum(hit for hit, _ in results), len(results)),
        "testable_rows_mean": float(np.mean([n for _, n in results])) if results else None,
        "seconds": time.perf_counter() - started,
    }
    if perturbed:
        started, results = time.perf_counter(), []
        for draw in range(perturbed):
            null = perturbed_model(base, tuned, seed + draw)
            null_rows = labelled_run(null, work / f"R{components}" / f"null-{seed + draw}", components, annotator)
            results.append(declared(table5(base_rows, null_rows, seed=draw)))
        out["perturbed_base"] = {
            **rate(sum(hit for hit, _ in results), len(results)),
            "testable_rows_mean": float(np.mean([n for _, n in results])),
            "seconds": time.perf_counter() - started,
        }
    return out


def main() -> None:
    """Parse the options, run every R, print and optionally write the rates."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="directory for the FFN runs and labels (reused)")
    parser.add_argument("--components", type=int, nargs="+", default=[19, 127], help="R values to calibrate")
    parser.add_argument("--shuffles", type=int, default=100, help="label shuffles per R (at least 50)")
    parser.add_argument("--perturbed", type=int, default=0, help="perturbed-base null models per R")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the rates as JSON here")
    args = parser.parse_args()
    if args.shuffles < 50:
        parser.error("--shuffles must be at least 50")
    report = {"alpha": ALPHA, "target": TARGET, "by_components": []}
    for components in args.components:
        result = calibrate(args.work, components, args.shuffles, args.perturbed, args.seed)
        report["by_components"].append(result)
        observed = result["observed"]
        print(
            f"R = {components}: nameable components base {observed['nameable']['base']:.0f} of "
            f"{observed['labelled']['base']:.0f}, tuned {observed['nameable']['tuned']:.0f} of "
            f"{observed['labelled']['tuned']:.0f}; observed pair: {observed['testable_rows']} testable rows, "
            f"finding declared: {observed['declared']}"
        )
        for key in ("shuffled_labels", "perturbed_base"):
            if key in result:
                r = result[key]
                print(
                    f"  {key}: {r['declared']} of {r['draws']} draws declare a finding = {r['rate']:.1%} "
                    f"(95% CI {r['ci95'][0]:.1%}–{r['ci95'][1]:.1%}; target <= {TARGET:.0%}); "
                    f"{r['testable_rows_mean']:.1f} testable rows per draw; {r['seconds']:.0f} s"
                )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
