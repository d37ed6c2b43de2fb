"""Synthetic Sketchy-layout data: the project's embedded demo data set.

The demo and the CPU training smoke test need data that ships with the code, is small, and is
hard enough to be worth learning: photos are textured objects on cluttered backgrounds and
sketches are wobbly line drawings of the same instance in (almost) the same pose, so both
category-level and instance-level retrieval are meaningful. Output depends only on the
config: every item draws from its own generator seeded with (seed, category, photo), so files
are byte-identical across runs whatever the thread scheduling.
"""

from __future__ import annotations

import colorsys
import itertools
import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from sketchsearch.data.errors import UsageError
from sketchsearch.data.layouts import SKETCHY_DEFAULT_VARIANT
from sketchsearch.data.shapes import CATEGORY_NAMES, DETAIL, Geometry, draw

__all__ = [
    "CATEGORY_NAMES",
    "JPEG_QUALITY",
    "SynthConfig",
    "SynthReport",
    "generate",
    "object_mask",
    "photo_id",
    "render_instance",
]

JPEG_QUALITY = 92
_SHIFT = 4  # fixed-point bits: cv2 draws at 1/16 px so small shapes stay smooth
_SUPER = 2  # sketches are drawn this much larger and reduced, for fractional stroke widths
_MIN_SIZE = 32

Image = NDArray[np.float32]
Gray = NDArray[np.uint8]
Matrix = NDArray[np.float64]
Colour = NDArray[np.float32]


@dataclass(frozen=True)
class SynthConfig:
    """The whole recipe: the same config always yields the same bytes."""

    categories: int = 24
    photos_per_category: int = 12
    sketches_per_photo: int = 2
    size: int = 128
    seed: int = 0


@dataclass(frozen=True)
class SynthReport:
    """What was written, so the CLI can print a summary without rescanning the folder."""

    root: Path
    categories: tuple[str, ...]  # the category names written, sorted
    photos: int
    sketches: int
    seconds: float


# ---------------------------------------------------------------------------------------------
# Public entry points


def generate(
    out_dir: str | os.PathLike[str], config: SynthConfig = SynthConfig(), *, overwrite: bool = False
) -> SynthReport:
    """Write the data set under ``out_dir``; refuses to mix with an existing one."""
    started = time.perf_counter()
    names = _checked_names(config)
    root = Path(out_dir)
    _prepare(root, overwrite)
    for name in names:
        for domain in ("photo", "sketch"):
            (root / domain / SKETCHY_DEFAULT_VARIANT / name).mkdir(parents=True, exist_ok=True)
    jobs = [(c, i) for c in range(len(names)) for i in range(config.photos_per_category)]
    # cv2 and numpy release the GIL, so threads overlap the per-item work.
    with ThreadPoolExecutor(max_workers=min(4, _usable_cpus())) as pool:
        for _ in pool.map(lambda job: _write_instance(root, config, *job), jobs):
            pass
    return SynthReport(
        root=root,
        categories=names,
        photos=len(jobs),
        sketches=len(jobs) * config.sketches_per_photo,
        seconds=time.perf_counter() - started,
    )


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def photo_id(category: str, index: int) -> str:
    """Sketchy splits sketch names at the last hyphen, so photo ids must not contain one."""
    return f"{category.replace('-', '')}_{index:04d}"


def render_instance(
    config: SynthConfig, category: str, index: int
) -> tuple[NDArray[np.uint8], list[Gray]]:
    """The photo (BGR) and its sketches (gray) of one instance, exactly as ``generate`` writes."""
    c = _category_index(category)
    shape, rng = _instance(config, c, index)
    photo = _render_photo(shape, rng, config.size)
    sketches = [
        _render_sketch(shape, np.random.default_rng([config.seed, c, index, n]), config.size)
        for n in range(1, config.sketches_per_photo + 1)
    ]
    return photo, sketches


def object_mask(config: SynthConfig, category: str, index: int) -> NDArray[np.bool_]:
    """Where the object of one photo lies, from its geometry: ground truth that needs no
    segmentation, for checking that a sketch belongs to its own photo."""
    shape, _rng = _instance(config, _category_index(category), index)
    mask = np.zeros((config.size, config.size), np.uint8)
    for part in shape.parts:
        cv2.fillPoly(mask, [_fixed(c) for c in part.contours], 255, cv2.LINE_8, _SHIFT)
    width = max(1, round(2 * config.size / 128))
    for stroke in shape.strokes:
        cv2.polylines(mask, [_fixed(stroke)], False, 255, width, cv2.LINE_8, _SHIFT)
    return mask > 0


# ---------------------------------------------------------------------------------------------
# Checks, folders and files


def _checked_names(config: SynthConfig) -> tuple[str, ...]:
    counts = (
        ("--categories", config.categories),
        ("--photos-per-category", config.photos_per_category),
        ("--sketches-per-photo", config.sketches_per_photo),
    )
    for flag, value in counts:
        if value < 1:
            raise UsageError(f"{flag} {value}: must be at least 1")
    if config.categories > len(CATEGORY_NAMES):
        raise UsageError(
            f"--categories {config.categories}: at most {len(CATEGORY_NAMES)} categories"
            " are available"
        )
    if config.size < _MIN_SIZE:
        raise UsageError(f"--size {config.size}: images must be at least {_MIN_SIZE} pixels")
    if config.seed < 0:
        raise UsageError(f"--seed {config.seed}: the seed must be 0 or more")
    return tuple(CATEGORY_NAMES[: config.categories])


def _category_index(category: str) -> int:
    if category not in CATEGORY_NAMES:
        raise UsageError(f"unknown category {category!r}: choose from {', '.join(CATEGORY_NAMES)}")
    return int(CATEGORY_NAMES.index(category))


def _prepare(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root}: exists and is not a directory")
    existing = [
        root / d for d in ("photo", "sketch") if (root / d).exists() or (root / d).is_symlink()
    ]
    if existing and not overwrite:
        raise UsageError(f"{root}: already holds a data set; pass --overwrite to replace it")
    for path in existing:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    root.mkdir(parents=True, exist_ok=True)


def _write_instance(root: Path, config: SynthConfig, c: int, i: int) -> None:
    name = CATEGORY_NAMES[c]
    photo, sketches = render_instance(config, name, i)
    stem = photo_id(name, i)
    photo_dir = root / "photo" / SKETCHY_DEFAULT_VARIANT / name
    sketch_dir = root / "sketch" / SKETCHY_DEFAULT_VARIANT / name
    (photo_dir / f"{stem}.jpg").write_bytes(
        _encode(photo, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    )
    for n, sketch in enumerate(sketches, start=1):
        (sketch_dir / f"{stem}-{n}.png").write_bytes(_encode(sketch, ".png", []))


def _encode(image: NDArray[np.uint8], ext: str, params: list[int]) -> bytes:
    ok, buffer = cv2.imencode(ext, image, params)
    if not ok:
        raise RuntimeError(f"OpenCV cannot encode {ext} images")
    return bytes(buffer.tobytes())


# ---------------------------------------------------------------------------------------------
# Instances and poses


def _instance(config: SynthConfig, c: int, i: int) -> tuple[Geometry, np.random.Generator]:
    """The posed geometry (photo pixels) and the generator, ready for the photo's styling."""
    rng = np.random.default_rng([config.seed, c, i])
    shape = draw(CATEGORY_NAMES[c], rng)
    return shape.transformed(_pose(shape, rng, config.size)), rng


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _pose(shape: Geometry, rng: np.random.Generator, size: int) -> Matrix:
    """Random rotation, mirror, scale and position that keep the object inside the frame."""
    angle = math.radians(_u(rng, -25.0, 25.0))
    mirror = -1.0 if rng.random() < 0.5 else 1.0
    rotation = np.array(
        [[math.cos(angle) * mirror, -math.sin(angle)], [math.sin(angle) * mirror, math.cos(angle)]]
    )
    extent = float(np.ptp(shape.points() @ rotation.T, axis=0).max())
    margin = 0.04 * size
    linear = rotation * (_u(rng, 0.55, 0.92) * (size - 2 * margin) / extent)
    points = shape.points() @ linear.T
    low, high = margin - points.min(axis=0), size - margin - points.max(axis=0)
    shift = low + rng.random(2) * np.maximum(high - low, 0.0)
    return np.concatenate([linear, shift[:, None]], axis=1)


def _fixed(points: NDArray[np.float64]) -> NDArray[np.int32]:
    return np.round(points * (1 << _SHIFT)).astype(np.int32)


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[Image, Image]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


# ---------------------------------------------------------------------------------------------
# Photos


def _hsv(hue: float, saturation: float, value: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return np.array([b, g, r], np.float32) * 255.0


def _muted(rng: np.random.Generator) -> Colour:
    return _hsv(_u(rng, 0, 1), _u(rng, 0.05, 0.4), _u(rng, 0.3, 0.85))


def _render_photo(shape: Geometry, rng: np.random.Generator, size: int) -> NDArray[np.uint8]:
    image = _background(rng, size)
    palette = _palette(rng)
    alpha, layer = _object_layer(shape, rng, palette, size)
    if rng.random() < 0.6:
        _cast_shadow(image, alpha, rng, size)
    image = image * (1.0 - alpha[..., None]) + layer
    _draw_lines(image, shape, rng, palette, size)
    image += rng.normal(0.0, _u(rng, 1.5, 6.0), image.shape).astype(np.float32)
    photo: NDArray[np.uint8] = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    return photo


def _background(rng: np.random.Generator, size: int) -> Image:
    x, y = _grid(size)
    angle = _u(rng, 0, 2 * math.pi)
    t = np.clip(
        ((x - size / 2) * math.cos(angle) + (y - size / 2) * math.sin(angle)) / size + 0.5, 0, 1
    )
    image = _mix(_muted(rng), _muted(rng), t)
    for cells, spread in ((4, 16.0), (int(rng.integers(8, 24)), _u(rng, 3.0, 12.0))):
        blotches = rng.normal(0.0, spread, (cells, cells, 3)).astype(np.float32)
        image += cv2.resize(blotches, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(4, 11))):
        _distractor(image, rng, size)
    return np.asarray(cv2.GaussianBlur(image, (0, 0), _u(rng, 0.3, 1.2) * size / 128), np.float32)


def _mix(a: Colour, b: Colour, t: NDArray[np.floating[Any]]) -> Image:
    return np.asarray(a * (1.0 - t[..., None]) + b * t[..., None], np.float32)


def _distractor(image: Image, rng: np.random.Generator, size: int) -> None:
    """A muted blob or line, so the object is not the only thing with edges in the photo."""
    overlay = image.copy()
    colour = tuple(float(v) for v in _muted(rng))
    cx, cy = (int(v) for v in rng.integers(0, size, 2))
    a, b = (max(2, int(v * size)) for v in rng.uniform(0.04, 0.3, 2))
    kind = int(rng.integers(0, 4))
    if kind == 0:
        cv2.ellipse(overlay, (cx, cy), (a, b), _u(rng, 0, 180), 0, 360, colour, -1, cv2.LINE_AA)
    elif kind == 1:
        box = cv2.boxPoints(((cx, cy), (2 * a, 2 * b), _u(rng, 0, 90)))
        cv2.fillPoly(overlay, [np.round(box).astype(np.int32)], colour, cv2.LINE_AA)
    elif kind == 2:
        end = (int(cx + a * 3 * math.cos(b)), int(cy + a * 3 * math.sin(b)))
        width = max(1, int(size * _u(rng, 0.01, 0.04)))
        cv2.line(overlay, (cx, cy), end, colour, width, cv2.LINE_AA)
    else:
        width = max(1, int(size * _u(rng, 0.01, 0.03)))
        cv2.ellipse(overlay, (cx, cy), (a, b), _u(rng, 0, 180), 0, _u(rng, 90, 300), colour, width)
    weight = _u(rng, 0.3, 0.8)
    image[:] = overlay * weight + image * (1.0 - weight)


def _palette(rng: np.random.Generator) -> tuple[Colour, Colour, Colour]:
    hue = _u(rng, 0, 1)
    body = _hsv(hue, _u(rng, 0.45, 1.0), _u(rng, 0.55, 1.0))
    second = _hsv(hue + _u(rng, 0.15, 0.85), _u(rng, 0.35, 1.0), _u(rng, 0.45, 1.0))
    if rng.random() < 0.7:
        detail = _hsv(_u(rng, 0, 1), _u(rng, 0.0, 0.5), _u(rng, 0.05, 0.3))
    else:
        detail = _hsv(_u(rng, 0, 1), _u(rng, 0.0, 0.15), _u(rng, 0.85, 1.0))
    return body, second, detail


def _fill_mask(contours: tuple[NDArray[np.float64], ...], size: int) -> Image:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [_fixed(c) for c in contours], 255, cv2.LINE_AA, _SHIFT)
    return mask.astype(np.float32) / 255.0


def _object_layer(
    shape: Geometry, rng: np.random.Generator, palette: tuple[Colour, ...], size: int
) -> tuple[Image, Image]:
    """Coverage and premultiplied colour of the object, painted part by part."""
    alpha = np.zeros((size, size), np.float32)
    layer = np.zeros((size, size, 3), np.float32)
    for part in shape.parts:
        mask = _fill_mask(part.contours, size)
        texture = _texture(rng, palette[part.role], np.concatenate(part.contours), size)
        layer = layer * (1.0 - mask[..., None]) + texture * mask[..., None]
        alpha = alpha * (1.0 - mask) + mask
    layer *= _lighting(shape, rng, size)[..., None]
    return alpha, layer


def _texture(
    rng: np.random.Generator, colour: Colour, points: NDArray[np.float64], size: int
) -> Image:
    """Solid, gradient, stripes, checker or dots; gradients span the part, not the frame."""
    if rng.random() < 0.5:
        other = colour * _u(rng, 0.35, 0.75)
    else:
        other = _hsv(_u(rng, 0, 1), _u(rng, 0.5, 1.0), _u(rng, 0.5, 1.0))
    x, y = _grid(size)
    angle = _u(rng, 0, math.pi)
    cos, sin = math.cos(angle), math.sin(angle)
    along, across = x * cos + y * sin, y * cos - x * sin
    period = _u(rng, 0.07, 0.18) * size
    kind = int(rng.choice(5, p=[0.3, 0.25, 0.2, 0.1, 0.15]))
    if kind == 0:  # solid
        t = np.zeros_like(x)
    elif kind == 1:  # gradient
        span = points @ np.array([cos, sin])
        t = np.clip((along - span.min()) / (np.ptp(span) + 1e-6), 0, 1)
    elif kind == 2:  # stripes
        t = np.clip(np.sin(2 * np.pi * along / period) * 3 + 0.5, 0, 1)
    elif kind == 3:  # checker
        t = ((np.floor(along / period) + np.floor(across / period)) % 2).astype(np.float32)
    else:  # dots
        du, dv = (along / period) % 1 - 0.5, (across / period) % 1 - 0.5
        t = np.clip((0.3 - np.hypot(du, dv)) * 8, 0, 1)
    return _mix(colour, other, t)


def _lighting(shape: Geometry, rng: np.random.Generator, size: int) -> Image:
    """A soft highlight so objects look lit rather than pasted flat."""
    points = shape.points()
    low, high = points.min(axis=0), points.max(axis=0)
    radius = float(max(high - low)) / 2 + 1.0
    light = (low + high) / 2 + rng.uniform(-0.6, 0.6, 2) * radius
    x, y = _grid(size)
    distance = np.hypot(x - light[0], y - light[1]) / (2 * radius)
    strength = _u(rng, 0.15, 0.6)
    return np.asarray(np.clip(1.15 - strength * distance, 0.6, 1.2), np.float32)


def _cast_shadow(image: Image, alpha: Image, rng: np.random.Generator, size: int) -> None:
    dx, dy = rng.uniform(-0.06, 0.06, 2) * size
    moved = cv2.warpAffine(alpha, np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]), (size, size))
    soft = cv2.GaussianBlur(moved, (0, 0), _u(rng, 1.5, 4.0) * size / 128)
    image *= (1.0 - _u(rng, 0.25, 0.55) * soft)[..., None]


def _draw_lines(
    image: Image,
    shape: Geometry,
    rng: np.random.Generator,
    palette: tuple[Colour, ...],
    size: int,
) -> None:
    """An optional darker outline, and the open strokes (stems, facets, handles)."""
    dark = tuple(float(v) for v in palette[0] * _u(rng, 0.2, 0.45))
    if rng.random() < 0.5:
        width = max(1, round(size / 128 * _u(rng, 0.8, 1.6)))
        for part in shape.parts:
            contours = [_fixed(c) for c in part.contours]
            cv2.polylines(image, contours, True, dark, width, cv2.LINE_AA, _SHIFT)
    width = max(1, round(size / 128 * _u(rng, 1.5, 2.5)))
    ink = dark if rng.random() < 0.6 else tuple(float(v) for v in palette[DETAIL])
    for stroke in shape.strokes:
        cv2.polylines(image, [_fixed(stroke)], False, ink, width, cv2.LINE_AA, _SHIFT)


# ---------------------------------------------------------------------------------------------
# Sketches


def _render_sketch(shape: Geometry, rng: np.random.Generator, size: int) -> Gray:
    """Wobbly dark lines on white, from the photo's pose plus a little hand jitter."""
    big = size * _SUPER
    unit = big / 128  # one pixel of a 128 px image, in canvas pixels
    posed = shape.transformed(_hand_jitter(shape, rng, size))
    canvas = np.full((big, big), 255, np.uint8)
    base_width = _u(rng, 1.0, 3.0) * unit
    for points, closed, main in _sketch_lines(posed):
        if not main and rng.random() < 0.08:
            continue  # sketchers forget a line now and then
        for segment in _hand_segments(points, closed, rng, unit):
            width = max(_SUPER, round(base_width * _u(rng, 0.8, 1.2)))
            ink = int(rng.integers(0, 70))
            cv2.polylines(canvas, [_fixed(segment)], False, ink, width, cv2.LINE_AA, _SHIFT)
    return np.asarray(cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA), np.uint8)


def _hand_jitter(shape: Geometry, rng: np.random.Generator, size: int) -> Matrix:
    """A small similarity about the object's centre, then the move to the larger canvas."""
    points = shape.points()
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    angle = math.radians(float(np.clip(rng.normal(0.0, 3.0), -7.0, 7.0)))
    scale = _u(rng, 0.94, 1.06) * _SUPER
    linear = scale * np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    shift = rng.normal(0.0, 0.015 * size, 2)
    offset = (centre + shift) * _SUPER - linear @ centre
    return np.concatenate([linear, offset[:, None]], axis=1)


def _sketch_lines(shape: Geometry) -> list[tuple[NDArray[np.float64], bool, bool]]:
    """(points, closed, is the main outline) for every contour and stroke."""
    lines = [(c, True, False) for part in shape.parts for c in part.contours]
    lines += [(s, False, False) for s in shape.strokes]
    areas = [_area(c) if closed else 0.0 for c, closed, _ in lines]
    main = int(np.argmax(areas))
    return [(c, closed, k == main) for k, (c, closed, _) in enumerate(lines)]


def _area(points: NDArray[np.float64]) -> float:
    x, y = points[:, 0], points[:, 1]
    return abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))) / 2


def _hand_segments(
    points: NDArray[np.float64], closed: bool, rng: np.random.Generator, unit: float
) -> list[NDArray[np.float64]]:
    """The line as one to three overlapping wobbly strokes, with overshoot or gap at the end."""
    if closed:
        points = np.concatenate([points, points[:1]])
    spacing = 1.5 * unit
    dense = _resample(points, spacing)
    if closed and len(dense) > 8:
        extra = int(rng.integers(-2, 6))  # negative leaves a gap, positive overshoots
        dense = (
            np.concatenate([dense, dense[1 : 1 + extra]])
            if extra > 0
            else dense[: len(dense) + extra]
        )
    dense = dense + _wobble(len(dense), spacing, rng, unit)
    pieces = 1 + int(len(dense) * spacing / unit > 220) + int(len(dense) * spacing / unit > 440)
    cuts = np.sort(rng.integers(4, max(5, len(dense) - 4), pieces - 1))
    bounds = [0, *[int(c) for c in cuts], len(dense)]
    segments = []
    for start, stop in itertools.pairwise(bounds):
        segment = dense[max(0, start - 2) : stop] + rng.normal(0.0, 0.5 * unit, 2)
        if len(segment) >= 2:
            segments.append(segment)
    return segments


def _resample(points: NDArray[np.float64], spacing: float) -> NDArray[np.float64]:
    steps = np.hypot(*np.diff(points, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    if along[-1] < spacing:
        return points
    at = np.append(np.arange(0.0, along[-1], spacing), along[-1])
    return np.stack(
        [np.interp(at, along, points[:, 0]), np.interp(at, along, points[:, 1])], axis=1
    )


def _wobble(n: int, spacing: float, rng: np.random.Generator, unit: float) -> NDArray[np.float64]:
    """Smooth displacement along the line: a few sines of random wavelength and phase."""
    along = np.arange(n)[:, None] * spacing
    amplitude = _u(rng, 0.6, 1.7) * unit
    offset = np.zeros((n, 2))
    for k in range(1, 4):
        wavelength = rng.uniform(30.0, 120.0, 2) * unit
        phase = rng.uniform(0.0, 2 * math.pi, 2)
        offset += amplitude / k * np.sin(2 * math.pi * along / wavelength + phase)
    return offset
