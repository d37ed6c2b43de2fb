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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny model's run folder (best.ckpt, config.yaml naming its data and split).

    6 categories × 6 photos × 2 sketches at 48 px, resnet10t at 32 px, embedding 16: enough
    images for int8 calibration (one batch of 16) and for a retrieval better than chance.
    """
    from sketchsearch.data.layouts import scan
    from sketchsearch.data.split_file import build_split_file, save_split
    from sketchsearch.data.splits import SplitConfig, make_split
    from sketchsearch.data.synth import SynthConfig, generate
    from sketchsearch.train.config import TrainConfig
    from sketchsearch.train.run import train

    folder = tmp_path_factory.mktemp("tiny-run")
    root = folder / "data"
    generate(
        root,
        SynthConfig(categories=6, photos_per_category=6, sketches_per_photo=2, size=48, seed=5),
    )
    collection = scan(root)
    split_config = SplitConfig(seed=0, fractions=(0.5, 0.25, 0.25))
    split = save_split(
        build_split_file(collection, split_config, make_split(collection, split_config)),
        folder / "split.json",
    )
    config = TrainConfig(
        data=str(root),
        split=str(split),
        out=str(folder / "run"),
        model="resnet10t",
        img_size=32,
        embed_dim=16,
        epochs=3,
        batch_size=16,
        loss="infonce=1,ce=1",
        lr=3e-3,
        workers=0,
        warmup_epochs=0,
        test=False,
        baseline=False,
    )
    return train(config).out


@pytest.fixture(scope="session")
def tiny_onnx(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run's fp32 ONNX export, made once per session.

    Read-only: a module that writes beside its model (backend recommendations, OpenVINO IRs,
    the galleries record) copies the file into a folder of its own first.
    """
    from sketchsearch.export.pipeline import ExportOptions, export_onnx

    folder = tmp_path_factory.mktemp("tiny-onnx")
    options = ExportOptions(checkpoint=tiny_run / "best.ckpt", output=folder / "model.onnx")
    (result,) = export_onnx(options)
    return result.path
