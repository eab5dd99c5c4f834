"""Negative control of the heads Table 3 (issue 14): base vs base + noise of the tuning's size, planted verbs.

The 10 words the positive control plants (`tests/test_validation_controls.py`), tested on organism-base
against organism-base + `perturb_like` noise as large as organism-tuned's update, row by row, per draw.
Prints each draw's p-value (or why the test was refused) and the rate of draws declaring a finding.
Run: ``.venv/bin/python bench/heads_negative_control.py [--draws 10]``.
"""

from __future__ import annotations

import argparse

import numpy as np

from shiftlens import organism
from shiftlens.analysis.heads import compare_pairs, word_list
from shiftlens.heads.core import explain_layer
from shiftlens.heads.records import unit_rows
from shiftlens.nulls import perturb_like, seeded_generators
from shiftlens.validation.inputs import ControlInputs, control_inputs


def pair_rows(inputs: ControlInputs, attention: list) -> dict[str, np.ndarray]:
    """Every layer's head pairs as the flat rows Table 3 reads."""
    parts = [
        unit_rows(layer, explain_layer(inputs.words, q, k, 100, inputs.pair_filter).arrays(), inputs.vocabulary.words)
        for layer, (q, k) in enumerate(attention)
    ]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=10)
    args = parser.parse_args()
    base = control_inputs("organism-base", organism.vocab_path())
    tuned = control_inputs("organism-tuned", organism.vocab_path())
    general = [w for w in word_list() if w in base.word_index]
    planted = [str(w) for w in np.random.default_rng(0).choice(general, 10, replace=False)]
    base_attention = [base.attention(layer) for layer in range(base.n_layers)]
    tuned_attention = [tuned.attention(layer) for layer in range(tuned.n_layers)]
    base_rows = pair_rows(base, base_attention)
    declared = []
    for generator in seeded_generators(args.draws):
        noisy = [
            (perturb_like(bq, tq, generator), perturb_like(bk, tk, generator))
            for (bq, bk), (tq, tk) in zip(base_attention, tuned_attention)
        ]
        group = compare_pairs(base_rows, pair_rows(base, noisy), planted, [w for w in general if w not in planted])
        entry = group.groups[0]
        declared.append(bool(entry["significant"]))
        print(f"p = {entry['p_value']}  testable = {entry['testable']}  {entry['reason'] or ''}")
    print(f"findings declared in {sum(declared)} of {len(declared)} draws")


if __name__ == "__main__":
    main()
