"""How many FFN principal components (R) to keep per layer, sized to the model's hidden size.

The paper keeps 300 of LLaMA-7B's 4,096 dimensions (~7.3 %). The default keeps the same fraction of any
model's hidden size, so a small model is not asked for more directions than it has: R = ⌊300 · hidden /
4096 + ½⌋, at least 1 (19 for hidden 256, 42 for 576, 150 for 2,048, 300 for 4,096). An explicit R above
the hidden size is refused (a layer has no more principal axes), and a rotation analysis refuses
R ≥ hidden / 2: two R-dimensional subspaces of a hidden-dimensional space share at least 2R − hidden
dimensions, so that many principal angles are 0 whatever the tuning did.
"""

from __future__ import annotations

from shiftlens.errors import ShiftlensError

PAPER_COMPONENTS = 300
PAPER_HIDDEN = 4096
RULE = f"R = round({PAPER_COMPONENTS} / {PAPER_HIDDEN} x hidden), at least 1 (the paper's fraction of LLaMA-7B)"


def default_components(hidden: int) -> int:
    """The default R for a hidden size: the paper's 300 of 4,096, scaled (half rounded up), at least 1."""
    return max(1, (2 * PAPER_COMPONENTS * hidden + PAPER_HIDDEN) // (2 * PAPER_HIDDEN))


def resolve_components(components: int | None, hidden: int) -> int:
    """R to keep: the default for ``hidden`` when None, else ``components`` if 1 ≤ R ≤ hidden (refused otherwise)."""
    if components is None:
        return default_components(hidden)
    if components < 1:
        raise ShiftlensError(f"--components must be at least 1, got {components}")
    if components > hidden:
        raise ShiftlensError(
            f"--components {components} exceeds the hidden size {hidden}: a layer has at most {hidden} principal "
            f"components; use at most {(hidden - 1) // 2} for a rotation analysis "
            f"(default {default_components(hidden)})"
        )
    return components


def check_rotation_components(components: int, hidden: int) -> None:
    """Refuse a rotation analysis of R ≥ hidden / 2 components, which forces principal angles to 0."""
    if 2 * components >= hidden:
        raise ShiftlensError(
            f"rotation needs R < hidden/2: {components} components of hidden size {hidden} share at least "
            f"{max(0, 2 * components - hidden)} dimensions whatever the tuning did (angle 0); rerun 'shiftlens ffn' "
            f"with --components {default_components(hidden)} (the default) or at most {(hidden - 1) // 2}"
        )
