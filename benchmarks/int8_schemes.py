"""int8 QDQ schemes side by side: agreement with the checkpoint and TensorRT lint errors.

The exporter's scheme (symmetric, float bias, float stem: what TensorRT's parser takes) beside
the scheme the exporter used before (asymmetric activations, INT32 bias, int8 stem), each with
MinMax and Percentile calibration, on the same fp32 graph, calibration and verification images
as `sketchsearch export onnx --precision int8` uses. Prints one markdown row per scheme and
method (the README's "int8 calibration" table).

    python benchmarks/int8_schemes.py --checkpoint demo-output/run/best.ckpt \\
        --calib-split demo-output/split.json:train --data demo-output/data
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import onnx

from sketchsearch.export.images import resolve_images
from sketchsearch.export.pipeline import ExportOptions, export_onnx, verify_file
from sketchsearch.export.precision import (
    TENSORRT_QDQ_OPTIONS,
    _Calibration,
    stem_convolutions,
)
from sketchsearch.export.tensorrt_lint import lint_file
from sketchsearch.runtime.model_card import read_onnx_card
from sketchsearch.train.checkpoint_card import load_with_card

SCHEMES = {
    "before issue 18 (asymmetric activations, INT32 bias, int8 stem)": (
        {"ActivationSymmetric": False, "WeightSymmetric": True},
        False,
    ),
    "now (symmetric, float bias, float stem)": (dict(TENSORRT_QDQ_OPTIONS), True),
}
METHODS = {"minmax": "MinMax", "percentile": "Percentile"}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--calib-split", required=True, help="SPLIT:PART for calibration.")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--calib-count", type=int, default=500)
    args = parser.parse_args(argv)

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    loaded = load_with_card(args.checkpoint, "int8")
    images = resolve_images(loaded.run, None, args.calib_split, args.data, args.calib_count, 64)
    assert images is not None
    print(
        "| int8 scheme | method | min / mean cosine vs torch | top-1 agreement | top-5 overlap "
        "| TensorRT lint errors |"
    )
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        options = ExportOptions(args.checkpoint, folder / "fp32.onnx", verify=False)
        (exported,) = export_onnx(options, loaded)
        card = read_onnx_card(exported.path)
        prepared = folder / "prepared.onnx"
        quant_pre_process(str(exported.path), str(prepared), skip_symbolic_shape=True)
        stems = stem_convolutions(onnx.load(str(prepared)))
        for scheme, (extra, float_stem) in SCHEMES.items():
            for method, name in METHODS.items():
                output = folder / "int8.onnx"
                quantize_static(
                    str(prepared),
                    str(output),
                    _Calibration(images.calibration, card.preprocess, card.input_name, "uint8"),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, name),
                    nodes_to_exclude=stems if float_stem else [],
                    extra_options=dict(extra),
                )
                report = verify_file(output, loaded, card, images.verification, images.source)
                errors = len(lint_file(output).errors)
                print(
                    f"| {scheme} | {method} | {report.min_cosine:.6f} / {report.mean_cosine:.6f} "
                    f"| {report.top1_agreement:.3f} | {report.topk_overlap:.3f} | {errors} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
