"""Fixtures for the service tests: the tiny model and a gallery of its photos, each made once.

The gallery's images live under ``images/<label>/``; tests that change a gallery copy it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_server import build_gallery_cli


@pytest.fixture(scope="session")
def served(tiny_onnx: Path, tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with model.onnx, images/<label>/*.jpg (the tiny set's photos) and gallery/."""
    folder = tmp_path_factory.mktemp("served")
    shutil.copy(tiny_onnx, folder / "model.onnx")
    photos = next((tiny_run.parent / "data" / "photo").iterdir())  # photo/<variant>/<label>/
    shutil.copytree(photos, folder / "images")
    build_gallery_cli(folder / "model.onnx", folder / "images", folder / "gallery")
    return folder


@pytest.fixture
def served_copy_server(served: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A server on a private copy of ``served``'s images and gallery (a test may delete files):
    its URL and the copy's folder."""
    from service_server import ServeProcess

    folder = tmp_path / "copy"
    shutil.copytree(served / "images", folder / "images")
    shutil.copy(served / "model.onnx", folder / "model.onnx")
    build_gallery_cli(folder / "model.onnx", folder / "images", folder / "gallery")
    with ServeProcess(folder / "model.onnx", folder / "gallery") as server:
        yield server.url, folder
