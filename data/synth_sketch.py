"""Sketches of the synthetic data set: wobbly hand-drawn lines of the photo's instance.

The photo's pose plus a little hand jitter, every contour and stroke redrawn as one to three
overlapping wobbly strokes with overshoot or gaps, on a canvas drawn larger and reduced so
stroke widths can be fractional.
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
from numpy.typing import NDArray

from sketchsearch.data._geometry import _SHIFT, Geometry, Matrix, _fixed, _u

Gray = NDArray[np.uint8]

_SUPER = 2  # sketches are drawn this much larger and reduced, for fractional stroke widths


def render_sketch(shape: Geometry, rng: np.random.Generator, size: int) -> Gray:
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
