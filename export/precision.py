"""fp16 and int8 variants of the fp32 graph, made with the well-kept converters.

fp16: onnxconverter-common's ``convert_float_to_float16`` with fp32 model I/O. The uint8→float
Cast at the input is kept in fp32 (the converter would retype its output without changing its
``to`` attribute, which onnxruntime rejects); the converter inserts a cast after it.

int8: onnxruntime's ``quantize_static`` in QDQ format (explicit quantization, the form
TensorRT ≥ 10 builds int8 engines from), with activation ranges from calibration images fed
through the runtime's preprocessing. The options are the ones TensorRT's ONNX parser accepts
(``export/tensorrt_lint.py`` checks the result):

- symmetric int8 activations and weights (weights per output channel): TensorRT requires every
  Q/DQ zero point to be 0 (operators.md: QuantizeLinear "`y_zero_point` must be 0",
  DequantizeLinear "`x_zero_point` must be zero"; NVIDIA/TensorRT#4698, #2774);
- no bias quantization: onnxruntime would store biases as INT32 behind a DequantizeLinear,
  which TensorRT does not take (DequantizeLinear: INT8, FP8, INT4 only); TensorRT fuses the
  float bias into the int8 convolution itself;
- the stem (a convolution reading 3 channels) stays in float: TensorRT has no int8 kernel for
  it (NVIDIA/TensorRT#3640), and the first layer is the most sensitive to quantization anyway.

``to_int8`` quantizes with one calibration method; which one an export uses is decided by
``export/int8_calibration.py`` from measured agreement with the checkpoint.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx

from sketchsearch.data.errors import UsageError
from sketchsearch.runtime.pipeline import load_image
from sketchsearch.runtime.preprocess import PreprocessConfig

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
CALIBRATION_BATCH = 16
# What TensorRT's parser accepts: see the module docstring for the source of each.
TENSORRT_QDQ_OPTIONS = {
    "ActivationSymmetric": True,
    "WeightSymmetric": True,
    "QuantizeBias": False,
}
STEM_MAX_CHANNELS = 3


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxconverter_common import float16

    input_casts = [node.name for node in model.graph.node if node.op_type == "Cast"]
    with warnings.catch_warnings():  # "number truncated to 1e-07" per tiny weight: noise
        warnings.simplefilter("ignore", UserWarning)
        converted: onnx.ModelProto = float16.convert_float_to_float16(
            model, keep_io_types=True, node_block_list=input_casts
        )
    return converted


def to_int8(
    fp32_path: Path,
    output: Path,
    images: Sequence[Path],
    config: PreprocessConfig,
    input_name: str,
    input_dtype: str,
    method: str,
) -> list[str]:
    """Quantize; returns the calibration images that could not be read (they are skipped)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if method not in methods:
        raise UsageError(f"--calib-method {method!r}: use one of {', '.join(CALIBRATION_METHODS)}")
    reader = _Calibration(images, config, input_name, input_dtype)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        # onnxruntime's recommended pre-processing (shape inference, graph optimisation); its
        # symbolic shape inference trips over torch.export's Expand nodes, ONNX's does not.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        stems = stem_convolutions(_named(prepared))
        try:
            quantize_static(
                str(prepared),
                str(output),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=methods[method],
                nodes_to_exclude=stems,
                extra_options=dict(TENSORRT_QDQ_OPTIONS),
            )
        except ValueError:
            if reader.batches:  # a real quantization error: not ours to reword
                raise
            raise UsageError(
                f"int8 calibration: no batch of {CALIBRATION_BATCH} readable images among "
                f"{len(images)} ({len(reader.failed)} unreadable, e.g. "
                f"{reader.failed[0] if reader.failed else '-'}); pass readable images"
            ) from None
    return reader.failed


def _named(path: Path) -> onnx.ModelProto:
    """Give unnamed nodes names (saved back): quantize_static excludes nodes by name."""
    model = onnx.load(str(path))
    unnamed = [node for node in model.graph.node if not node.name]
    for index, node in enumerate(unnamed):
        node.name = f"sketchsearch_node_{index}"
    if unnamed:
        onnx.save(model, str(path))
    return model


def stem_convolutions(model: onnx.ModelProto) -> list[str]:
    """Names of the convolutions that read at most 3 channels (the RGB stem): kept in float."""
    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    stems = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in weights:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        dims = weights[node.input[1]].dims  # [out, in / group, kh, kw]
        if len(dims) >= 2 and dims[1] * group <= STEM_MAX_CHANNELS:
            stems.append(node.name)
    return stems


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over image files, in equal batches.

    Equal batches because the histogram calibrators stack per-batch arrays; a short last
    batch is dropped.
    """

    def __init__(
        self, images: Sequence[Path], config: PreprocessConfig, input_name: str, dtype: str
    ) -> None:
        self.failed: list[str] = []
        self.batches = 0
        self._batches = self._iterate(images, config, input_name, dtype)

    def _iterate(
        self, images: Sequence[Path], config: PreprocessConfig, input_name: str, dtype: str
    ) -> Iterator[dict[str, np.ndarray]]:
        batch: list[np.ndarray] = []
        for path in images:
            loaded = load_image(path, config)
            if loaded.image is None:
                self.failed.append(f"{path}: {loaded.problem}")
                continue
            batch.append(loaded.image)
            if len(batch) == CALIBRATION_BATCH:
                self.batches += 1
                yield {input_name: np.stack(batch).astype(dtype)}
                batch = []

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)
