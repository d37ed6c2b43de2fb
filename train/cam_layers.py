"""Which layer of a timm backbone Grad-CAM reads, and how to turn its output into a map.

Grad-CAM needs the last spatial feature map: late enough to be semantic, still spatial.

- ResNet: ``layer4``; EfficientNet: ``bn2`` (the head convolution after its BN and
  activation); RexNet: ``features[-1]`` (its head ConvNormAct).
- Swin: the last block's ``norm1``, as grad-cam's Swin example. timm (>= 0.9) keeps Swin's
  maps channels-last, [N, H, W, C], where grad-cam expects [N, C, H, W], so the reshape
  transform permutes them; the layout is checked on a probe pass, not assumed.
- Anything else: the last module that produces a 4-D map during ``forward_features`` (the
  pooling head never runs there, so a [N, C, 1, 1] pooled output cannot be picked), with
  the layout the model declares in ``output_fmt``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from sketchsearch.data.errors import UsageError


@dataclass(frozen=True)
class CamLayer:
    module: nn.Module = field(repr=False)
    name: str
    channels_last: bool

    @property
    def reshape_transform(self) -> Callable[[Tensor], Tensor] | None:
        return channels_last_to_first if self.channels_last else None


def channels_last_to_first(maps: Tensor) -> Tensor:
    return maps.permute(0, 3, 1, 2)


# timm class name -> the name of its layer
_RULES: dict[str, Callable[[nn.Module], str]] = {
    "ResNet": lambda m: "layer4",
    "EfficientNet": lambda m: "bn2",
    "RexNet": lambda m: f"features.{len(m.features) - 1}",
    "SwinTransformer": lambda m: (
        f"layers.{len(m.layers) - 1}.blocks.{len(m.layers[-1].blocks) - 1}.norm1"
    ),
}


def find_cam_layer(encoder: nn.Module, img_size: int, name: str | None = None) -> CamLayer:
    """The layer for ``encoder`` (a timm backbone), checked on a probe pass at ``img_size``.

    ``name`` picks another layer, e.g. ``layer3`` for a finer map from a small input.
    """
    modules = dict(encoder.named_modules())
    channels_last = getattr(encoder, "output_fmt", "NCHW") == "NHWC"
    if name is not None:
        if name not in modules or not name:
            close = difflib.get_close_matches(name, [n for n in modules if n], n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UsageError(f"--layer {name!r}: {type(encoder).__name__} has no such layer{hint}")
        layer = CamLayer(modules[name], name, channels_last)
        _check_layout(encoder, layer, img_size, channels=None)
        return layer
    rule = _RULES.get(type(encoder).__name__)
    chosen = rule(encoder) if rule is not None else ""
    if chosen and chosen in modules:
        layer = CamLayer(modules[chosen], chosen, channels_last)
    else:
        layer = _last_map_layer(encoder, img_size)
    _check_layout(encoder, layer, img_size, getattr(encoder, "num_features", None))
    return layer


def _probe(encoder: nn.Module, img_size: int) -> Tensor:
    parameter = next(encoder.parameters())
    return torch.zeros(1, 3, img_size, img_size, device=parameter.device)


def _last_map_layer(encoder: nn.Module, img_size: int) -> CamLayer:
    if not hasattr(encoder, "forward_features"):
        raise UsageError(f"{type(encoder).__name__}: not a timm backbone (no forward_features)")
    seen: list[str] = []
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: (
                seen.append(name) if isinstance(out, Tensor) and out.ndim == 4 else None
            )
        )
        for name, module in encoder.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            encoder.forward_features(_probe(encoder, img_size))
    finally:
        for hook in hooks:
            hook.remove()
    if not seen:
        raise UsageError(f"{type(encoder).__name__}: no layer makes a spatial map for Grad-CAM")
    channels_last = getattr(encoder, "output_fmt", "NCHW") == "NHWC"
    return CamLayer(encoder.get_submodule(seen[-1]), seen[-1], channels_last)


def _check_layout(encoder: nn.Module, layer: CamLayer, img_size: int, channels: int | None) -> None:
    """The layer must give [N, C, H, W] (or [N, H, W, C] when channels-last) maps."""
    shapes: list[tuple[int, ...]] = []
    hook = layer.module.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
    try:
        with torch.no_grad():
            encoder(_probe(encoder, img_size))
    finally:
        hook.remove()
    shape = shapes[-1] if shapes else ()
    axis = -1 if layer.channels_last else 1
    if len(shape) != 4 or (channels is not None and shape[axis] != channels):
        layout = "[N, H, W, C]" if layer.channels_last else "[N, C, H, W]"
        raise UsageError(
            f"{type(encoder).__name__}.{layer.name}: expected a {layout} map with C = "
            f"{channels}, got {list(shape)}; this backbone's Grad-CAM layer needs a rule in "
            "train/cam_layers.py"
        )
