"""The diff's results for the report: the weight map's module and head rows, the per-token summary, findings.

Read back from a diff directory (``weights.parquet`` and ``tokens/summary.json``, as `shiftlens diff --out` and
the ``diff`` step of `compare` write them) into plain JSON, with the per-example KL tested against its null.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from shiftlens.diff.run import WEIGHTS_FILE
from shiftlens.diff.tokens import SUMMARY_FILE

METHOD = "diff"
MODULE_FIELDS = ("layer", "module", "rel_frobenius", "effective_rank", "effective_rank_null", "principal_angle_deg")
MODULE_FIELDS += ("principal_angle_null_deg",)
HEAD_FIELDS = ("layer", "module", "head", "rel_frobenius")
TOKEN_FIELDS = ("mean_kl", "mean_kl_null", "by_relative_position", "top_tokens", "logit_lens")
NULLS = (
    "Weights: each ΔW beside seeded Gaussian noise of its size, row by row (shiftlens.nulls.perturb_like); its "
    "relative size equals ΔW's by construction, so only an effective rank below, or a principal angle beyond, "
    "the null's says the update has structure. Tokens: KL(null ‖ base), the base with every parameter moved by "
    "such noise (one seeded draw), on the same tokens: the divergence an update of this size but no direction "
    "causes (a model against itself diverges nowhere, so it is no null)."
)


def _finite(value: Any) -> Any:
    """A JSON-safe value: non-finite floats as None."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def kl_finding(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per example, mean KL(tuned ‖ base) against the null's mean KL on the same tokens (paired, guarded; the
    analysis's one claim, so its adjusted p is its p)."""
    from shiftlens.evidence import adjust
    from shiftlens.stats import paired_finding

    pairs = [(e["mean_kl_null"], e["mean_kl"]) for e in examples if e.get("mean_kl_null") is not None]
    claim = "per example, the tuned model diverges from the base more than the base + noise of the tuning's size"
    null, observed = ([p[i] for p in pairs] for i in (0, 1))
    return adjust([paired_finding(METHOD, claim, null, observed)])[0].to_json()


def diff_results(directory: str | Path, notes: dict[str, str] | None = None) -> dict[str, Any]:
    """The report's "Where tuning acted" data of a diff directory; ``notes``: why a part did not run."""
    directory, notes = Path(directory), dict(notes or {})
    out: dict[str, Any] = {"not_run": notes, "nulls": NULLS, "finding": []}
    weights = directory / WEIGHTS_FILE
    if "weights" not in notes and weights.exists():
        rows = pq.read_table(weights).to_pylist()
        out["modules"] = [{k: _finite(r[k]) for k in MODULE_FIELDS if k in r} for r in rows if r["head"] == -1]
        out["heads"] = [{k: _finite(r[k]) for k in HEAD_FIELDS} for r in rows if r["head"] >= 0]
    summary = directory / "tokens" / SUMMARY_FILE
    if summary.exists():
        data = json.loads(summary.read_text(encoding="utf-8"))
        out["tokens"] = {k: data[k] for k in TOKEN_FIELDS if k in data} | {"examples": len(data["examples"])}
        if data.get("mean_kl_null") is not None:
            out["finding"].append(kl_finding(data["examples"]))
    return out
