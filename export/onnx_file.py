"""ONNX file chores: the card in ``metadata_props``, the full checker, simplification."""

from __future__ import annotations

from pathlib import Path

import onnx

from sketchsearch.data.errors import ExitCode, SketchsearchError, UsageError
from sketchsearch.runtime.model_card import CARD_KEY, ModelCard, ModelCardError, card_from_metadata


class OnnxCheckError(SketchsearchError):
    exit_code = ExitCode.FAILURE


def load_model(path: Path, *, load_external_data: bool = True) -> onnx.ModelProto:
    """Read an ONNX file, or stop with a one-line error (exit 2 missing, 3 not ONNX).

    ``load_external_data=False`` leaves weights stored in other files unread, for a caller
    that only needs the graph and its metadata (and checks where the weights live).
    """
    if not path.is_file():
        raise UsageError(f"{path}: model file not found")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as err:  # protobuf's DecodeError and onnx's own errors: not a model
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelCardError(f"{path}: not an ONNX model ({first})") from None


def set_card(model: onnx.ModelProto, card: ModelCard) -> None:
    """Store the card under its one key, replacing an earlier card."""
    keep = [prop for prop in model.metadata_props if prop.key != CARD_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    onnx.helper.set_model_props(
        model, {**{p.key: p.value for p in model.metadata_props}, CARD_KEY: card.to_json()}
    )
    model.producer_name = "sketchsearch"


def get_card(model: onnx.ModelProto, source: str) -> ModelCard:
    return card_from_metadata({p.key: p.value for p in model.metadata_props}, source)


def check_full(path: Path) -> None:
    """``onnx.checker`` with shape inference and strict mode, on the saved file."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        first = str(err).strip().splitlines()[0]
        raise OnnxCheckError(f"{path}: onnx.checker rejects the exported model ({first})") from None


def simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int, int]:
    """onnxslim's simplification when it shrinks the graph; (model, nodes before, after)."""
    import onnxslim

    before = len(model.graph.node)
    try:
        slim = onnxslim.slim(model)
    except Exception:  # a simplifier failure never fails the export; the graph stays as is
        return model, before, before
    if not isinstance(slim, onnx.ModelProto) or len(slim.graph.node) >= before:
        return model, before, before
    return slim, before, len(slim.graph.node)
