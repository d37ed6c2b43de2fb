"""Shared fixtures: tiny image trees written into pytest's tmp_path, never the working dir."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from imagetree import VARIANT, write_image


@pytest.fixture
def sketchy_tree(tmp_path: Path) -> Callable[..., Path]:
    """Build a Sketchy-layout tree: {category: {photo_id: sketch count}}."""

    def build(
        spec: dict[str, dict[str, int]],
        root: Path | None = None,
        order: Iterable[str] | None = None,
    ) -> Path:
        base = root or tmp_path / "sketchy"
        categories = list(order) if order is not None else list(spec)
        for c_index, category in enumerate(categories):
            photo_dir = base / "photo" / VARIANT / category
            sketch_dir = base / "sketch" / VARIANT / category
            photo_dir.mkdir(parents=True, exist_ok=True)
            sketch_dir.mkdir(parents=True, exist_ok=True)
            for p_index, (photo_id, sketches) in enumerate(spec[category].items()):
                write_image(photo_dir / f"{photo_id}.jpg", seed=c_index * 1000 + p_index)
                for n in range(1, sketches + 1):
                    write_image(sketch_dir / f"{photo_id}-{n}.png", seed=n)
        return base

    return build
