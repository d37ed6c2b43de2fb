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

The rules are in ``export/tensorrt_rules.py`` and ``export/tensorrt_qdq_rules.py``, the
operator table in ``export/tensorrt_operators.py``, the typed view of a graph's tensors in
``export/onnx_tensors.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx

from sketchsearch.data.errors import ExitCode, SketchsearchError
from sketchsearch.export import tensorrt_operators as table
from sketchsearch.export.onnx_tensors import TensorView
from sketchsearch.export.tensorrt_qdq_rules import quantization
from sketchsearch.export.tensorrt_rules import (
    ERROR,
    WARNING,
    Finding,
    io_shapes,
    operators,
    opsets,
    tensor_types,
)

TENSORRT_PIN = "10.13"


class TensorRTCompatibilityError(SketchsearchError):
    """The ONNX file breaks a rule of TensorRT's parser: the engine build would fail."""

    exit_code = ExitCode.BAD_INPUT


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
    graph = TensorView(model)
    findings = [
        *opsets(model),
        *io_shapes(graph),
        *tensor_types(graph),
        *operators(graph),
        *quantization(graph),
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
