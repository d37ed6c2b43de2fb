"""Photos of the synthetic data set: the posed object, textured and lit, on clutter.

Muted gradient-and-blotch backgrounds with distractor shapes, a palette per instance, a
texture per part, a soft highlight, an optional cast shadow, outlines and strokes, then
sensor noise. Every random draw comes from the instance's generator, in a fixed order.
"""

from __future__ import annotations

import colorsys
import math
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from sketchsearch.data._geometry import _SHIFT, DETAIL, Geometry, _fixed, _u

Image = NDArray[np.float32]
Colour = NDArray[np.float32]


def render_photo(shape: Geometry, rng: np.random.Generator, size: int) -> NDArray[np.uint8]:
    """The BGR photo of an instance already posed in pixels, styled from ``rng``."""
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


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[Image, Image]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _hsv(hue: float, saturation: float, value: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return np.array([b, g, r], np.float32) * 255.0


def _muted(rng: np.random.Generator) -> Colour:
    return _hsv(_u(rng, 0, 1), _u(rng, 0.05, 0.4), _u(rng, 0.3, 0.85))


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
