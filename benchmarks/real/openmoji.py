"""`python -m sketchsearch.benchmarks.real.openmoji …`: the entry script.

Build the OpenMoji line-art → colour benchmark from the pinned npm tarball.

The command lives on the command-line floor (``sketchsearch.cli.real_benchmarks``);
the work in ``openmoji_build.py``.
"""

import sys

from sketchsearch.cli.main import run
from sketchsearch.cli.real_benchmarks import openmoji

if __name__ == "__main__":
    sys.exit(run(openmoji))
