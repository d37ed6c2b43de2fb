"""Training settings: one typed, frozen record, readable from YAML and written beside each run.

CLI flags override a YAML file's values, which override these defaults. The resolved record is
saved in the run folder, so a run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sketchsearch.data.errors import UsageError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "multistep", "none")
AUGMENTATIONS = ("none", "basic", "randaugment")
POSITIVES = ("category", "instance")


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
        ):
            if getattr(self, name) not in allowed:
                raise UsageError(
                    f"--{name} {getattr(self, name)!r}: use one of {', '.join(allowed)}"
                )
        if self.pretrained and self.weights:
            raise UsageError("--pretrained downloads weights and --weights loads a file: pick one")
        for name in ("epochs", "batch_size", "embed_dim"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.img_size is not None and self.img_size < 16:
            raise UsageError(f"--img-size {self.img_size}: use at least 16 pixels")
        if self.lr <= 0:
            raise UsageError(f"--lr {self.lr}: must be positive")

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
        values = dict(raw)
        if "milestones" in values:
            values["milestones"] = tuple(int(m) for m in values["milestones"] or ())
        return cls(**values)

    def out_dir(self) -> Path:
        return Path(self.out)


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
    return {str(k).replace("-", "_"): v for k, v in loaded.items()}


def write_yaml(config: TrainConfig, path: Path) -> None:
    import yaml

    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
