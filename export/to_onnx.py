"""`python export/to_onnx.py …`: the same command as `sketchsearch export onnx`."""

import sys

from sketchsearch.cli.export_commands import onnx_command
from sketchsearch.cli.main import run

if __name__ == "__main__":
    sys.exit(run(onnx_command))
