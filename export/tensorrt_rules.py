"""TensorRT's ONNX parser rules on types, operators, attributes and shapes.

Each function yields the findings of one rule family for the lint (``export/tensorrt_lint.py``,
whose docstring lists the rules with their sources); the operator table is
``export/tensorrt_operators.py``. The quantization rules are in
``export/tensorrt_qdq_rules.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import onnx

from sketchsearch.export import tensorrt_operators as table
from sketchsearch.export.onnx_tensors import TensorView

ERROR = "error"
WARNING = "warning"
QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # ERROR: the parser or builder refuses it; WARNING: it builds, but not as meant
    where: str  # the node or tensor
    message: str


def node_label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} {node.name or '(unnamed)'}"


def opsets(model: onnx.ModelProto) -> Iterator[Finding]:
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


def io_shapes(graph: TensorView) -> Iterator[Finding]:
    """Only the batch axis may vary: the runtime refuses any other dynamic axis
    (``runtime/engines/tensorrt_engine.check_io``), and the build's one profile fixes the image
    size."""
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


def tensor_types(graph: TensorView) -> Iterator[Finding]:
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
                    node_label(node),
                    f"outputs {output!r} as {kind}, which TensorRT allows only for network "
                    "inputs and outputs: cast the uint8 image to float before any other op",
                )
            elif kind not in table.DATA_TYPES:
                yield Finding(
                    "tensor-type",
                    ERROR,
                    node_label(node),
                    f"outputs {output!r} as {kind}, a type TensorRT does not have",
                )
            elif kind == "DOUBLE":
                yield Finding(
                    "tensor-type",
                    WARNING,
                    node_label(node),
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


def operators(graph: TensorView) -> Iterator[Finding]:
    for node in graph.nodes:
        where = node_label(node)
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


def _operator_type(graph: TensorView, node: onnx.NodeProto) -> Iterator[Finding]:
    if not node.input or not node.input[0] or node.op_type in QDQ:
        return
    kind = graph.type_name(node.input[0])
    allowed = table.SUPPORTED[node.op_type]
    if kind is not None and kind not in allowed:
        yield Finding(
            "operator-type",
            ERROR,
            node_label(node),
            f"input {node.input[0]!r} is {kind}; TensorRT's {node.op_type} takes "
            f"{', '.join(allowed)}",
        )


def _constant_inputs(graph: TensorView, node: onnx.NodeProto) -> Iterator[Finding]:
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
                node_label(node),
                f"`{name}` ({node.input[index]!r}) must be an initializer (operators.md)",
            )


def _attributes(node: onnx.NodeProto) -> Iterator[Finding]:
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    where = node_label(node)
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
