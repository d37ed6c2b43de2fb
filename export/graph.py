"""The exported graph: uint8 NHWC pixels in, unit-length embeddings (and logits) out.

The cast, the NHWC→NCHW transpose and mean/std normalisation are inside the graph, so a
runtime only decodes, resizes and crops. The batch axis is dynamic.

The cast to float comes first, before the transpose: TensorRT's ONNX parser allows UINT8 only
as a network input or output, never as the output of a node (onnx-tensorrt ModelImporter.cpp;
docs/operators.md, "UINT8 is only supported as network input or output tensor types"), so a
Transpose on the uint8 image would make every engine build fail. torch.export also reads the
batch size with a ``Shape`` of the uint8 input, which TensorRT's Shape does not take either, so
``cast_first`` points such dimension reads at the Cast's output (the same shape). The Cast is
then the only node that reads the uint8 image; ``export/tensorrt_lint.py`` checks every written
file for this.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from sketchsearch.data.errors import UsageError
from sketchsearch.train.embedding_model import EmbeddingModel

INPUT_NAME = "images"
OUTPUT_NAMES = ("embedding", "logits")
DEFAULT_OPSET = 18
# torch.export specialises size-1 dimensions, so the example batch must be larger.
TRACE_BATCH = 2


class ServingGraph(nn.Module):
    """One domain's encoder, taking the layout and dtype the runtime feeds."""

    def __init__(self, model: EmbeddingModel, domain: str, with_logits: bool) -> None:
        super().__init__()
        self.model = model
        self.domain = domain
        self.with_logits = with_logits

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        pixels = images.float().permute(0, 3, 1, 2)  # cast first: see the module docstring
        embedding, logits = self.model(pixels, self.domain)
        return (embedding, logits) if self.with_logits else (embedding,)


def export_graph(
    model: EmbeddingModel,
    path: Path,
    *,
    domain: str = "query",
    input_dtype: str = "uint8",
    with_logits: bool = True,
    opset: int = DEFAULT_OPSET,
    dynamo: bool = True,
) -> None:
    """Write the fp32 ONNX graph (no card yet) to ``path``."""
    size = model.config.img_size
    dtype = torch.uint8 if input_dtype == "uint8" else torch.float32
    example = torch.randint(0, 256, (TRACE_BATCH, size, size, 3), dtype=torch.uint8).to(dtype)
    graph = ServingGraph(model.eval(), domain, with_logits).eval()
    outputs = list(OUTPUT_NAMES if with_logits else OUTPUT_NAMES[:1])
    with torch.no_grad(), _quiet_exporter():
        try:
            if dynamo:
                batch = torch.export.Dim("batch", min=1, max=4096)
                torch.onnx.export(
                    graph,
                    (example,),
                    str(path),
                    input_names=[INPUT_NAME],
                    output_names=outputs,
                    dynamic_shapes={"images": {0: batch}},
                    opset_version=opset,
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                )
            else:
                torch.onnx.export(
                    graph,
                    (example,),
                    str(path),
                    input_names=[INPUT_NAME],
                    output_names=outputs,
                    dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *outputs]},
                    opset_version=opset,
                    dynamo=False,
                )
        except Exception as err:  # exporter failures come in many types
            kind = "dynamo" if dynamo else "TorchScript"
            other = "--legacy" if dynamo else "--dynamo"
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(
                f"the {kind} exporter failed for {model.config.backbone} ({first}); try {other}"
            ) from None
    if input_dtype == "uint8":
        exported = onnx.load(str(path))
        cast_first(exported)
        onnx.save(exported, str(path))


def cast_first(model: onnx.ModelProto) -> None:
    """Make the input's Cast its only reader: Shape/Size of the input read the Cast's output."""
    graph = model.graph
    casts = [n for n in graph.node if n.op_type == "Cast" and INPUT_NAME in n.input]
    if len(casts) != 1:
        return
    rewired = False
    for node in graph.node:
        if node.op_type in ("Shape", "Size") and INPUT_NAME in node.input:
            node.input[list(node.input).index(INPUT_NAME)] = casts[0].output[0]
            rewired = True
    if rewired:  # ONNX wants nodes in topological order, and the Cast may come after them
        ordered = _topological(graph)
        del graph.node[:]
        graph.node.extend(ordered)


def _topological(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The nodes in an order where each comes after its inputs, otherwise as they were."""
    known = {value.name for value in graph.input} | {t.name for t in graph.initializer}
    known.add("")  # an omitted optional input
    pending = [_copy(node) for node in graph.node]
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = next((n for n in pending if all(name in known for name in n.input)), None)
        if ready is None:  # inputs from nowhere (an invalid graph): leave the rest as it was
            ordered.extend(pending)
            break
        pending.remove(ready)
        ordered.append(ready)
        known.update(ready.output)
    return ordered


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporters print progress and deprecation chatter; the report says what matters."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
