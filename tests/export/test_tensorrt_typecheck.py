"""The TensorRT modules type-check against tensorrt-stubs, and the stubs catch TensorRT 8 code.

TensorRT cannot be installed on a machine without NVIDIA's index, so mypy is the check that
the code calls the TensorRT 10 API as it exists: ``build_engine`` and ``max_workspace_size``
(removed in 10.0) must be errors. The stubs come from PyPI through tools/tensorrt_stubs.py,
cached in build/stubs; without access to PyPI the mypy tests are skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
STUBS = REPO / "build" / "stubs"
MODULES = (
    "sketchsearch.export.tensorrt_build",
    "sketchsearch.cli.tensorrt_commands",
    "sketchsearch.runtime.engines.tensorrt_engine",
)
Mypy = Callable[..., subprocess.CompletedProcess[str]]
TENSORRT_8 = """\
import tensorrt as trt

logger = trt.Logger(trt.Logger.WARNING)
builder = trt.Builder(logger)
network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
config = builder.create_builder_config()
config.max_workspace_size = 1 << 30
engine = builder.build_engine(network, config)
"""


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "tensorrt_stubs", REPO / "tools" / "tensorrt_stubs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the stub repair: two rules, applied only where Python's parser fails ---


def test_a_parameter_named_in_is_renamed() -> None:
    tool = load_tool()
    text = 'class P:\n    """:arg in: kept"""\n    def f(self, in: list[int], out: int) -> int:\n'
    text += "        ...\n"
    repaired, notes = tool.repair_stub(text, "p.pyi")
    assert "def f(self, in_: list[int], out: int) -> int:" in repaired
    assert ":arg in: kept" in repaired and notes == [
        "p.pyi:3: def f(self, in: list[int], out: int) -> int:"
    ]


def test_a_required_parameter_after_defaults_gets_a_default() -> None:
    tool = load_tool()
    line = "def add(self, a: int, b: dict[str, int] = None, c: tuple[int, int]) -> None: ...\n"
    repaired, notes = tool.repair_stub(line, "s.pyi")
    assert repaired == (
        "def add(self, a: int, b: dict[str, int] = None, c: tuple[int, int] = ...) -> None: ...\n"
    )
    assert len(notes) == 1


def test_valid_stubs_are_left_alone_and_unknown_problems_stop_it() -> None:
    tool = load_tool()
    valid = "def f(x: int = 1, *, y: int) -> None: ...\n"
    assert tool.repair_stub(valid, "v.pyi") == (valid, [])
    with pytest.raises(tool.StubError, match="no rule repairs"):
        tool.repair_stub("def f(x: int) -> None ...\n", "bad.pyi")


# --- mypy with the stubs ---


@pytest.fixture(scope="module")
def stubs() -> Path:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "tensorrt_stubs.py"), "--dest", str(STUBS)],
        capture_output=True,
        text=True,
    )
    if done.returncode == 75:
        pytest.skip(f"tensorrt-stubs cannot be downloaded here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    return STUBS


@pytest.fixture(scope="module")
def mypy(stubs: Path, tmp_path_factory: pytest.TempPathFactory) -> Mypy:
    """mypy with mypy-tensorrt.ini, reading our folders through a `sketchsearch/` namespace."""
    root = tmp_path_factory.mktemp("typecheck")
    (root / "sketchsearch").mkdir()
    for folder in ("data", "gallery", "runtime", "train", "export", "cli"):
        (root / "sketchsearch" / folder).symlink_to(REPO / folder, target_is_directory=True)
    env = {**os.environ, "MYPYPATH": f"{root}{os.pathsep}{stubs}"}
    config = ["--config-file", str(REPO / "mypy-tensorrt.ini"), "--cache-dir", str(root / ".cache")]

    def check(*targets: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mypy", *config, *targets]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)

    return check


@pytest.mark.slow
def test_our_tensorrt_modules_typecheck_against_the_stubs(mypy: Mypy) -> None:
    targets = [arg for module in MODULES for arg in ("-m", module)]
    done = mypy(*targets)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_the_tensorrt_8_api_is_a_type_error(mypy: Mypy, tmp_path: Path) -> None:
    snippet = tmp_path / "trt8_build.py"
    snippet.write_text(TENSORRT_8)
    done = mypy(str(snippet))
    assert done.returncode == 1
    assert '"Builder" has no attribute "build_engine"' in done.stdout
    assert '"IBuilderConfig" has no attribute "max_workspace_size"' in done.stdout
    assert "Found 2 errors in 1 file" in done.stdout  # nothing from inside the stubs
