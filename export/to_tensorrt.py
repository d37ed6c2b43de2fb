"""`python export/to_tensorrt.py …`: the same command as `sketchsearch export tensorrt`."""

import sys

from sketchsearch.export.tensorrt_cli import tensorrt
from sketchsearch.runtime.cli import run

if __name__ == "__main__":
    sys.exit(run(tensorrt))
