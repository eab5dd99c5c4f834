"""Analyses over finished runs (base vs tuned), all of one shape.

One module per method's analysis: `instructions` (two attribution runs), `heads`, `ffn`. Each offers
``analyze_*(base_dir, tuned_dir, ...)``, which reads the two run directories, computes, writes nothing and
returns a typed result (`shiftlens.analysis.result.AnalysisResult`: ``to_json()``, ``save(dir)``); an
in-memory entry beside it takes what the runs hold (records, pair rows) for tests and calibrations.
Printing and files sit in the ``*_output`` / ``*_figures`` modules next to each, called by ``save``.
Statistics of one method stay in its package (`shiftlens.attribution.nulls`, `shiftlens.heads.knowledge`,
`shiftlens.heads.statistics`, `shiftlens.ffn.statistics`, `shiftlens.ffn.table5`, `shiftlens.ffn.rotation`);
shared ones (summaries, tests, intervals, NaN → None) in `shiftlens.stats`.
"""
