"""A typed view of an ONNX graph's tensors, as TensorRT's parser will see them.

The lint needs, for any tensor name, its element type (as TensorRT names types), whether it is
a build-time constant and its value, and which node produced it. ONNX keeps these in four
places (initializers, Constant nodes, value_info after shape inference, graph I/O); this
gathers them once. Types are TensorRT's where it retypes: a QuantizeLinear without a zero
point, or with a UINT8 one, outputs INT8 there.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

# ONNX element types under the names onnx-tensorrt's operators.md uses.
TYPE_NAMES: dict[int, str] = {
    TensorProto.FLOAT: "FP32",
    TensorProto.FLOAT16: "FP16",
    TensorProto.BFLOAT16: "BF16",
    TensorProto.DOUBLE: "DOUBLE",
    TensorProto.INT32: "INT32",
    TensorProto.INT64: "INT64",
    TensorProto.INT8: "INT8",
    TensorProto.UINT8: "UINT8",
    TensorProto.BOOL: "BOOL",
    TensorProto.FLOAT8E4M3FN: "FP8",
    TensorProto.INT4: "INT4",
}


class TensorView:
    """The graph's tensors: types (after ONNX shape inference), constants and producers."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.inference_error = ""
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception as err:  # without inference, types come from the file (and a warning)
            inferred = model
            self.inference_error = str(err).strip().splitlines()[0] if str(err).strip() else ""
        self.model = model
        self.nodes = list(model.graph.node)
        self.inputs = {v.name: v for v in model.graph.input}
        self.outputs = {v.name: v for v in model.graph.output}
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.values: dict[str, onnx.ValueInfoProto] = {}
        for info in (*inferred.graph.value_info, *model.graph.input, *model.graph.output):
            self.values[info.name] = info
        self.constants: dict[str, np.ndarray] = {
            name: numpy_helper.to_array(tensor) for name, tensor in self.initializers.items()
        }
        self.producers: dict[str, onnx.NodeProto] = {}
        for node in self.nodes:
            for output in node.output:
                self.producers[output] = node
            if node.op_type == "Constant" and node.output and node.attribute:
                value = _constant_value(node.attribute[0])
                if value is not None:
                    self.constants[node.output[0]] = value

    def elem_type(self, name: str) -> int | None:
        producer = self.producers.get(name)
        if producer is not None and self._quantizes_to_int8(producer):
            # ONNX says UINT8 (no zero point, or a UINT8 one); TensorRT quantizes to INT8 then
            # (QuantDequantLinearHelper), so that is the type its network has.
            return int(TensorProto.INT8)
        if name in self.initializers:
            return int(self.initializers[name].data_type)
        if name in self.constants and name not in self.initializers:
            return int(onnx.helper.np_dtype_to_tensor_dtype(self.constants[name].dtype))
        info = self.values.get(name)
        if info is None or not info.type.HasField("tensor_type"):
            return None
        return int(info.type.tensor_type.elem_type) or None

    def _quantizes_to_int8(self, node: onnx.NodeProto) -> bool:
        if node.op_type != "QuantizeLinear":
            return False
        if len(node.input) < 3 or not node.input[2]:
            return True
        zero_point = self.constants.get(node.input[2])
        return zero_point is not None and zero_point.dtype == np.uint8

    def type_name(self, name: str) -> str | None:
        kind = self.elem_type(name)
        if kind is None:
            return None
        return TYPE_NAMES.get(kind) or str(TensorProto.DataType.Name(kind))

    def is_constant(self, name: str) -> bool:
        return self.constant(name) is not None

    def constant(self, name: str) -> np.ndarray | None:
        """The value of a constant tensor, also through Identity (the parser folds it)."""
        if name in self.constants:
            return self.constants[name]
        producer = self.producers.get(name)
        if producer is not None and producer.op_type == "Identity":
            return self.constant(producer.input[0])
        return None


def _constant_value(attribute: onnx.AttributeProto) -> np.ndarray | None:
    """A Constant node's value, whichever of ``value``, ``value_float``, … holds it."""
    if attribute.name == "value":
        return numpy_helper.to_array(attribute.t)
    if attribute.name in ("value_float", "value_floats"):
        return np.asarray(onnx.helper.get_attribute_value(attribute), dtype=np.float32)
    if attribute.name in ("value_int", "value_ints"):
        return np.asarray(onnx.helper.get_attribute_value(attribute), dtype=np.int64)
    return None  # sparse and string values: TensorRT takes neither (operators.md)
