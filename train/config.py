"""Training settings: one typed, frozen record, readable from YAML and written beside each run.

CLI flags override a YAML file's values, which override these defaults. The resolved record is
saved in the run folder, so a run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sketchsearch.data.errors import UsageError
from sketchsearch.train.loss_spec import parse_loss_spec

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "multistep", "none")
AUGMENTATIONS = ("none", "basic", "randaugment")
POSITIVES = ("category", "instance")
PSEUDO_SKETCH_METHODS = ("xdog", "canny")
Section = TypeVar("Section", bound="DataclassInstance")


@dataclass(frozen=True)
class TrainConfig:
    data: str
    split: str
    out: str = "runs/train"
    model: str = "resnet10t"
    img_size: int | None = None  # None: the backbone's own input size
    embed_dim: int = 512
    separate_encoders: bool = False
    pretrained: bool = False
    weights: str | None = None
    epochs: int = 30
    batch_size: int = 64
    loss: str = "contrastive=1,ce=1"
    margin: float = 0.3
    temperature: float = 0.1
    positive: str = "category"
    augment: str = "basic"
    pseudo_sketches: float = 0.0  # extra queries per epoch: edge drawings of gallery photos
    pseudo_sketch_method: str = "xdog"
    stroke_augment: bool = False
    distinct_categories: bool = False  # one query per category in each batch
    decode_cache: bool = False  # decode training images once, into a memory-mapped array
    cache_dir: str | None = None  # default: <out>/cache
    optimizer: str = "adamw"
    lr: float = 3e-4
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    warmup_epochs: int = 1
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    patience: int = 10
    workers: int = 2
    seed: int = 0
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str | None = None  # None: 16-mixed on a GPU, 32-true on the CPU
    resume: bool = False
    limit_train_batches: int | float | None = None  # an int counts batches, a float a fraction
    limit_val_batches: int | float | None = None
    test: bool = True
    baseline: bool = False

    def __post_init__(self) -> None:
        for name, allowed in (
            ("optimizer", OPTIMIZERS),
            ("scheduler", SCHEDULERS),
            ("augment", AUGMENTATIONS),
            ("positive", POSITIVES),
            ("pseudo_sketch_method", PSEUDO_SKETCH_METHODS),
        ):
            if getattr(self, name) not in allowed:
                raise UsageError(
                    f"--{name} {getattr(self, name)!r}: use one of {', '.join(allowed)}"
                )
        if self.pretrained and self.weights:
            raise UsageError("--pretrained downloads weights and --weights loads a file: pick one")
        for name, low in (
            ("epochs", 1),
            ("batch_size", 1),
            ("embed_dim", 1),
            ("workers", 0),
            ("num_nodes", 1),
            ("patience", 0),
            ("warmup_epochs", 0),
        ):
            if getattr(self, name) < low:
                raise UsageError(f"--{_flag(name)} must be at least {low}")
        if self.img_size is not None and self.img_size < 16:
            raise UsageError(f"--img-size {self.img_size}: use at least 16 pixels")
        for name in ("lr", "temperature"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise UsageError(f"--{name} {getattr(self, name)}: must be a positive number")
        for name in ("margin", "weight_decay", "gamma", "pseudo_sketches"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise UsageError(f"--{_flag(name)} {getattr(self, name)}: must be at least 0")
        try:
            parse_loss_spec(self.loss)
        except ValueError as err:
            raise UsageError(f"--loss {self.loss!r}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["milestones"] = list(self.milestones)
        return values

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            import difflib

            hints = [
                name + (f" (did you mean {close[0]}?)" if close else "")
                for name in unknown
                for close in [difflib.get_close_matches(name, known, n=1)]
            ]
            raise UsageError(f"{source}: unknown settings: {', '.join(hints)}")
        hints = typing.get_type_hints(cls)
        values = {name: _coerce(name, value, hints[name], source) for name, value in raw.items()}
        return cls(**values)

    def out_dir(self) -> Path:
        return Path(self.out)

    def section(self, kind: type[Section]) -> Section:
        """The settings of the dataclass ``kind`` (OptimConfig, QueryOptions, …), taken from
        this record by field name: one flat record on the command line and in config.yaml, and
        no field-by-field copy to keep in step when a setting is added."""
        names = [f.name for f in fields(kind)]
        return kind(**{name: getattr(self, name) for name in names})


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _coerce(name: str, value: Any, hint: Any, source: str) -> Any:
    """A YAML or CLI value as the field's type; anything else is a one-line usage error."""
    kinds = [k for k in typing.get_args(hint) or (hint,) if k is not type(None)]
    if value is None and type(None) in typing.get_args(hint):
        return None
    if typing.get_origin(hint) is tuple:
        items = value.split(",") if isinstance(value, str) else value
        items = [items] if isinstance(items, int | float) else items
        try:
            return tuple(int(str(v).strip()) for v in items or () if str(v).strip())
        except (TypeError, ValueError):
            raise UsageError(f"{source}: {name} {value!r}: give whole numbers like 10,20") from None
    for kind in kinds:
        converted = _as(kind, value)
        if converted is not _NO:
            return converted
    wanted = " or ".join(k.__name__ for k in kinds)
    raise UsageError(f"{source}: {name} {value!r}: expected {wanted}")


_NO = object()


def _as(kind: Any, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        lowered = str(value).lower()
        return {"true": True, "yes": True, "false": False, "no": False}.get(lowered, _NO)
    if isinstance(value, bool):
        return _NO
    if kind is int:
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return int(value)
        return _NO
    if kind is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            return _NO
    if kind is str:
        return str(value) if isinstance(value, str | int | float) else _NO
    return _NO


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"{path}: cannot read config: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise UsageError(f"{path}: not valid YAML: {err}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UsageError(f"{path}: a config file holds `setting: value` lines")
    aliases = {"model_name": "model", "optimizer_name": "optimizer", "learning_rate": "lr"}
    keys = (str(k).replace("-", "_") for k in loaded)
    return {aliases.get(key, key): value for key, value in zip(keys, loaded.values(), strict=True)}


def write_yaml(config: TrainConfig, path: Path) -> None:
    import yaml

    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
