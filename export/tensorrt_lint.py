"""Will TensorRT's ONNX parser take this file? A check that needs no GPU and no TensorRT.

A TensorRT engine can only be built on a GPU, and a graph the parser rejects is found out
there, at the first build, after everything else has passed. These rules are the parser's own,
read from its sources and documentation, so that an export is judged where it is made:

- ``uint8-intermediate``: no node may output UINT8 unless that tensor is a graph output
  (onnx-tensorrt ``ModelImporter.cpp``: "TensorRT does not support UINT8 types for intermediate
  tensors!"; ``docs/operators.md``: "UINT8 is only supported as network input or output").
- ``tensor-type``: every tensor has a type TensorRT knows (operators.md's list of data types);
  DOUBLE is cast down to FLOAT, a warning.
- ``operator``: the default ONNX domain at opsets 9-20, and only operators with an importer
  (operators.md's support matrix; other domains need plugins).
- ``operator-type``: each operator's data input has one of the types its row lists.
- ``constant-input``: inputs such as a Reduce's ``axes`` are initializers ("`axes` must be an
  initializer").
- ``attribute``: pools are 2D/3D with unit dilations and MaxPool has no ``Indices`` output;
  Resize uses a supported mode and coordinate transformation (operators.md restrictions).
- ``qdq-zero-point``: Q/DQ zero points are all zeros, TensorRT quantizes symmetrically
  (``onnxOpImporters.cpp`` ``QuantDequantLinearHelper``: "TensorRT only supports symmetric
  quantization"; operators.md: "`y_zero_point` must be 0", "`x_zero_point` must be zero";
  NVIDIA/TensorRT#4698, #2774); a UINT8 zero point is silently taken as INT8, a warning.
- ``qdq-scale``: scales are constant, positive and finite (QuantDequantLinearHelper: "Dynamic
  shape for scale tensor is not supported").
- ``qdq-input-type``: DequantizeLinear reads INT8, FP8 or INT4 only (operators.md), so an INT32
  bias behind a DequantizeLinear is refused.
- ``int8-stem``: no int8 convolution reads 3 or fewer channels: TensorRT has no int8 kernel
  for it (NVIDIA/TensorRT#3640).
- ``dynamic-shape``: inputs and outputs have static dimensions except the batch axis, the only
  one the engine's optimization profile sets (``export/tensorrt_build.py``); an input batch axis
  of fixed size is fine, a second dynamic axis is not.

The operator table is ``export/tensorrt_operators.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from sketchsearch.data.errors import ExitCode, SketchsearchError
from sketchsearch.export import tensorrt_operators as table

TENSORRT_PIN = "10.13"
ERROR = "error"
WARNING = "warning"
# ONNX element types under the names operators.md uses.
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
QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
DEQUANTIZE_INPUTS = frozenset({"INT8", "FP8", "INT4"})
MAX_STEM_CHANNELS = 3


class TensorRTCompatibilityError(SketchsearchError):
    """The ONNX file breaks a rule of TensorRT's parser: the engine build would fail."""

    exit_code = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # ERROR: the parser or builder refuses it; WARNING: it builds, but not as meant
    where: str  # the node or tensor
    message: str


@dataclass(frozen=True)
class LintReport:
    """What the lint found in one file, for the rules of ``tensorrt`` (the pinned version)."""

    tensorrt: str
    operator_table: str
    nodes: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def passed(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        if not self.findings:
            return f"TensorRT {self.tensorrt} parser rules: {self.nodes} nodes, no problem found"
        return (
            f"TensorRT {self.tensorrt} parser rules: {len(self.errors)} error(s), "
            f"{len(self.warnings)} warning(s) in {self.nodes} nodes; first: "
            f"{(self.errors or self.warnings)[0].message}"
        )

    def lines(self) -> list[str]:
        return [f"{f.severity}: [{f.rule}] {f.where}: {f.message}" for f in self.findings]


def lint_file(path: Path) -> LintReport:
    return lint_model(onnx.load(str(path)))


def lint_model(model: onnx.ModelProto) -> LintReport:
    """Check ``model`` against every rule in the module docstring."""
    graph = _Graph(model)
    findings = [
        *_opsets(model),
        *_io(graph),
        *_tensor_types(graph),
        *_operators(graph),
        *_quantization(graph),
    ]
    return LintReport(TENSORRT_PIN, table.TABLE_SOURCE, len(model.graph.node), findings)


def require_compatible(report: LintReport, source: Path) -> None:
    """For ``export tensorrt``: an engine build that the parser would refuse stops here."""
    if report.passed:
        return
    first = report.errors[0]
    more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
    raise TensorRTCompatibilityError(
        f"{source}: TensorRT's ONNX parser would refuse it: [{first.rule}] {first.where}: "
        f"{first.message}{more}; `sketchsearch export lint {source}` lists every finding, "
        "and `sketchsearch export onnx` with this version writes a compatible file"
    )


class _Graph:
    """The graph's tensors with their types and shapes (after ONNX shape inference)."""

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
        if name in self.constants:
            return True
        producer = self.producers.get(name)  # Identity(initializer) counts: the parser folds it
        return (
            producer is not None
            and producer.op_type == "Identity"
            and (self.is_constant(producer.input[0]))
        )


def _constant_value(attribute: onnx.AttributeProto) -> np.ndarray | None:
    """A Constant node's value, whichever of ``value``, ``value_float``, … holds it."""
    if attribute.name == "value":
        return numpy_helper.to_array(attribute.t)
    if attribute.name in ("value_float", "value_floats"):
        return np.asarray(onnx.helper.get_attribute_value(attribute), dtype=np.float32)
    if attribute.name in ("value_int", "value_ints"):
        return np.asarray(onnx.helper.get_attribute_value(attribute), dtype=np.int64)
    return None  # sparse and string values: TensorRT takes neither (operators.md)


def _where(node: onnx.NodeProto) -> str:
    return f"{node.op_type} {node.name or '(unnamed)'}"


def _opsets(model: onnx.ModelProto) -> Iterator[Finding]:
    low, high = table.OPSET_RANGE
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and not low <= opset.version <= high:
            yield Finding(
                "operator",
                ERROR,
                f"opset {opset.version}",
                f"TensorRT's operator table ({table.TABLE_SOURCE}) covers opsets {low}-{high}; "
                f"export with --opset {min(max(opset.version, low), high)}",
            )


def _io(graph: _Graph) -> Iterator[Finding]:
    """Only the batch axis may vary: the runtime refuses any other dynamic axis
    (``runtime/tensorrt_engine.check_io``), and the build's one profile fixes the image size."""
    for kind, values in (("input", graph.inputs), ("output", graph.outputs)):
        for name, info in values.items():
            if name in graph.initializers:
                continue  # old-style graphs list initializers as inputs
            dims = info.type.tensor_type.shape.dim
            for axis, dim in enumerate(dims):
                if axis == 0 and kind == "input" and len(dims) == 4 and dim.HasField("dim_value"):
                    yield Finding(
                        "dynamic-shape",
                        WARNING,
                        f"{kind} {name}",
                        f"the batch axis is fixed at {dim.dim_value}: `export tensorrt` then "
                        "needs --min-batch, --opt-batch and --max-batch equal to it",
                    )
                if axis == 0 or dim.HasField("dim_value"):
                    continue
                label = dim.dim_param or "unknown"
                yield Finding(
                    "dynamic-shape",
                    ERROR,
                    f"{kind} {name}",
                    f"axis {axis} is dynamic ({label}): a TensorRT engine here varies only the "
                    "batch axis; export with a fixed image size",
                )


def _tensor_types(graph: _Graph) -> Iterator[Finding]:
    io = set(graph.inputs) | set(graph.outputs)
    untyped = []
    for node in graph.nodes:
        for output in node.output:
            kind = graph.type_name(output)
            if kind is None and output:
                untyped.append(output)
            if kind is None or not output:
                continue
            if kind in table.IO_ONLY_TYPES and output not in io:
                yield Finding(
                    "uint8-intermediate",
                    ERROR,
                    _where(node),
                    f"outputs {output!r} as {kind}, which TensorRT allows only for network "
                    "inputs and outputs: cast the uint8 image to float before any other op",
                )
            elif kind not in table.DATA_TYPES:
                yield Finding(
                    "tensor-type",
                    ERROR,
                    _where(node),
                    f"outputs {output!r} as {kind}, a type TensorRT does not have",
                )
            elif kind == "DOUBLE":
                yield Finding(
                    "tensor-type",
                    WARNING,
                    _where(node),
                    f"outputs {output!r} as DOUBLE, which TensorRT casts down to FLOAT",
                )
    if untyped:
        cause = (
            f" (shape inference failed: {graph.inference_error})" if graph.inference_error else ""
        )
        yield Finding(
            "tensor-type",
            WARNING,
            f"{len(untyped)} tensor(s)",
            f"no known type for {untyped[0]!r} and {len(untyped) - 1} more{cause}: the type "
            "rules could not check them",
        )
    for name in io:
        kind = graph.type_name(name)
        if kind is not None and (kind not in table.DATA_TYPES or kind == "DOUBLE"):
            yield Finding(
                "tensor-type", ERROR, f"graph {name}", f"{kind} is not a TensorRT I/O type"
            )


def _operators(graph: _Graph) -> Iterator[Finding]:
    for node in graph.nodes:
        where = _where(node)
        if node.domain not in ("", "ai.onnx"):
            yield Finding(
                "operator",
                ERROR,
                where,
                f"domain {node.domain!r}: the parser imports only standard ONNX operators "
                "(others need a TensorRT plugin)",
            )
            continue
        if any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
            for a in node.attribute
        ):
            yield Finding(
                "operator",
                WARNING,
                where,
                f"the lint does not look inside {node.op_type}'s subgraphs",
            )
        if node.op_type not in table.SUPPORTED:
            listed = "listed as unsupported" if node.op_type in table.UNSUPPORTED else "not listed"
            yield Finding(
                "operator",
                ERROR,
                where,
                f"{node.op_type} is {listed} in {table.TABLE_SOURCE}",
            )
            continue
        yield from _operator_type(graph, node)
        yield from _constant_inputs(graph, node)
        yield from _attributes(node)


def _operator_type(graph: _Graph, node: onnx.NodeProto) -> Iterator[Finding]:
    if not node.input or not node.input[0] or node.op_type in QDQ:
        return
    kind = graph.type_name(node.input[0])
    allowed = table.SUPPORTED[node.op_type]
    if kind is not None and kind not in allowed:
        yield Finding(
            "operator-type",
            ERROR,
            _where(node),
            f"input {node.input[0]!r} is {kind}; TensorRT's {node.op_type} takes "
            f"{', '.join(allowed)}",
        )


def _constant_inputs(graph: _Graph, node: onnx.NodeProto) -> Iterator[Finding]:
    names = table.CONSTANT_INPUTS.get(node.op_type, ())
    if not names:
        return
    opset = next((o.version for o in graph.model.opset_import if o.domain in ("", "ai.onnx")), 0)
    try:
        schema = onnx.defs.get_schema(node.op_type, opset)
    except onnx.defs.SchemaError:
        return
    positions = {formal.name: index for index, formal in enumerate(schema.inputs)}
    for name in names:
        index = positions.get(name)
        if index is None or index >= len(node.input) or not node.input[index]:
            continue  # an attribute at this opset, or left out
        if not graph.is_constant(node.input[index]):
            yield Finding(
                "constant-input",
                ERROR,
                _where(node),
                f"`{name}` ({node.input[index]!r}) must be an initializer (operators.md)",
            )


def _attributes(node: onnx.NodeProto) -> Iterator[Finding]:
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    where = _where(node)
    if node.op_type in table.POOLS:
        kernel = attributes.get("kernel_shape", [])
        if len(kernel) not in (2, 3):
            yield Finding("attribute", ERROR, where, f"{len(kernel)}D pooling: only 2D or 3D")
        if any(d != 1 for d in attributes.get("dilations", [])):
            yield Finding("attribute", ERROR, where, "pooling dilations must be all ones")
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
            yield Finding("attribute", ERROR, where, "MaxPool's Indices output is unsupported")
    if node.op_type == "Resize":
        mode = _text(attributes.get("mode", b"nearest"))
        transform = _text(attributes.get("coordinate_transformation_mode", b"half_pixel"))
        if mode not in table.RESIZE_MODES:
            yield Finding("attribute", ERROR, where, f"Resize mode {mode!r} is unsupported")
        if transform not in table.RESIZE_TRANSFORMATIONS:
            yield Finding(
                "attribute", ERROR, where, f"Resize transformation {transform!r} is unsupported"
            )
        if attributes.get("antialias", 0):
            yield Finding("attribute", ERROR, where, "Resize antialiasing is unsupported")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _quantization(graph: _Graph) -> Iterator[Finding]:
    for node in graph.nodes:
        if node.op_type in QDQ:
            yield from _qdq(graph, node)
        elif node.op_type == "Conv":
            yield from _int8_stem(graph, node)


def _qdq(graph: _Graph, node: onnx.NodeProto) -> Iterator[Finding]:
    where = _where(node)
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
        values = _constant(graph, scale)
        if values is not None and not (np.isfinite(values).all() and (values > 0).all()):
            yield Finding("qdq-scale", ERROR, where, f"scale {scale!r} is not positive and finite")
    if len(node.input) < 3 or not node.input[2]:
        return
    zero_point = node.input[2]
    values = _constant(graph, zero_point)
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


def _constant(graph: _Graph, name: str) -> np.ndarray | None:
    if name in graph.constants:
        return graph.constants[name]
    producer = graph.producers.get(name)
    if producer is not None and producer.op_type == "Identity":
        return _constant(graph, producer.input[0])
    return None


def _weights(graph: _Graph, name: str) -> np.ndarray | None:
    """The constant behind a DequantizeLinear: stored int8, or float through a QuantizeLinear."""
    found = _constant(graph, name)
    producer = graph.producers.get(name)
    if found is None and producer is not None and producer.op_type == "QuantizeLinear":
        return _constant(graph, producer.input[0])
    return found


def _int8_stem(graph: _Graph, node: onnx.NodeProto) -> Iterator[Finding]:
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
            _where(node),
            f"an int8 convolution over {channels} input channels has no TensorRT kernel "
            "(NVIDIA/TensorRT#3640): keep the stem in float (exclude it from quantization)",
        )
