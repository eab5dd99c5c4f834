"""The analyses of a comparison directory, gathered into the report's results dict, written and read back.

Each analysis runs only when both models finished the method it needs; the others show as "not run".
``results.json`` holds everything but the per-example payload (rebuilt from the attribution runs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shiftlens.compare.settings import CompareSettings, ModelSpec
from shiftlens.compare.tokenizers import CONSEQUENCES
from shiftlens.errors import ShiftlensError
from shiftlens.models import compute_device
from shiftlens.report.findings import gather
from shiftlens.storage import atomic_write_json, package_versions, read_manifest

RESULTS_FILE = "results.json"
REPORT_FILE = "report.html"


def _finished(path: Path) -> bool:
    """True when the run at ``path`` exists and every step wrote its manifest."""
    return (path / "manifest.json").exists()


def instructions_section(
    out: Path, protocol: str, min_response_tokens: int
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Tables 1–2 and the position profile (written under analysis/instructions), and the examples payload."""
    from shiftlens.analysis.instructions import analyze_records, read_run, runs_entry
    from shiftlens.report import examples_payload

    runs = {role: out / "attribution" / role for role in ("base", "tuned")}
    if not all(_finished(p) for p in runs.values()):
        return None, None
    (base_manifest, base), (tuned_manifest, tuned) = (read_run(runs[r]) for r in ("base", "tuned"))
    if not base or not tuned:
        return None, None
    result = analyze_records(base, tuned, protocol=protocol, min_response_tokens=min_response_tokens).extended(
        runs=runs_entry(runs, (base_manifest, tuned_manifest))
    )
    result.save(out / "analysis" / "instructions")
    return result.to_json(), examples_payload(base, tuned)


def null_draws(out: Path, specs: dict[str, ModelSpec], settings: CompareSettings) -> dict[str, Any]:
    """The seeded null draws behind the heads-overlap and FFN-rotation bands (``compare`` stores them once)."""
    from shiftlens.analysis.ffn import run_components
    from shiftlens.ffn.pipeline import rotation_null
    from shiftlens.ffn.records import read_ffn_run
    from shiftlens.heads.null import NullSettings, overlap_null

    nulls: dict[str, Any] = {}
    heads = out / "heads" / "base", out / "heads" / "tuned"
    if "heads" in settings.methods and all(_finished(p) for p in heads):
        nulls["heads"] = overlap_null(
            *heads, NullSettings(settings.null_draws, device=compute_device(specs["base"].device))
        )
    ffn = out / "ffn" / "base", out / "ffn" / "tuned"
    if "ffn" in settings.methods and all(_finished(p) for p in ffn):
        base_run, tuned_run = read_ffn_run(ffn[0]), read_ffn_run(ffn[1])
        layers = sorted(set(base_run.layers) & set(tuned_run.layers))
        models = specs["base"].load(), specs["tuned"].load()
        angles = rotation_null(
            *models,
            layers,
            run_components(base_run)[0],
            settings.null_draws,
            device=compute_device(specs["base"].device),
        )
        nulls["ffn"] = {str(layer): values for layer, values in angles.items()}
    return nulls


def heads_section(out: Path, settings: CompareSettings, nulls: dict[str, Any]) -> dict[str, Any] | None:
    """Table 3, head overlap by layer (beside its null band) and example pairs (written under analysis/heads)."""
    from shiftlens.analysis.heads import INSTRUCTION_VERBS, HeadsAnalysisSettings, add_null, analyze_heads
    from shiftlens.heads.null import PERTURBED

    base, tuned = out / "heads" / "base", out / "heads" / "tuned"
    if not (_finished(base) and _finished(tuned)):
        return None
    verbs = settings.instruction_verbs or INSTRUCTION_VERBS
    result = analyze_heads(base, tuned, instruction=verbs, settings=HeadsAnalysisSettings(protocol=settings.protocol))
    if nulls.get("heads"):
        result = add_null(result, nulls["heads"], {"draws": settings.null_draws, "seed": 0, "perturbed": PERTURBED})
    result = result.extended(cooccurrence=read_manifest(base).get("cooccurrence"))
    result.save(out / "analysis" / "heads")
    return result.to_json()


def ffn_section(out: Path, settings: CompareSettings, nulls: dict[str, Any]) -> dict[str, Any] | None:
    """Concept shares (when annotated), rotation beside its null band, matched components (under analysis/ffn)."""
    from shiftlens.analysis.ffn import analyze_ffn

    base, tuned = out / "ffn" / "base", out / "ffn" / "tuned"
    if not (_finished(base) and _finished(tuned)):
        return None
    angles = {int(layer): values for layer, values in (nulls.get("ffn") or {}).items()} or None
    result = analyze_ffn(base, tuned, protocol=settings.protocol, null_angles=angles)
    result.save(out / "analysis" / "ffn")
    return result.to_json()


def assemble_results(
    out: Path,
    specs: dict[str, ModelSpec],
    settings: CompareSettings,
    timings: dict[str, float],
    tokenizer_difference: str | None,
    nulls: dict[str, Any] | None = None,
    diff_notes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The report's results dict (meta, instructions, heads, ffn, diff, examples) of a comparison directory.

    ``diff_notes``: why parts of the diff step did not run (None: the step is off).
    """
    from shiftlens.diff.results import diff_results

    instructions, examples = instructions_section(out, settings.protocol, settings.min_response_tokens)
    models = []
    for role in ("base", "tuned"):
        model = {"role": role, **vars(specs[role])}
        for method in ("attribution", "heads", "ffn"):
            run = out / method / role
            if _finished(run):
                identity = read_manifest(run)["model"]
                model.update({k: identity[k] for k in ("weight_hash", "dtype", "model_type") if k in identity})
        models.append(model)
    results = {
        "meta": {
            "models": models,
            "parameters": settings.record(),
            "versions": package_versions(),
            "timings": {f"{name}_s": seconds for name, seconds in sorted(timings.items())},
            "tokenizers": "identical"
            if tokenizer_difference is None
            else f"DIFFERENT ({tokenizer_difference}): {CONSEQUENCES}",
        },
        "instructions": instructions,
        "heads": heads_section(out, settings, nulls or {}) if "heads" in settings.methods else None,
        "ffn": ffn_section(out, settings, nulls or {}) if "ffn" in settings.methods else None,
        "diff": None if diff_notes is None else diff_results(out / "diff", diff_notes),
        "examples": examples,
    }
    results["findings"] = [f.to_json() for f in gather(results)]
    return results


def write_results(out: Path, results: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``report.html`` (everything) and ``results.json`` (all but the examples payload)."""
    from shiftlens.report import render_report

    report = render_report(results, out / REPORT_FILE)
    path = out / RESULTS_FILE
    atomic_write_json(path, {k: v for k, v in results.items() if k != "examples"})
    return report, path


def read_results(out: str | Path, with_examples: bool = True) -> dict[str, Any]:
    """A finished comparison's results dict (for `ComparisonView` in a notebook, or your own plots)."""
    from shiftlens.attribution.records import read_attribution_run
    from shiftlens.report import examples_payload

    out = Path(out)
    path = out / RESULTS_FILE
    if not path.exists():
        raise ShiftlensError(f"{out} holds no finished comparison ({RESULTS_FILE} missing): run 'shiftlens compare'")
    results = json.loads(path.read_text(encoding="utf-8"))
    runs = [out / "attribution" / role for role in ("base", "tuned")]
    if with_examples and all(_finished(p) for p in runs):
        results["examples"] = examples_payload(*(read_attribution_run(p)[1] for p in runs))
    return results
