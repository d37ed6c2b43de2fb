"""`python train/find_lr.py …`: the same command as `sketchsearch train find-lr`."""

import sys

from sketchsearch.runtime.cli import run
from sketchsearch.train.cli import find_lr

if __name__ == "__main__":
    sys.exit(run(find_lr))
