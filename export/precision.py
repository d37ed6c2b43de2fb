"""fp16 and int8 variants of the fp32 graph, made with the well-kept converters.

fp16: onnxconverter-common's ``convert_float_to_float16`` with fp32 model I/O. The uint8→float
Cast at the input is kept in fp32 (the converter would retype its output without changing its
``to`` attribute, which onnxruntime rejects); the converter inserts a cast after it.

int8: onnxruntime's ``quantize_static`` in QDQ format (explicit quantization, the form
TensorRT ≥ 10 builds int8 engines from), symmetric int8 weights per output channel and int8
activations whose ranges come from calibration images fed through the runtime's preprocessing.
The calibration method is MinMax by default (the observed range of every activation over all
calibration batches); Entropy and Percentile are available.
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
    method: str = "minmax",
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
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
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
