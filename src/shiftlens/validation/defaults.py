"""Defaults of `shiftlens validate`, in a module of constants only, so its parser imports nothing heavy."""

DRAWS = 10  # noise draws of the negative control (each explains one more model with all three methods); the
# effects beyond noise need at least 5, the false-positive rate of a declared finding at least 6 (leave one out)
RANDOM_SETS = 999  # random sets of the Monte Carlo nulls (FFN: word sets; heads: admissible pairs)
