"""`python export/to_onnx.py …`: the same command as `sketchsearch export onnx`."""

import sys

from sketchsearch.export.cli import onnx_command
from sketchsearch.runtime.cli import run

if __name__ == "__main__":
    sys.exit(run(onnx_command))
