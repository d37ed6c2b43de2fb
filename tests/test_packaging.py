"""The distribution: one `sketchsearch` namespace, nothing bare in site-packages."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("data", "gallery", "runtime", "train", "export", "benchmarks", "cli")
DEPENDENCIES = (
    "onnx",
    "onnxruntime",
    "tensorrt",
    "timm",
    "torch",
    "torchvision",
    "cv2",
    "hnswlib",
    "numpy",
    "lightning",
    "click",
    "sklearn",
    "pytorch_grad_cam",
)


@pytest.mark.slow
def test_wheel_installs_everything_under_the_sketchsearch_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("sketchsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"sketchsearch", wheel.name.split("-py")[0] + ".dist-info"}
    assert "sketchsearch/__init__.py" not in names  # a namespace, not a package
    for folder in FOLDERS:
        assert f"sketchsearch/{folder}/__init__.py" in names
    assert "sketchsearch/data/splits.py" in names
    for page in ("index.html", "app.js", "style.css", "docs.html", "docs.js"):  # served by `serve`
        assert f"sketchsearch/runtime/service/static/{page}" in names
    assert not any(name.startswith("sketchsearch/tests") for name in names)


def test_every_package_folder_is_mapped_in_setup_cfg() -> None:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    mapping = dict(
        line.split(" = ") for line in config["options"]["package_dir"].strip().splitlines()
    )
    assert mapping == {f"sketchsearch.{folder}": folder for folder in FOLDERS}
    packages = config["options"]["packages"].split()
    subfolders = {
        f"sketchsearch.{p.relative_to(REPO).as_posix().replace('/', '.')}"
        for folder in FOLDERS
        for p in [REPO / folder, *(REPO / folder).rglob("*")]
        if p.is_dir() and (p / "__init__.py").exists()
    }
    assert subfolders == set(packages)


def test_no_module_is_named_after_a_dependency() -> None:
    for folder in FOLDERS:
        for module in (REPO / folder).rglob("*.py"):
            assert module.stem not in DEPENDENCIES, f"{module} would shadow {module.stem}"


def test_torch_free_layers_never_import_torch_at_module_level() -> None:
    for folder in ("data", "gallery", "runtime"):
        for module in (REPO / folder).rglob("*.py"):
            for line in module.read_text(encoding="utf-8").splitlines():
                assert not line.startswith(("import torch", "from torch")), module
