"""TensorRT's rules for explicit quantization: Q/DQ zero points, scales and types, int8 stems.

See ``export/tensorrt_lint.py`` for the sources of each rule.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx

from sketchsearch.export import tensorrt_operators as table
from sketchsearch.export.onnx_tensors import TensorView
from sketchsearch.export.tensorrt_rules import ERROR, QDQ, WARNING, Finding, node_label

DEQUANTIZE_INPUTS = frozenset({"INT8", "FP8", "INT4"})
MAX_STEM_CHANNELS = 3


def quantization(graph: TensorView) -> Iterator[Finding]:
    for node in graph.nodes:
        if node.op_type in QDQ:
            yield from _qdq(graph, node)
        elif node.op_type == "Conv":
            yield from _int8_stem(graph, node)


def _qdq(graph: TensorView, node: onnx.NodeProto) -> Iterator[Finding]:
    where = node_label(node)
    if node.op_type == "DequantizeLinear":
        kind = graph.type_name(node.input[0])
        if kind is not None and kind not in DEQUANTIZE_INPUTS:
            yield Finding(
                "qdq-input-type",
                ERROR,
                where,
                f"dequantizes {node.input[0]!r} of type {kind}; TensorRT's DequantizeLinear "
                f"takes {', '.join(sorted(DEQUANTIZE_INPUTS))} only (quantize no biases)",
            )
    else:
        kind = graph.type_name(node.input[0])
        allowed = table.SUPPORTED["QuantizeLinear"]
        if kind is not None and kind not in allowed:
            yield Finding(
                "qdq-input-type",
                ERROR,
                where,
                f"quantizes {node.input[0]!r} of type {kind}; TensorRT takes {', '.join(allowed)}",
            )
    scale = node.input[1] if len(node.input) > 1 else ""
    if not graph.is_constant(scale):
        yield Finding("qdq-scale", ERROR, where, f"scale {scale!r} is not a constant")
    else:
        values = graph.constant(scale)
        if values is not None and not (np.isfinite(values).all() and (values > 0).all()):
            yield Finding("qdq-scale", ERROR, where, f"scale {scale!r} is not positive and finite")
    if len(node.input) < 3 or not node.input[2]:
        return
    zero_point = node.input[2]
    values = graph.constant(zero_point)
    if values is None:
        yield Finding(
            "qdq-zero-point", ERROR, where, f"zero point {zero_point!r} is not a constant"
        )
        return
    if np.any(values != 0):
        nonzero = int(np.count_nonzero(values))
        yield Finding(
            "qdq-zero-point",
            ERROR,
            where,
            f"zero point {zero_point!r} has {nonzero} non-zero value(s) (e.g. "
            f"{int(values.flat[np.flatnonzero(values)[0]])}): TensorRT quantizes symmetrically; "
            "quantize with symmetric activations",
        )
    if values.dtype == np.uint8:
        yield Finding(
            "qdq-zero-point",
            WARNING,
            where,
            f"zero point {zero_point!r} is UINT8, which TensorRT takes as INT8",
        )


def _weights(graph: TensorView, name: str) -> np.ndarray | None:
    """The constant behind a DequantizeLinear: stored int8, or float through a QuantizeLinear."""
    found = graph.constant(name)
    producer = graph.producers.get(name)
    if found is None and producer is not None and producer.op_type == "QuantizeLinear":
        return graph.constant(producer.input[0])
    return found


def _int8_stem(graph: TensorView, node: onnx.NodeProto) -> Iterator[Finding]:
    """A convolution both of whose inputs come out of DequantizeLinear runs in int8."""
    if len(node.input) < 2:
        return
    producers = [graph.producers.get(name) for name in node.input[:2]]
    if not all(p is not None and p.op_type == "DequantizeLinear" for p in producers):
        return
    weight_dq = producers[1]
    assert weight_dq is not None
    weights = _weights(graph, weight_dq.input[0])
    if weights is None or weights.ndim < 2:
        return
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    channels = int(weights.shape[1]) * int(group)
    if channels <= MAX_STEM_CHANNELS:
        yield Finding(
            "int8-stem",
            ERROR,
            node_label(node),
            f"an int8 convolution over {channels} input channels has no TensorRT kernel "
            "(NVIDIA/TensorRT#3640): keep the stem in float (exclude it from quantization)",
        )
