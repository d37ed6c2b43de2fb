"""The exported graph: uint8 NHWC pixels in, unit-length embeddings (and logits) out.

The cast, the NHWC→NCHW transpose and mean/std normalisation are inside the graph, so a
runtime only decodes, resizes and crops. The batch axis is dynamic.

The cast to float comes first, before the transpose: TensorRT's ONNX parser allows UINT8 only
as a network input or output, never as the output of a node (onnx-tensorrt ModelImporter.cpp;
docs/operators.md, "UINT8 is only supported as network input or output tensor types"), so a
Transpose on the uint8 image would make every engine build fail. ``export/tensorrt_lint.py``
checks the written file for this.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

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
