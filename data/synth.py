"""Synthetic Sketchy-layout data: the project's embedded demo data set.

The demo and the CPU training smoke test need data that ships with the code, is small, and is
hard enough to be worth learning: photos are textured objects on cluttered backgrounds and
sketches are wobbly line drawings of the same instance in (almost) the same pose, so both
category-level and instance-level retrieval are meaningful. Output depends only on the
config: every item draws from its own generator seeded with (seed, category, photo), so files
are byte-identical across runs whatever the thread scheduling.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from sketchsearch.data._geometry import _SHIFT, Matrix, _fixed, _u
from sketchsearch.data.errors import UsageError
from sketchsearch.data.layouts import SKETCHY_DEFAULT_VARIANT
from sketchsearch.data.shapes import CATEGORY_NAMES, Geometry, draw
from sketchsearch.data.synth_photo import render_photo
from sketchsearch.data.synth_sketch import Gray, render_sketch

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
_MIN_SIZE = 32


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
    photo = render_photo(shape, rng, config.size)
    sketches = [
        render_sketch(shape, np.random.default_rng([config.seed, c, index, n]), config.size)
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
