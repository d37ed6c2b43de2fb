"""Geometry shared by the shape catalogs and the synthetic renderers.

A shape is filled parts plus open strokes, as point arrays in normalised coordinates (y points
down, the object fits in [-1, 1]²) until a renderer poses it in pixels. This module holds those
types, the registration decorator the catalogs use, the small construction helpers they build
outlines from, and the fixed-point conversion every cv2 drawing call uses. It is package
internal: ``shapes`` is the public face of the catalog.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Points = NDArray[np.float64]
Matrix = NDArray[np.float64]  # a 2x3 affine matrix, as cv2.transform takes
ShapeFn = Callable[[np.random.Generator], "Geometry"]

# Part roles pick the colour a photo paints a part with.
BODY, SECOND, DETAIL = 0, 1, 2


@dataclass(frozen=True)
class Part:
    """A closed filled region; contours after the first are holes (rings, keys, handles)."""

    contours: tuple[Points, ...]
    role: int = BODY


@dataclass(frozen=True)
class Geometry:
    """Filled parts in painting order, then open strokes drawn on top of them."""

    parts: tuple[Part, ...]
    strokes: tuple[Points, ...] = ()

    def points(self) -> Points:
        every = [c for p in self.parts for c in p.contours] + list(self.strokes)
        return np.concatenate(every, axis=0)

    def transformed(self, matrix: Matrix) -> Geometry:
        """Apply a 2x3 affine matrix to every point, as cv2.transform would."""
        linear, shift = matrix[:, :2], matrix[:, 2]

        def move(points: Points) -> Points:
            return np.asarray(points @ linear.T + shift, dtype=np.float64)

        parts = tuple(Part(tuple(move(c) for c in p.contours), p.role) for p in self.parts)
        return Geometry(parts, tuple(move(s) for s in self.strokes))


def _registrar(registry: dict[str, ShapeFn]) -> Callable[[str], Callable[[ShapeFn], ShapeFn]]:
    """A catalog's ``@_category(name)`` decorator: it adds each shape function to ``registry``."""

    def category(name: str) -> Callable[[ShapeFn], ShapeFn]:
        def register(fn: ShapeFn) -> ShapeFn:
            registry[name] = fn
            return fn

        return register

    return category


# ---------------------------------------------------------------------------------------------
# Geometry helpers


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _pts(*xy: tuple[float, float]) -> Points:
    return np.array(xy, dtype=np.float64)


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 48) -> Points:
    """Points on an ellipse from angle a0 to a1 inclusive (y down: -pi/2 is the top)."""
    t = np.linspace(a0, a1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 64) -> Points:
    return _arc(cx, cy, rx, ry, 0.0, 2 * math.pi, n + 1)[:-1]


def _rect(x0: float, y0: float, x1: float, y1: float) -> Points:
    return _pts((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def _mirror(right: Points) -> Points:
    """A left-right symmetric outline from its right half, listed top to bottom."""
    left = right[::-1] * np.array([-1.0, 1.0])
    return np.concatenate([right, left], axis=0)


def _polar(radius: Callable[[NDArray[np.float64]], NDArray[np.float64]], n: int = 180) -> Points:
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    r = radius(t)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _bezier(*control: tuple[float, float], n: int = 24) -> Points:
    """A Bézier curve through its end points (de Casteljau, any degree)."""
    points = np.array(control, dtype=np.float64)
    t = np.linspace(0.0, 1.0, n)[:, None]
    while len(points) > 1:
        points = np.stack([(1 - t) * a + t * b for a, b in itertools.pairwise(points)])
    return np.asarray(points[0], dtype=np.float64)


def _annulus_arc(cx: float, cy: float, r_out: float, r_in: float, a0: float, a1: float) -> Points:
    outer = _arc(cx, cy, r_out, r_out, a0, a1, 32)
    inner = _arc(cx, cy, r_in, r_in, a1, a0, 32)
    return np.concatenate([outer, inner], axis=0)


def _shape(*parts: Part, strokes: tuple[Points, ...] = ()) -> Geometry:
    return Geometry(tuple(parts), strokes)


def _one(points: Points, role: int = BODY) -> Part:
    return Part((points,), role)


# ---------------------------------------------------------------------------------------------
# Drawing with cv2

_SHIFT = 4  # fixed-point bits: cv2 draws at 1/16 px so small shapes stay smooth


def _fixed(points: Points) -> NDArray[np.int32]:
    """Pixel coordinates as cv2's fixed-point integers, for drawing calls given ``_SHIFT``."""
    return np.round(points * (1 << _SHIFT)).astype(np.int32)
