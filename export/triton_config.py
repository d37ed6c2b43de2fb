"""A Triton ``config.pbtxt`` for one exported model: described from the ONNX graph, written as
protobuf text, and checked against Triton's own schema when ``tritonclient`` is installed.

The text is written here rather than built with ``model_config_pb2`` so that the command works
without the ``[triton]`` extra; with it, :func:`check_config` parses the text with Triton's
``ModelConfig`` message, so a misspelled or ill-typed field stops the export before anything is
moved into the repository.

The client side reads the same config back: :func:`card_from_config` recovers the card a server
reports, and :func:`request_inputs` builds the request from it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sketchsearch.data.errors import ExitCode, SketchsearchError, UsageError
from sketchsearch.runtime.model_card import ModelCard, ModelCardError
from sketchsearch.runtime.preprocess import preprocess_batch

if TYPE_CHECKING:
    import onnx

# ONNX element type name (onnx.TensorProto.DataType) → Triton data type (model_config.proto).
# Names, not onnx's constants: a client imports this module with no `onnx` installed.
TRITON_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FLOAT16": "TYPE_FP16",
    "FLOAT": "TYPE_FP32",
    "DOUBLE": "TYPE_FP64",
    "BFLOAT16": "TYPE_BF16",
}
KINDS = {"auto": "KIND_AUTO", "cpu": "KIND_CPU", "gpu": "KIND_GPU"}
CARD_PARAMETER = "sketchsearch.model_card"  # the card JSON, as a config parameter
TRITON_EXTRA = "pip install 'sketchsearch[triton]'"


class TritonConfigError(SketchsearchError):
    """A config Triton's schema rejects: a bug here, never the user's input."""

    exit_code = ExitCode.FAILURE


@dataclass(frozen=True)
class TritonTensor:
    """One input or output as the config lists it: dims without the batch axis, -1 dynamic."""

    name: str
    data_type: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class TritonModelConfig:
    name: str
    platform: str  # "onnxruntime_onnx" or "tensorrt_plan"
    max_batch_size: int
    inputs: tuple[TritonTensor, ...]
    outputs: tuple[TritonTensor, ...]
    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_us: int
    instances: int
    kind: str  # a key of KINDS
    card_json: str

    def to_pbtxt(self) -> str:
        lines = [
            f"name: {_quote(self.name)}",
            f"platform: {_quote(self.platform)}",
            f"max_batch_size: {self.max_batch_size}",
        ]
        lines += _tensors("input", self.inputs) + _tensors("output", self.outputs)
        lines.append("dynamic_batching {")
        lines += [f"  preferred_batch_size: {size}" for size in self.preferred_batch_sizes]
        lines += [f"  max_queue_delay_microseconds: {self.max_queue_delay_us}", "}"]
        lines += [
            "instance_group {",
            f"  count: {self.instances}",
            f"  kind: {KINDS[self.kind]}",
            "}",
            "parameters {",
            f"  key: {_quote(CARD_PARAMETER)}",
            f"  value {{ string_value: {_quote(self.card_json)} }}",
            "}",
        ]
        return "\n".join(lines) + "\n"


def _tensors(field: str, tensors: Sequence[TritonTensor]) -> list[str]:
    lines = []
    for tensor in tensors:
        dims = ", ".join(str(d) for d in tensor.dims)
        lines += [
            f"{field} {{",
            f"  name: {_quote(tensor.name)}",
            f"  data_type: {tensor.data_type}",
            f"  dims: [ {dims} ]",
            "}",
        ]
    return lines


def _quote(text: str) -> str:
    from google.protobuf import text_encoding  # protobuf comes with onnx

    return '"' + str(text_encoding.CEscape(text, as_utf8=True)) + '"'


def graph_tensors(
    values: Sequence[onnx.ValueInfoProto], source: str, kind: str
) -> tuple[TritonTensor, ...]:
    """Graph inputs or outputs as Triton tensors; the batch axis (the first) must be dynamic.

    Triton with ``max_batch_size > 0`` stacks requests on the first axis; a fixed first axis
    would need a config without batching, which is not what a retrieval server wants.
    """
    import onnx

    tensors = []
    for value in values:
        tensor_type = value.type.tensor_type
        element = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
        data_type = TRITON_TYPES.get(element)
        if data_type is None:
            raise UsageError(f"{source}: {kind} {value.name!r} has type {element}, not in Triton")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
        if not dims or dims[0] != -1:
            raise UsageError(
                f"{source}: {kind} {value.name!r} has shape {dims}, not a dynamic batch axis "
                "first: Triton's dynamic batching needs one; export the model with "
                "`sketchsearch export onnx`, which makes the batch axis dynamic"
            )
        if len(dims) == 1:  # Triton would need `dims: [1]` plus a reshape; ours are rank >= 2
            raise UsageError(
                f"{source}: {kind} {value.name!r} has only the batch axis (shape {dims}), which "
                "this config does not describe: export the model with `sketchsearch export onnx`"
            )
        tensors.append(TritonTensor(value.name, data_type, tuple(dims[1:])))
    return tuple(tensors)


def check_config(text: str, source: str) -> str | None:
    """Parse ``text`` with Triton's ``ModelConfig``; the tritonclient version, or None when
    ``tritonclient`` is not installed (the caller says the check was skipped)."""
    try:
        from importlib.metadata import version

        from tritonclient.grpc import model_config_pb2
    except ImportError:
        return None
    from google.protobuf import text_format

    try:
        text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as err:
        raise TritonConfigError(
            f"{source}: Triton's ModelConfig schema rejects it ({err})"
        ) from None
    return version("tritonclient")


# The client side: what `tritonclient` needs to query a model this module configured.


def card_from_config(config: Any, source: str) -> ModelCard:
    """The model card a server reports, from ``client.get_model_config(NAME).config``
    (gRPC) or a parsed ``config.pbtxt``: the preprocessing and family, never guessed."""
    parameter = config.parameters.get(CARD_PARAMETER)
    if parameter is None or not parameter.string_value:
        raise ModelCardError(
            f"{source}: the Triton config has no {CARD_PARAMETER!r} parameter; write the model "
            "repository with `sketchsearch export triton`"
        )
    return ModelCard.from_json(parameter.string_value, source)


def request_inputs(
    images: Sequence[np.ndarray | str | os.PathLike[str]], card: ModelCard
) -> list[Any]:
    """One ``tritonclient.grpc.InferInput`` holding ``images`` preprocessed as the card says:
    resized and cropped here, normalised by the model on the server."""
    try:
        from tritonclient.grpc import InferInput
        from tritonclient.utils import np_to_triton_dtype
    except ImportError:
        raise UsageError(f"the Triton client is not installed: {TRITON_EXTRA}") from None
    batch = preprocess_batch(images, card.preprocess)
    if card.input_dtype == "float32":
        batch = batch.astype(np.float32)
    request = InferInput(card.input_name, list(batch.shape), np_to_triton_dtype(batch.dtype))
    request.set_data_from_numpy(batch)
    return [request]
