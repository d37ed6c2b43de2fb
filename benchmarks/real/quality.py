"""`python -m sketchsearch.benchmarks.real.quality …`: the entry script.

Retrieval quality on a real held-out benchmark: trained models beside no-learning baselines.

The command lives on the command-line floor (``sketchsearch.cli.real_benchmarks``);
the work in ``quality_runner.py``.
"""

import sys

from sketchsearch.cli.main import run
from sketchsearch.cli.real_benchmarks import quality

if __name__ == "__main__":
    sys.exit(run(quality))
