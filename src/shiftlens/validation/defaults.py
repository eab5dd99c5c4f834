"""Defaults of `shiftlens validate`, in a module of constants only, so its parser imports nothing heavy."""

DRAWS = 3  # noise draws of the negative control (each explains one more model with all three methods)
RANDOM_SETS = 999  # random sets of the Monte Carlo nulls (FFN: word sets; heads: admissible pairs)
