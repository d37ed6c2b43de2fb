"""`make demo` ends by printing the one command that serves its model and gallery.

The printed line is run as printed (with a model folder that does not exist): it must reach
the model check, not fail on an unknown option, so the line cannot rot as options change.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_ends_with_a_serve_command_that_parses(tmp_path: Path) -> None:
    # Not the make that may be running this test (`make test`): its flags would add lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    dry_run = subprocess.run(
        ["make", "-n", "--no-print-directory", "demo", f"DEMO_DIR={tmp_path}",
         f"STAMP={tmp_path}/stamp"],
        cwd=REPO, capture_output=True, text=True, check=True, env=env,
    ).stdout  # fmt: skip
    last = shlex.split(dry_run.strip().splitlines()[-1])
    assert last[0] == "echo"
    words = shlex.split(last[1])
    assert Path(words[0]).name == "sketchsearch" and words[1] == "serve"
    assert words[words.index("--engine") + 1] == f"{tmp_path}/model.onnx"
    assert words[words.index("--index") + 1] == f"{tmp_path}/gallery"
    served = subprocess.run(
        [sys.executable, "-m", "sketchsearch.cli", *words[1:], "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert served.returncode == 2
    assert "model.onnx" in served.stderr and "No such option" not in served.stderr
