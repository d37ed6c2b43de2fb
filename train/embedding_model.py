"""The embedding model: any timm backbone, globally pooled, projected and L2-normalised.

It takes uint8 images and normalises them itself, so the exported graph and the training
graph apply mean/std in the same place; the runtime only decodes, resizes and crops.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sketchsearch.data.errors import SketchsearchError, UsageError
from sketchsearch.runtime.preprocess import PreprocessConfig

DOMAINS = ("query", "gallery")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str
    embed_dim: int
    num_classes: int
    img_size: int
    crop_pct: float
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    separate_encoders: bool = False

    def preprocess(self) -> PreprocessConfig:
        """The eval preprocessing that validation and the runtime both apply."""
        return PreprocessConfig(
            input_size=self.img_size,
            crop_pct=self.crop_pct,
            interpolation=self.interpolation,
            mean=self.mean,
            std=self.std,
        )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["mean"], values["std"] = list(self.mean), list(self.std)
        return values

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["mean"], values["std"] = tuple(values["mean"]), tuple(values["std"])
        return cls(**values)


def resolve_model_config(
    backbone: str,
    embed_dim: int,
    num_classes: int,
    img_size: int | None,
    separate_encoders: bool = False,
) -> ModelConfig:
    """timm's data config for the backbone (mean, std, crop), at the requested input size."""
    from timm.data import resolve_data_config

    # Centre crop always: this model's eval preprocessing is defined here, by training.
    overrides: dict[str, Any] = {"crop_mode": "center"}
    if img_size:
        overrides["input_size"] = (3, img_size, img_size)
    data = resolve_data_config(overrides, model=_create(backbone, pretrained=False))
    preprocess = PreprocessConfig.from_timm(data)
    return ModelConfig(
        backbone=backbone,
        embed_dim=embed_dim,
        num_classes=num_classes,
        img_size=preprocess.input_size,
        crop_pct=preprocess.crop_pct,
        interpolation=preprocess.interpolation,
        mean=preprocess.mean,
        std=preprocess.std,
        separate_encoders=separate_encoders,
    )


class ImageNormalize(nn.Module):
    """uint8 [N, 3, H, W] → float32, scaled by 1/255 and normalised by mean/std."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255.0)

    def forward(self, images: Tensor) -> Tensor:
        return (images.float() - self.mean) / self.std


class EmbeddingModel(nn.Module):
    def __init__(self, config: ModelConfig, pretrained: bool = False, weights: str | None = None):
        super().__init__()
        self.config = config
        self.normalize = ImageNormalize(config.mean, config.std)
        names = DOMAINS if config.separate_encoders else DOMAINS[:1]
        self.encoders = nn.ModuleDict(
            {
                name: create_backbone(config.backbone, pretrained, weights, config.img_size)
                for name in names
            }
        )
        features = self.encoders["query"].num_features
        self.heads = nn.ModuleDict({name: nn.Linear(features, config.embed_dim) for name in names})
        self.classifier = nn.Linear(config.embed_dim, config.num_classes)

    def forward(self, images: Tensor, domain: str = "query") -> tuple[Tensor, Tensor]:
        """(unit-length embeddings [N, D], class logits [N, C]) for uint8 [N, 3, H, W] images."""
        key = domain if self.config.separate_encoders else "query"
        projected = self.heads[key](self.encoders[key](self.normalize(images)))
        return F.normalize(projected, dim=1), self.classifier(projected)

    def embed(self, images: Tensor, domain: str = "query") -> Tensor:
        return self.forward(images, domain)[0]


def create_backbone(
    name: str, pretrained: bool = False, weights: str | None = None, img_size: int | None = None
) -> nn.Module:
    """A pooled-feature timm backbone; pretrained weights come from timm's hub or a local file.

    Transformers with a fixed input size (Swin, ViT) are built for ``img_size``. Never falls
    back to random weights when weights were asked for.
    """
    sized = _size_arguments(name, img_size)
    if weights is not None:
        model = _create(name, pretrained=False, **sized)
        load_backbone_weights(model, Path(weights), name)
        return model
    if not pretrained:
        return _create(name, pretrained=False, **sized)
    try:
        return _create(name, pretrained=True, **sized)
    except SketchsearchError:
        raise
    except Exception as err:  # hub errors come in many types; the message names the cause
        raise UsageError(
            f"cannot download pretrained weights for {name} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no network?'}); download them on a "
            "machine with network access and pass the file with --weights PATH"
        ) from None


# Prefixes under which a backbone's weights sit in other files: this project's checkpoints
# (``model.encoders.query.``) and common wrappers.
_PREFIXES = ("model.encoders.query.", "encoders.query.", "module.", "model.", "backbone.")


def load_backbone_weights(model: nn.Module, path: Path, name: str) -> None:
    """Load a safetensors file or a (possibly wrapped) state dict, refusing any mismatch.

    timm's own loader is lenient for a headless model (missing keys become a log line), which
    would train from random weights without a word; here every backbone key must be filled.
    """
    if not path.is_file():
        raise UsageError(f"{path}: weights file not found")
    state = _read_state(path)
    expected = model.state_dict()
    for prefix in _PREFIXES:  # unwrap the first prefix that covers the backbone's keys
        stripped = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        if expected.keys() <= stripped.keys():
            state = stripped
            break
    state = {k: v for k, v in state.items() if k in expected}  # a classifier is left out
    missing = sorted(expected.keys() - state.keys())
    wrong = sorted(k for k in state if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or wrong or not state:
        example = (missing or wrong or ["all keys"])[0]
        raise UsageError(
            f"{path}: not weights for {name}: {len(missing)} missing and {len(wrong)} "
            f"mis-shaped tensors (e.g. {example})"
        )
    model.load_state_dict(state, strict=True)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file is the same user error
        raise UsageError(f"{path}: cannot read weights ({str(err).splitlines()[0]})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{path}: holds no state dict of tensors")
    return dict(state)


def _size_arguments(name: str, img_size: int | None) -> dict[str, Any]:
    import timm

    config = timm.models.get_pretrained_cfg(name) if timm.is_model(name) else None
    fixed = config is not None and getattr(config, "fixed_input_size", False)
    if fixed and img_size and tuple(config.input_size[1:]) != (img_size, img_size):
        return {"img_size": img_size}
    return {}


def _create(name: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    import timm

    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--model {name!r} is not a timm model{hint}")
    model: nn.Module = timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
    return model
