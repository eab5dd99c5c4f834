"""The rules of evidence: the degenerate-data guard, Holm's correction, the finding record, the null perturbation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shiftlens.errors import ShiftlensError
from shiftlens.evidence import Finding, adjust, check_protocol, holm, untestable_reason
from shiftlens.nulls import perturb_like, seeded_generators


def test_guard_refuses_small_and_constant_samples():
    assert untestable_reason([1, 2, 3, 4, 5], [2, 3, 4, 5, 6]) is None
    assert untestable_reason([1.0, 1.0, 1.0], [0.1, 0.5, 0.2, 0.9, 0.3]) == "side 1: n = 3 < 5"
    assert untestable_reason([1, 2, 3, 4, 5], [7] * 9) == "side 2: zero variance (all 7)"
    assert untestable_reason([1, 2, 3, 4, math.nan], [1, 2, 3, 4, 5]) == "side 1: n = 4 < 5"


def test_holm_matches_the_step_down_formula():
    p = [0.01, 0.04, 0.03, 0.5]
    # sorted 0.01, 0.03, 0.04, 0.5 → 4·0.01, max(3·0.03, ·), max(2·0.04, ·), max(1·0.5, ·)
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_adjust_skips_untestable_and_sets_significance():
    findings = [
        Finding("heads", "a", True, p_value=0.001),
        Finding.untestable("ffn", "b", "side 1: n = 2 < 5"),
        Finding("attribution", "c", True, p_value=0.04),
    ]
    out = adjust(findings)
    assert out[0].p_adjusted == pytest.approx(0.002) and out[0].significant
    assert out[1].p_adjusted is None and not out[1].significant and out[1].reason
    assert out[2].p_adjusted == pytest.approx(0.04) and out[2].significant
    assert Finding.from_json(out[2].to_json()) == out[2]
    assert Finding("x", "y", True, p_value=math.nan).to_json()["p_value"] is None


def test_protocol_names():
    assert check_protocol("paper") == "paper"
    with pytest.raises(ShiftlensError, match="unknown protocol 'papr'"):
        check_protocol("papr")


def test_perturbation_has_the_update_row_norms_and_no_structure():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(50, 40, generator=g)
    tuned = base.clone()
    tuned[:, 0] += torch.arange(50, dtype=torch.float32)  # a structured update along one column
    null = perturb_like(base, tuned, seeded_generators(1)[0])
    torch.testing.assert_close((null - base).norm(dim=1), (tuned - base).norm(dim=1))
    share_on_column = ((null - base)[1:, 0] ** 2).sum() / ((null - base)[1:] ** 2).sum()
    assert share_on_column < 0.2  # the update put all of it on column 0; the null spreads it
    again = perturb_like(base, tuned, seeded_generators(1)[0])
    assert torch.equal(null, again)
    assert not np.allclose(null.numpy(), perturb_like(base, tuned, seeded_generators(2)[1]).numpy())
    with pytest.raises(ValueError, match="differ in shape"):
        perturb_like(base, tuned[:3], g)
