"""Positive controls by weight surgery: plant a known shift, run a method, measure what it recovers.

A method is validated only when it recovers a planted shift and stays quiet where there is none
(docs/validation.md). `surgery` plants (pure tensor edits); `heads_control`, `ffn_control` and
`attribution_control` run each method on the planted weights and score recall and precision.
"""
