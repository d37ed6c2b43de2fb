"""`python export/to_tensorrt.py …`: the same command as `sketchsearch export tensorrt`."""

import sys

from sketchsearch.cli.main import run
from sketchsearch.cli.tensorrt_commands import tensorrt

if __name__ == "__main__":
    sys.exit(run(tensorrt))
