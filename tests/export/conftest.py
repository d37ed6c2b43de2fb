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


@pytest.fixture(scope="session")
def triton_variants(
    tiny_onnx: Path, tiny_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The tiny run's exports whose graph types differ: fp32 (uint8 in), fp16 (fp32 I/O kept),
    and a float32 input without logits; the Triton tests check the config follows each graph."""
    out = tmp_path_factory.mktemp("triton-variants")
    checkpoint = tiny_run / "best.ckpt"
    fp16 = ExportOptions(checkpoint=checkpoint, output=out / "model.fp16.onnx", precision="fp16")
    float_input = ExportOptions(
        checkpoint=checkpoint,
        output=out / "model.float-input.onnx",
        input_dtype="float32",
        with_logits=False,
    )
    ((fp16_result,), (float_result,)) = export_onnx(fp16), export_onnx(float_input)
    return {"fp32": tiny_onnx, "fp16": fp16_result.path, "float32-input": float_result.path}
