"""The installed console scripts, run as a user runs them, in subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_runtime_and_retrieve_help_never_import_torch() -> None:
    code = (
        "import sys\n"
        "import sketchsearch.runtime.cli as c\n"
        "assert 'torch' not in sys.modules\n"
        "try:\n"
        "    c.retrieve.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "try:\n"
        "    c.cli.main(['data', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('torch', 'torchvision', 'timm', 'lightning')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stdout


def test_console_scripts_report_errors_without_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [BIN / "sketchsearch", "data", "info", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "does not exist" in done.stderr
    (tmp_path / "empty").mkdir()
    done = subprocess.run(
        [BIN / "sketchsearch", "data", "info", str(tmp_path / "empty")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    done = subprocess.run([BIN / "retrieve", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--engine" in done.stdout
    done = subprocess.run([BIN / "retrieve"], capture_output=True, text=True)
    assert done.returncode == 2 and "not available in this release" in done.stderr
