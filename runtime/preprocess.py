"""Eval preprocessing shared by training validation and serving: numpy and OpenCV, no torch.

The geometry is exactly timm's eval transform (``transforms_imagenet_eval``, crop mode
"center"): ``torchvision.transforms.Resize(scale_size)`` on the shorter side, with
``scale_size = floor(input_size / crop_pct)`` and the longer side ``int(scale_size * long /
short)``, then ``CenterCrop(input_size)`` with offsets ``int(round((new - input_size) / 2))``.
The output is uint8 RGB; mean/std are only recorded, for the model graph to normalise.

Resampling (PIL's bilinear and bicubic antialias when shrinking; cv2.INTER_CUBIC/LINEAR don't),
chosen by measuring against timm + PIL on skimage's astronaut, coffee, chelsea and rocket:

- shrinking, bicubic: cv2.INTER_AREA. Mean |difference| 0.4-1.1 grey levels at 224/0.875,
  0.5-1.5 at 96/0.9, up to 3.2 at 32/1.0 (plain INTER_CUBIC: 1.2-7.2; Gaussian-prefiltered
  INTER_CUBIC or an unsharp INTER_AREA: worse).
- shrinking, bilinear: a Gaussian blur of sigma ``scale / sqrt(12)`` per axis, which tops the
  box filter's variance up to that of PIL's stretched triangle, then cv2.INTER_AREA. Mean
  |difference| 0.3 on average, at most 0.7 (INTER_AREA alone: 1.4, at most 4.8).
- enlarging: cv2.warpAffine with INTER_CUBIC/INTER_LINEAR straight onto the crop (the same
  sampling as cv2.resize, without the large intermediate image). Mean |difference| 0.3-1.5
  (bicubic, OpenCV's kernel is a=-0.75 and PIL's a=-0.5) and < 0.3 (bilinear).
- nearest: cv2.INTER_NEAREST_EXACT index maps, identical to PIL.

Large JPEGs are decoded reduced (libjpeg's DCT scaling by 2, 4 or 8) when the shorter side
stays at least ``REDUCED_MARGIN`` (2) times ``scale_size``, then shrunk by the full image's
exact factors (the reduced image's last row and column are partly padding when a side is not a
multiple of the factor). A 100-megapixel JPEG then costs a decode worker 17 MiB instead of
580 MiB (benchmarks/decode_memory.py). Against a full decode, on skimage's astronaut, coffee
and chelsea enlarged to 4000 px and JPEG-encoded, the mean |difference| is 0.19-0.31 grey
levels at 1/4 (224 px, bicubic and bilinear) and 0.32-0.43 at 1/8 (96 px). Smaller margins
cost more: a reduced shorter side of 1.3× ``scale_size`` gives 0.98-1.04 at 224 px (bicubic).
Not for "nearest", which picks single pixels as PIL does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

from sketchsearch.data.imagefile import (
    DEFAULT_MAX_PIXELS,
    check_pixels,
    decode_checked,
    image_dimensions,
    read_bytes,
)

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
_WARP_FLAGS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
REDUCED_MARGIN = 2.0  # the reduced JPEG's shorter side stays ≥ this × scale_size


@dataclass(frozen=True)
class PreprocessConfig:
    input_size: int
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, float, float] = IMAGENET_DEFAULT_STD
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not isinstance(self.input_size, int) or isinstance(self.input_size, bool):
            raise ValueError(f"input_size must be an integer, not {self.input_size!r}")
        if self.input_size < 1:
            raise ValueError(f"input_size must be at least 1, not {self.input_size}")
        if not 0.0 < self.crop_pct <= 1.0:  # also refuses NaN
            raise ValueError(f"crop_pct must be in (0, 1], not {self.crop_pct!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"unknown interpolation {self.interpolation!r}; use one of {INTERPOLATIONS}"
            )
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != 3:
                raise ValueError(f"{name} must have 3 values (R, G, B), not {len(values)}")
            object.__setattr__(self, name, values)
        if min(self.std) <= 0.0:
            raise ValueError(f"std values must be positive, not {self.std}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be at least 1, not {self.max_pixels}")

    @property
    def scale_size(self) -> int:
        """The shorter side's length before the centre crop (timm's rounding)."""
        return math.floor(self.input_size / self.crop_pct)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown preprocessing keys: {', '.join(unknown)}")
        if "input_size" not in data:
            raise ValueError("preprocessing config lacks input_size")
        return cls(**data)

    @classmethod
    def from_timm(cls, data_config: Mapping[str, Any]) -> PreprocessConfig:
        """From ``timm.data.resolve_data_config(...)``'s dict (timm itself is not imported)."""
        crop_mode = data_config.get("crop_mode") or "center"
        if crop_mode != "center":
            raise ValueError(f"crop_mode {crop_mode!r} is not supported; only 'center' is")
        channels, height, width = data_config["input_size"]
        if channels != 3 or height != width:
            raise ValueError(f"input_size must be (3, S, S), not {data_config['input_size']}")
        return cls(
            input_size=int(height),
            crop_pct=float(data_config.get("crop_pct") or 0.875),  # timm's default for None
            interpolation=data_config.get("interpolation", "bicubic"),
            mean=data_config.get("mean", IMAGENET_DEFAULT_MEAN),
            std=data_config.get("std", IMAGENET_DEFAULT_STD),
        )


def preprocess_array(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Resize the shorter side to ``config.scale_size``, centre-crop: uint8 S×S×3."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ValueError(f"expected an RGB uint8 H×W×3 image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    size = config.input_size
    new_h, new_w, top, left = _geometry(height, width, config)
    if (new_h, new_w) == (height, width):
        out = image[top : top + size, left : left + size]
    elif config.interpolation == "nearest":
        rows = _nearest_indices(height, new_h)[top : top + size]
        cols = _nearest_indices(width, new_w)[left : left + size]
        out = image[rows[:, None], cols[None, :]]
    elif new_h < height:
        out = _shrink(image, new_h, new_w, config.interpolation)[
            top : top + size, left : left + size
        ]
    else:
        out = _enlarge(image, new_h, new_w, top, left, size, config.interpolation)
    return np.ascontiguousarray(out)


def _geometry(height: int, width: int, config: PreprocessConfig) -> tuple[int, int, int, int]:
    """The resized size and the crop's offsets: ``(new_h, new_w, top, left)``."""
    size, short = config.input_size, config.scale_size
    if width <= height:  # torchvision's _compute_resized_output_size
        new_w, new_h = short, int(short * height / width)
    else:
        new_h, new_w = short, int(short * width / height)
    # CenterCrop's offsets; Python's round() rounds halves to even, as torchvision's does.
    return new_h, new_w, round((new_h - size) / 2.0), round((new_w - size) / 2.0)


def _preprocess_reduced(
    image: np.ndarray, full: tuple[int, int], reduce: int, config: PreprocessConfig
) -> np.ndarray:
    """:func:`preprocess_array` of the full image, from its JPEG decoded at 1/``reduce``.

    The geometry is the full image's (``full`` is its height and width). A side that is not
    a multiple of ``reduce`` decodes to ``ceil(side / reduce)`` pixels, the last one partly
    padding; so the reduced image is shrunk by the full image's exact factors, the padding
    lands past the crop, and nothing drifts (resizing it to the full image's new size instead
    shifts the bottom by a tenth of a pixel: 0.4 grey levels on average, 19 at most).
    """
    height, width = _oriented(full, image.shape[:2], reduce)
    new_h, new_w, top, left = _geometry(height, width, config)
    factors = (new_h * reduce / height, new_w * reduce / width)
    out = _shrink(image, new_h, new_w, config.interpolation, factors)
    size = config.input_size
    return np.ascontiguousarray(out[top : top + size, left : left + size])


def _oriented(full: tuple[int, int], reduced: tuple[int, ...], reduce: int) -> tuple[int, int]:
    """The full size as decoded: EXIF orientation may have turned the header's by 90°."""
    height, width = full
    if (-(-height // reduce), -(-width // reduce)) == tuple(reduced):
        return height, width
    return width, height


def _nearest_indices(length: int, new_length: int) -> np.ndarray:
    """The source index of each output pixel, as INTER_NEAREST_EXACT (and PIL) pick it."""
    positions = np.arange(length, dtype=np.float64)[None, :]
    picked = cv2.resize(positions, (new_length, 1), interpolation=cv2.INTER_NEAREST_EXACT)
    return np.asarray(picked[0], dtype=np.intp)


def _shrink(
    image: np.ndarray,
    new_h: int,
    new_w: int,
    interpolation: str,
    factors: tuple[float, float] | None = None,
) -> np.ndarray:
    """Shrink to ``new_h × new_w``; or by exactly ``factors`` (y, x), to about that size."""
    fy, fx = factors or (new_h / image.shape[0], new_w / image.shape[1])
    if interpolation == "bilinear":
        sigma_x, sigma_y = 1.0 / (fx * math.sqrt(12.0)), 1.0 / (fy * math.sqrt(12.0))
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma_x, sigmaY=sigma_y)
    if factors is not None:  # an empty dsize makes OpenCV map by fx, fy exactly
        return np.asarray(cv2.resize(image, None, fx=fx, fy=fy, interpolation=cv2.INTER_AREA))
    return np.asarray(cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA))


def _enlarge(
    image: np.ndarray, new_h: int, new_w: int, top: int, left: int, size: int, interpolation: str
) -> np.ndarray:
    """Sample the crop window of the enlarged image directly from the source.

    Only the source window the crop reads (plus the kernel's reach) is passed on, which keeps
    extreme aspect ratios within remap's 32767-pixel limit and avoids a huge intermediate.
    """
    scale_y, scale_x = image.shape[0] / new_h, image.shape[1] / new_w
    # Source coordinate of output pixel i: (i + offset + 0.5) * scale - 0.5, as cv2.resize.
    y0 = max(0, math.floor((top + 0.5) * scale_y - 0.5) - 2)
    x0 = max(0, math.floor((left + 0.5) * scale_x - 0.5) - 2)
    y1 = min(image.shape[0], math.floor((top + size - 0.5) * scale_y - 0.5) + 3)
    x1 = min(image.shape[1], math.floor((left + size - 0.5) * scale_x - 0.5) + 3)
    matrix = np.array(
        [
            [scale_x, 0.0, (left + 0.5) * scale_x - 0.5 - x0],
            [0.0, scale_y, (top + 0.5) * scale_y - 0.5 - y0],
        ]
    )
    window = np.ascontiguousarray(image[y0:y1, x0:x1])
    flags = _WARP_FLAGS[interpolation] | cv2.WARP_INVERSE_MAP
    return np.asarray(
        cv2.warpAffine(window, matrix, (size, size), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    )


def preprocess_file(path: str | os.PathLike[str], config: PreprocessConfig) -> np.ndarray:
    """Read, check the pixel count (from the header, before decoding), decode, preprocess."""
    return preprocess_bytes(read_bytes(path), path, config)


def preprocess_bytes(
    data: bytes, path: str | os.PathLike[str], config: PreprocessConfig
) -> np.ndarray:
    """As :func:`preprocess_file`, for bytes already read (e.g. to hash them too)."""
    fmt, width, height = image_dimensions(data, path, config.max_pixels)
    reduce = jpeg_reduction(fmt, min(width, height), config)
    image = decode_checked(data, fmt, path, reduce)
    if reduce > 1:
        return _preprocess_reduced(image, (height, width), reduce, config)
    check_pixels(path, image.shape[1], image.shape[0], config.max_pixels)
    return preprocess_array(image, config)


def jpeg_reduction(fmt: str, short_side: int, config: PreprocessConfig) -> int:
    """The largest JPEG decode reduction (1, 2, 4 or 8) that keeps the shorter side at least
    ``REDUCED_MARGIN × scale_size``, so that the usual resize still shrinks it (1 otherwise)."""
    if fmt != "JPEG" or config.interpolation == "nearest":
        return 1
    need = REDUCED_MARGIN * config.scale_size
    return next((r for r in (8, 4, 2) if short_side // r >= need), 1)


def preprocess_batch(
    images: Sequence[np.ndarray | str | os.PathLike[str]], config: PreprocessConfig
) -> np.ndarray:
    """Arrays and/or image paths to one uint8 N×S×S×3 batch."""
    size = config.input_size
    batch = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for index, item in enumerate(images):
        if isinstance(item, np.ndarray):
            batch[index] = preprocess_array(item, config)
        else:
            batch[index] = preprocess_file(item, config)
    return batch
