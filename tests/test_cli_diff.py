"""`shiftlens diff` end to end on the organism pair: the weight map, then per-token divergence and logit lens."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from shiftlens import organism
from shiftlens.cli.main import main


def test_diff_writes_the_weight_map_and_the_token_run(tmp_path, capsys) -> None:
    out = tmp_path / "diff"
    argv = ["diff", "organism-base", "organism-tuned", "--data", str(organism.prompts_path()), "--limit", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    weights = pq.read_table(out / "weights.parquet").to_pydict()
    # GPT-2 has no gated MLP (the gate is checked on a tiny Llama: tests/test_diff_weights.py)
    assert set(weights["module"]) == {"q", "k", "v", "o", "up", "down", "embed", "attn_norm", "mlp_norm", "final_norm"}
    assert max(weights["rel_frobenius"]) > 0 and "effective_rank_null" in weights
    summary = json.loads((out / "tokens" / "summary.json").read_text())
    assert len(summary["examples"]) == 2 and summary["mean_kl"] > 0
    assert "wrote" in capsys.readouterr().out
    weights_only = ["diff", "organism-base", "organism-tuned", "--weights-only", "--no-null"]
    assert main([*weights_only, "--out", str(tmp_path / "w")]) == 0
    assert "effective_rank_null" not in pq.read_table(tmp_path / "w" / "weights.parquet").column_names
