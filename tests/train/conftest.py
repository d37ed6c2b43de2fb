"""A tiny synthetic data set and split shared by the training tests (made once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sketchsearch.data.layouts import scan
from sketchsearch.data.split_file import build_split_file, save_split
from sketchsearch.data.splits import SplitConfig, make_split
from sketchsearch.data.synth import SynthConfig, generate


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    root = folder / "data"
    generate(
        root,
        SynthConfig(categories=4, photos_per_category=6, sketches_per_photo=1, size=48, seed=3),
    )
    collection = scan(root)
    config = SplitConfig(seed=0, fractions=(0.5, 0.25, 0.25))
    split = build_split_file(collection, config, make_split(collection, config))
    return root, save_split(split, folder / "split.json")
