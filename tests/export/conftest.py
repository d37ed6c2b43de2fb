"""Real exports shared by the export tests: two backbone families, each in every precision."""

from __future__ import annotations

from pathlib import Path

import pytest

from sketchsearch.benchmarks.make_checkpoint import make_checkpoint
from sketchsearch.export.pipeline import ExportOptions, export_onnx

PRECISIONS = ("fp32", "fp16", "int8")


def export_all(checkpoint: Path, out: Path, images: Path | None = None) -> dict[str, Path]:
    """fp32, fp16 and int8 through `export_onnx`, with the default options users get."""
    models = {}
    for precision in PRECISIONS:
        options = ExportOptions(
            checkpoint=checkpoint,
            output=out / f"model.{precision}.onnx",
            precision=precision,
            calib_images=images,
            calib_count=64,
        )
        (result,) = export_onnx(options)
        models[precision] = result.path
    return models


@pytest.fixture(scope="session")
def real_exports(
    tiny_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Path]]:
    """{backbone: {precision: model.onnx}} for a trained resnet10t and an efficientnet.

    The resnet is the tests' trained tiny run; the efficientnet (timm's test_efficientnet) is
    untrained, calibrated and verified on the same run's images.
    """
    out = tmp_path_factory.mktemp("real-exports")
    efficientnet = make_checkpoint(
        out / "efficientnet" / "best.ckpt", "test_efficientnet", 32, 16, 6
    )
    return {
        "resnet10t": export_all(tiny_run / "best.ckpt", _folder(out / "resnet10t")),
        "test_efficientnet": export_all(
            efficientnet, _folder(out / "efficientnet"), tiny_run.parent / "data"
        ),
    }


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
