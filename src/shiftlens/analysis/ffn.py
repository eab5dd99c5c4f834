"""Base vs tuned FFN runs as one result: Table 5 and Figure 3, the subspace rotation and its null, the findings.

The statistics live in `shiftlens.ffn.table5`, `shiftlens.ffn.statistics` (both protocols) and
`shiftlens.ffn.rotation`; this module reads the runs and their annotations, checks that the runs are
comparable, and puts the result together as an `FfnResult` (figures: `shiftlens.analysis.ffn_figures`).
Every claim is a `Finding`, Holm-corrected together (`finding` in the result).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from shiftlens.analysis.pairing import UnpairedRuns, check_same_inputs, check_same_shape
from shiftlens.analysis.result import JSON_FILES, AnalysisResult
from shiftlens.errors import ShiftlensError
from shiftlens.evidence import DEFAULT_PROTOCOL, Finding, adjust, check_protocol
from shiftlens.ffn.annotate import default_out
from shiftlens.ffn.labels import LABELS_FILE, read_labels
from shiftlens.ffn.records import FfnRun, read_ffn_run
from shiftlens.ffn.rotation import null_band, rotation, rotation_finding
from shiftlens.ffn.statistics import PERMUTATIONS, RESAMPLES
from shiftlens.ffn.table5 import per_layer_group, table5
from shiftlens.models import LoadedModel
from shiftlens.runs.manifest import model_record
from shiftlens.storage import read_manifest


@dataclass(frozen=True)
class FfnResult(AnalysisResult):
    """`analyze_ffn`'s result: rotation by layer (and its null), and with annotations Table 5 and Figure 3."""

    JSON_FILE: ClassVar[str] = JSON_FILES["ffn"]

    @property
    def rotation_by_layer(self) -> list[dict[str, Any]]:
        """Per layer: mean principal angle, matched |cos| and word overlap (and the null band when computed)."""
        return self.data["rotation_by_layer"]

    @property
    def annotations(self) -> dict[str, Any] | None:
        """Both sides' annotators (None when a side has no annotations: then no concept tables)."""
        return self.data["annotations"]

    def save_files(self, out: Path) -> list[Path]:
        """The rotation figure and, with annotations, Figure 3's (PNG + SVG)."""
        from shiftlens.analysis.ffn_figures import write_figures

        return write_figures(self, out)


def _annotations(ffn_dir: Path, given: str | Path | None) -> tuple[list[dict] | None, dict | None]:
    path = Path(given) if given is not None else default_out(ffn_dir)
    if given is None and not (path / LABELS_FILE).exists():
        return None, None
    return read_labels(path), read_manifest(path)["params"]["annotator"]


def run_components(run: FfnRun) -> tuple[int, int]:
    """(R, hidden) of an FFN run, from its stored components."""
    shape = next(iter(run.layers.values())).components.shape
    return int(shape[0]), int(shape[1])


def _check_model(run: FfnRun, loaded: LoadedModel, role: str) -> None:
    """Refuse a null computed from other weights than the FFN run explained."""
    recorded = model_record(run.manifest).get("weight_hash")
    if recorded is not None and recorded != loaded.weight_hash:
        raise ShiftlensError(
            f"the {role} model {loaded.name} (weights {loaded.weight_hash[:12]}) is not the one {run.path} explained "
            f"(weights {str(recorded)[:12]}); pass the run's model"
        )


def _null_angles(
    base: FfnRun, tuned: FfnRun, layers: list[int], models: tuple[LoadedModel, LoadedModel], **null: Any
) -> dict[int, list[float]]:
    """Each layer's null angles, from the two models the runs explained (checked by weight hash)."""
    from shiftlens.ffn.pipeline import rotation_null

    for run, loaded, role in ((base, models[0], "base"), (tuned, models[1], "tuned")):
        _check_model(run, loaded, role)
    return rotation_null(models[0], models[1], layers, run_components(base)[0], **null)


def _add_rotation_null(by_layer: list[dict[str, Any]], angles: dict[int, list[float]], seed: int) -> Finding:
    """Put each layer's null band beside its observed angle; the finding over all layers."""
    for row in by_layer:
        row["rotation_null"] = null_band(row["mean_principal_angle_deg"], angles[row["layer"]], seed)
    return rotation_finding(by_layer)


def analyze_ffn(
    base_dir: str | Path,
    tuned_dir: str | Path,
    *,
    base_annotations: str | Path | None = None,
    tuned_annotations: str | Path | None = None,
    overlap_words: int = 15,
    protocol: str = DEFAULT_PROTOCOL,
    null_models: tuple[LoadedModel, LoadedModel] | None = None,
    null_draws: int = 0,
    null_angles: dict[int, list[float]] | None = None,
    null_seed: int = 0,
    device: str = "cpu",
    permutations: int = PERMUTATIONS,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> FfnResult:
    """Compare a base and a tuned FFN run (and their annotations, found in DIR/annotations by default).

    Without annotations on both sides only the rotation is reported. With ``null_models`` (the two
    models the runs explained) and ``null_draws`` > 0, each layer's rotation gets its null band
    (`rotation_null`); ``null_angles`` gives such draws computed before (per layer, as `rotation_null`
    returns them). ``protocol`` chooses Table 5's statistics (`shiftlens.ffn.table5`).
    """
    check_protocol(protocol)
    base, tuned = read_ffn_run(base_dir), read_ffn_run(tuned_dir)
    (r_base, hidden), (r_tuned, _) = run_components(base), run_components(tuned)
    if r_base != r_tuned:
        raise ShiftlensError(f"base run has R = {r_base} components per layer, tuned R = {r_tuned}; rerun with one R")
    check_same_inputs(base_dir, tuned_dir, "FFN")
    if base.manifest.get("model_layers") != tuned.manifest.get("model_layers"):
        raise UnpairedRuns(
            f"the base and tuned FFN runs come from different architectures: {base.manifest.get('model_layers')} "
            f"layers vs {tuned.manifest.get('model_layers')}"
        )
    hidden_sizes = ({i: r.components.shape[1] for i, r in run.layers.items()} for run in (base, tuned))
    check_same_shape("FFN", *hidden_sizes, "hidden dimensions")
    by_layer, examples = rotation(base, tuned, overlap_words)
    result: dict[str, Any] = {
        "protocol": protocol,
        "components": r_base,
        "hidden": hidden,
        "components_rule": base.manifest.get("components_rule", "not recorded"),
        "rotation_by_layer": by_layer,
        "matched_examples": examples,
    }
    extra: list[Finding] = []
    if null_angles is None and null_models is not None and null_draws > 0:
        layers = [row["layer"] for row in by_layer]
        null_angles = _null_angles(base, tuned, layers, null_models, draws=null_draws, seed=null_seed, device=device)
    if null_angles:
        null_draws = len(next(iter(null_angles.values())))
        extra.append(_add_rotation_null(by_layer, null_angles, null_seed))
    base_rows, base_annotator = _annotations(Path(base_dir), base_annotations)
    tuned_rows, tuned_annotator = _annotations(Path(tuned_dir), tuned_annotations)
    if base_rows is None or tuned_rows is None:
        result["annotations"] = None
        findings = adjust(extra)
    else:
        table = table5(
            base_rows, tuned_rows, protocol, permutations=permutations, resamples=resamples, seed=seed, extra=extra
        )
        result.update({key: value for key, value in table.items() if key != "finding"})
        result["per_layer_group"] = per_layer_group(base_rows, tuned_rows, base.n_layers, protocol)
        heuristic = bool(base_annotator.get("heuristic") or tuned_annotator.get("heuristic"))
        result["annotations"] = {"base": base_annotator, "tuned": tuned_annotator, "heuristic": heuristic}
        findings = table["finding"]
    if extra:  # the rotation finding comes last, adjusted with the rest
        result["rotation_null"] = {"draws": null_draws, "seed": null_seed, "finding": findings[-1].to_json()}
    result["finding"] = [f.to_json() for f in findings]
    return FfnResult(result)
