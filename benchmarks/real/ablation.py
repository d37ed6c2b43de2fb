"""`python -m sketchsearch.benchmarks.real.ablation …`: the entry script.

The recipe ablation on the OpenMoji zero-shot protocol: one training run per row, one table.

The command lives on the command-line floor (``sketchsearch.cli.real_benchmarks``);
the work in ``ablation_runner.py``.
"""

import sys

from sketchsearch.cli.main import run
from sketchsearch.cli.real_benchmarks import ablation

if __name__ == "__main__":
    sys.exit(run(ablation))
