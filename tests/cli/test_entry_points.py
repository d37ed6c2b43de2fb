"""The installed console scripts, run as a user runs them, in subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from blockers import BLOCK_TORCH

BIN = Path(sys.executable).parent


def run_without_torch(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a child where importing torch (or timm, lightning) raises."""
    code = BLOCK_TORCH + "from sketchsearch.cli.main import run, cli\n"
    code += "from sketchsearch.cli.retrieve_command import retrieve\n"
    code += f"sys.exit(run(retrieve if {args[0]!r} == 'retrieve' else cli, {list(args[1:])!r}))\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_the_runtime_cli_works_where_torch_cannot_be_imported(tmp_path: Path) -> None:
    blocked = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + "import torch"], capture_output=True, text=True
    )
    assert blocked.returncode != 0 and "torch is blocked" in blocked.stderr  # the blocker works
    for args in (
        ("retrieve", "--help"),
        ("sketchsearch", "--help"),
        ("sketchsearch", "data", "--help"),
        ("sketchsearch", "gallery", "--help"),
        ("sketchsearch", "train", "--help"),
        (
            "sketchsearch",
            "data",
            "synth",
            "--out",
            str(tmp_path / "d"),
            "--categories",
            "2",
            "--photos-per-category",
            "3",
            "--size",
            "32",
        ),
        ("sketchsearch", "data", "split", str(tmp_path / "d"), "--out", str(tmp_path / "s.json")),
    ):
        done = run_without_torch(*args)
        assert done.returncode == 0, (args, done.stderr)


def test_importing_the_runtime_loads_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "import sketchsearch.cli.main, sketchsearch.cli.data_commands\n"
        "import sketchsearch.cli.gallery_commands\n"
        "import sketchsearch.cli.retrieve_command, sketchsearch.cli.gallery_build_commands\n"
        "import sketchsearch.runtime.engines.table\n"
        "import sketchsearch.runtime.engines.onnx_engine\n"
        "import sketchsearch.cli.evaluate_command, sketchsearch.runtime.output.grid\n"
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
    assert done.returncode == 2 and "Missing option '--engine'" in done.stderr


ENTRY_SCRIPTS = [
    ["export/to_onnx.py"],
    ["export/to_tensorrt.py"],
    ["train/train.py"],
    ["train/find_lr.py"],
    ["train/gradcam.py"],
    ["-m", "sketchsearch.cli"],
    ["-m", "sketchsearch.benchmarks.real.openmoji"],
    ["-m", "sketchsearch.benchmarks.real.quality"],
    ["-m", "sketchsearch.benchmarks.real.ablation"],
]


@pytest.mark.parametrize("script", ENTRY_SCRIPTS, ids=lambda s: s[-1])
def test_every_documented_spelling_still_runs(script: list[str]) -> None:
    """The entry scripts kept at their documented paths reach the command-line floor."""
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, *script, "--help"], capture_output=True, text=True, cwd=repo
    )
    assert done.returncode == 0 and "Usage:" in done.stdout, done.stderr
