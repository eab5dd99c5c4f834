"""The `shiftlens` command line (`shiftlens.cli.main`).

Importing this package sets `OPENMP_ENV` in the environment (unless already set), before any subcommand
imports torch: OpenMP threads that wait at a barrier then sleep instead of spinning. On a machine whose cores
other processes also use (a shared node, a laptop), spinning threads burn the CPU time the others need and
wait for descheduled peers; measured on attribution (docs/benchmarks.md, *Attribution speed (issue 18)*):
under two busy background processes, 154 s of CPU instead of 52 s for the same work.
"""

import os

OPENMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}  # read by the OpenMP runtime once, when torch first loads it

for _name, _value in OPENMP_ENV.items():
    os.environ.setdefault(_name, _value)
