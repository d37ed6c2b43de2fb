"""The model card: everything a runtime needs to feed and interpret an exported model.

It travels inside the ONNX file (one ``metadata_props`` entry, :data:`CARD_KEY`) and beside a
TensorRT engine (a ``<engine>.json`` sidecar), so preprocessing is never guessed and a gallery
can tell whether vectors came from the same weights. Export writes it, the runtime, the
gallery and the TensorRT builder read it; nothing handles the JSON as a raw dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from sketchsearch.data import strict_json
from sketchsearch.data.errors import ExitCode, SketchsearchError
from sketchsearch.data.file_format import FileFormat
from sketchsearch.runtime.preprocess import PreprocessConfig

CARD_KEY = "sketchsearch.model_card"
CARD_FORMAT = "sketchsearch-model-card"
CARD_FORMAT_VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8")
INPUT_DTYPES = ("uint8", "float32")
# "both": one shared encoder embeds sketches and photos; otherwise the file holds one domain's
# encoder of a model trained with separate encoders.
MODEL_DOMAINS = ("both", "query", "gallery")


class ModelCardError(SketchsearchError):
    """A model file without a readable card, or with a card this version cannot use."""

    exit_code = ExitCode.BAD_INPUT


CARD = FileFormat(
    CARD_FORMAT,
    CARD_FORMAT_VERSION,
    "model card",
    ModelCardError,
    json_message="model card is not valid JSON ({msg})",
    version_message=(
        "model card version {found!r}; this version of sketchsearch reads version "
        "{version}: re-export the model"
    ),
    keys_message="model card has unknown keys {unknown} and lacks keys {missing}",
)


@dataclass(frozen=True)
class TensorRTInfo:
    """What a serialized engine is tied to: it only loads on the same TensorRT and GPU."""

    version: str
    gpu_name: str
    compute_capability: str
    min_batch: int
    opt_batch: int
    max_batch: int
    precision: str

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str) -> TensorRTInfo:
        CARD.check_keys(raw, cls, f"{source}: tensorrt")
        return cls(**raw)


@dataclass(frozen=True)
class ModelCard:
    backbone: str
    embed_dim: int
    preprocess: PreprocessConfig  # resize and crop rule; mean/std are applied in the graph
    class_names: tuple[str, ...]
    family: str  # the source checkpoint's SHA-256: one family, comparable vectors
    checkpoint_sha256: str
    precision: str = "fp32"
    input_name: str = "images"
    input_dtype: str = "uint8"  # "float32": the same 0..255 values, for backends without uint8
    input_layout: str = "NHWC"
    normalized_in_graph: bool = True  # mean/std below are applied inside the model
    output_names: tuple[str, ...] = ("embedding", "logits")
    output_normalized: bool = True
    similarity: str = "cosine"
    domain: str = "both"
    split_fingerprint: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    tensorrt: TensorRTInfo | None = None
    format: str = CARD_FORMAT
    format_version: int = CARD_FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.input_dtype not in INPUT_DTYPES:
            raise ValueError(f"input_dtype must be one of {INPUT_DTYPES}")
        if self.domain not in MODEL_DOMAINS:
            raise ValueError(f"domain must be one of {MODEL_DOMAINS}, not {self.domain!r}")
        if self.input_layout != "NHWC":
            raise ValueError("only NHWC input is supported")
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be positive, not {self.embed_dim}")

    @property
    def input_size(self) -> int:
        return self.preprocess.input_size

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def embeds(self, domain: str) -> bool:
        """Whether this file's encoder is the one for ``domain`` ("query" or "gallery")."""
        return self.domain in ("both", domain)

    def summary(self) -> dict[str, Any]:
        """The part a gallery records about the model that made its vectors."""
        return {
            "backbone": self.backbone,
            "embed_dim": self.embed_dim,
            "input_size": self.input_size,
            "precision": self.precision,
            "domain": self.domain,
            "checkpoint_sha256": self.checkpoint_sha256,
            "split_fingerprint": self.split_fingerprint,
        }

    def with_changes(self, **changes: Any) -> ModelCard:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        data["class_names"] = list(self.class_names)
        data["output_names"] = list(self.output_names)
        return data

    def to_json(self) -> str:
        text = strict_json.dumps(self.to_dict(), indent=1, ensure_ascii=False, sort_keys=True)
        return text + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> ModelCard:
        return cls.from_dict(CARD.parse(text, source), source)

    @classmethod
    def from_dict(cls, raw: object, source: str) -> ModelCard:
        values = dict(CARD.check(raw, cls, source))
        try:
            values["preprocess"] = PreprocessConfig.from_dict(values["preprocess"])
            values["class_names"] = tuple(str(name) for name in values["class_names"])
            values["output_names"] = tuple(str(name) for name in values["output_names"])
            if values.get("tensorrt") is not None:
                values["tensorrt"] = TensorRTInfo.from_dict(values["tensorrt"], source)
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise ModelCardError(f"{source}: invalid model card ({err})") from None


def sidecar_path(engine: str | Path) -> Path:
    """``model.plan`` → ``model.plan.json``: the card of a TensorRT engine."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_sidecar(engine: str | Path, card: ModelCard) -> Path:
    path = sidecar_path(engine)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(card.to_json(), encoding="utf-8")
    temporary.replace(path)
    return path


def read_sidecar(engine: str | Path) -> ModelCard:
    path = sidecar_path(engine)
    if not path.is_file():
        raise ModelCardError(
            f"{path}: the engine's model card is missing; a TensorRT engine needs the sidecar "
            "that `sketchsearch export tensorrt` writes beside it"
        )
    return ModelCard.from_json(path.read_text(encoding="utf-8"), str(path))


def read_onnx_card(path: str | Path) -> ModelCard:
    """The card of an ONNX file, read through onnxruntime (the runtime has no `onnx`)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelCardError(f"{path}: model file not found")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for a bad file
        raise ModelCardError(f"{path}: not a loadable ONNX model ({_first_line(err)})") from None
    card = card_from_metadata(session.get_modelmeta().custom_metadata_map, str(path))
    check_onnx_io(card, session.get_inputs(), session.get_outputs(), str(path))
    return card


def card_from_metadata(metadata: Mapping[str, str], source: str) -> ModelCard:
    if CARD_KEY not in metadata:
        raise ModelCardError(
            f"{source}: this ONNX file has no sketchsearch model card; export it with "
            "`sketchsearch export onnx`"
        )
    return ModelCard.from_json(metadata[CARD_KEY], source)


class GraphTensor(Protocol):
    """What onnxruntime says of one graph input or output (its ``NodeArg``)."""

    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> Sequence[Any]: ...  # an int per fixed axis, a name or None per dynamic one
    @property
    def type(self) -> str: ...  # "tensor(uint8)", "tensor(float)", …


ONNX_TYPES = {"uint8": "tensor(uint8)", "float32": "tensor(float)"}  # card dtype → graph type
EMBEDDING_OUTPUT = "embedding"


def check_onnx_io(
    card: ModelCard,
    inputs: Sequence[GraphTensor],
    outputs: Sequence[GraphTensor],
    source: str,
) -> None:
    """Refuse a file whose card disagrees with its graph, naming both values for each fact.

    The card decides how images are prepared; the graph decides what it accepts. A file whose
    card was edited, or copied onto another export, would otherwise fail at the first query
    with an onnxruntime error about tensor shapes, far from the cause.
    """
    problems = _input_problems(card, {tensor.name: tensor for tensor in inputs})
    problems += _output_problems(card, {tensor.name: tensor for tensor in outputs})
    if problems:
        raise ModelCardError(
            f"{source}: the model card disagrees with the graph ({'; '.join(problems)}): "
            "re-export the model with `sketchsearch export onnx`"
        )


def _input_problems(card: ModelCard, inputs: Mapping[str, GraphTensor]) -> list[str]:
    tensor = inputs.get(card.input_name)
    if tensor is None:
        return [f"input name: card {card.input_name!r}, graph {sorted(inputs)}"]
    problems = []
    if tensor.type != ONNX_TYPES[card.input_dtype]:
        problems.append(f"input dtype: card {card.input_dtype}, graph {tensor.type}")
    shape, size = list(tensor.shape), card.input_size
    if len(shape) != 4 or (_fixed(shape[3]) and shape[3] != 3):
        layout = "NCHW?" if len(shape) == 4 and shape[1] == 3 else "not NHWC"
        problems.append(
            f"input shape: card [N, {size}, {size}, 3] (NHWC), graph {shape} ({layout})"
        )
    elif any(_fixed(side) and side != size for side in shape[1:3]):
        problems.append(f"input size: card {size}, graph {shape[1]}x{shape[2]}")
    return problems


def _output_problems(card: ModelCard, outputs: Mapping[str, GraphTensor]) -> list[str]:
    missing = [name for name in (EMBEDDING_OUTPUT, *card.output_names) if name not in outputs]
    if missing:
        return [f"outputs: card {list(card.output_names)}, graph {sorted(outputs)}"]
    shape = list(outputs[EMBEDDING_OUTPUT].shape)
    if len(shape) != 2:
        return [f"embedding shape: card [N, {card.embed_dim}], graph {shape}"]
    if _fixed(shape[1]) and shape[1] != card.embed_dim:
        return [f"embedding size: card {card.embed_dim}, graph {shape[1]}"]
    return []


def _fixed(axis: object) -> bool:
    """A fixed axis; dynamic ones are names (``"batch"``) or None."""
    return isinstance(axis, int)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
