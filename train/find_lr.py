"""`python train/find_lr.py …`: the same command as `sketchsearch train find-lr`."""

import sys

from sketchsearch.cli.main import run
from sketchsearch.cli.train_commands import find_lr

if __name__ == "__main__":
    sys.exit(run(find_lr))
