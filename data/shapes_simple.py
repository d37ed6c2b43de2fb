"""Plain shapes and nature: the simpler half of the synthetic categories.

Each function draws one instance from its generator, in normalised coordinates; ``shapes``
gathers ``SHAPES`` from here and from ``shapes_objects`` into the one category registry.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from sketchsearch.data._geometry import (
    DETAIL,
    SECOND,
    Geometry,
    ShapeFn,
    _arc,
    _bezier,
    _ellipse,
    _mirror,
    _one,
    _polar,
    _pts,
    _rect,
    _registrar,
    _shape,
    _u,
)

SHAPES: dict[str, ShapeFn] = {}
_category = _registrar(SHAPES)


# ---------------------------------------------------------------------------------------------
# Plain shapes


@_category("circle")
def _circle(rng: np.random.Generator) -> Geometry:
    return _shape(_one(_ellipse(0, 0, 1.0, _u(rng, 0.9, 1.0), 96)))


@_category("square")
def _square(rng: np.random.Generator) -> Geometry:
    return _shape(_one(_rect(-1.0, -_u(rng, 0.85, 1.0), 1.0, _u(rng, 0.85, 1.0))))


@_category("triangle")
def _triangle(rng: np.random.Generator) -> Geometry:
    apex = _u(rng, -0.3, 0.3)
    return _shape(_one(_pts((-1.0, 0.8), (1.0, 0.8), (apex, -_u(rng, 0.8, 1.0)))))


@_category("hexagon")
def _hexagon(rng: np.random.Generator) -> Geometry:
    t = np.arange(6) * math.pi / 3
    points = np.stack([np.cos(t), _u(rng, 0.85, 1.0) * np.sin(t)], axis=1)
    return _shape(_one(points))


@_category("star")
def _star(rng: np.random.Generator) -> Geometry:
    inner = _u(rng, 0.36, 0.5)
    t = -math.pi / 2 + np.arange(10) * math.pi / 5
    r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
    return _shape(_one(np.stack([r * np.cos(t), r * np.sin(t)], axis=1)))


@_category("cross")
def _cross(rng: np.random.Generator) -> Geometry:
    w, bar, arm = _u(rng, 0.17, 0.25), _u(rng, -0.35, 0.0), _u(rng, 0.6, 0.95)
    outline = _pts(
        (-w, -1.0), (w, -1.0), (w, bar - w), (arm, bar - w), (arm, bar + w), (w, bar + w),
        (w, 1.0), (-w, 1.0), (-w, bar + w), (-arm, bar + w), (-arm, bar - w), (-w, bar - w),
    )  # fmt: skip
    return _shape(_one(outline))


@_category("heart")
def _heart(rng: np.random.Generator) -> Geometry:
    t = np.linspace(0.0, 2 * math.pi, 120, endpoint=False)
    x = 16 * np.sin(t) ** 3 * _u(rng, 0.85, 1.15)
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return _shape(_one(np.stack([x, y], axis=1) / 17.0))


@_category("crescent_moon")
def _crescent_moon(rng: np.random.Generator) -> Geometry:
    r, d = _u(rng, 0.75, 0.92), _u(rng, 0.35, 0.55)
    x = (1.0 - r * r + d * d) / (2 * d)
    y = math.sqrt(max(1.0 - x * x, 1e-6))
    theta = math.atan2(y, x)
    outer = _arc(0, 0, 1, 1, theta, 2 * math.pi - theta, 64)
    phi_top, phi_bottom = math.atan2(-y, x - d), math.atan2(y, x - d)
    inner = _arc(d, 0, r, r, phi_top, phi_bottom - 2 * math.pi, 48)
    outline = np.concatenate([outer, inner[1:-1]], axis=0)
    tilt = _u(rng, -0.5, 0.5)
    rot = np.array([[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]])
    return _shape(_one(outline @ rot.T))


@_category("lightning_bolt")
def _lightning_bolt(rng: np.random.Generator) -> Geometry:
    m, s = _u(rng, -0.3, -0.1), _u(rng, 0.28, 0.4)
    outline = _pts(
        (-0.15, -1.0), (0.55, -1.0), (0.15, m), (0.15 + s + 0.15, m), (-0.35, 1.0),
        (-0.02, m + 0.3), (-0.45, m + 0.3),
    )  # fmt: skip
    return _shape(_one(outline))


@_category("arrow")
def _arrow(rng: np.random.Generator) -> Geometry:
    t, hw, h0 = _u(rng, 0.1, 0.17), _u(rng, 0.35, 0.5), _u(rng, 0.15, 0.45)
    outline = _pts((-1.0, -t), (h0, -t), (h0, -hw), (1.0, 0.0), (h0, hw), (h0, t), (-1.0, t))
    return _shape(_one(outline))


# ---------------------------------------------------------------------------------------------
# Nature


@_category("cloud")
def _cloud(rng: np.random.Generator) -> Geometry:
    bumps, phase, ry = int(rng.integers(5, 9)), _u(rng, 0, math.pi), _u(rng, 0.5, 0.65)

    def radius(t: NDArray[np.float64]) -> NDArray[np.float64]:
        return 1.0 + 0.14 * np.abs(np.sin(bumps * t / 2 + phase))

    points = _polar(radius, 240) * np.array([1.0, ry])
    points[:, 1] = np.minimum(points[:, 1], ry * _u(rng, 0.55, 0.8))
    return _shape(_one(points))


@_category("sun")
def _sun(rng: np.random.Generator) -> Geometry:
    r, n, spin = _u(rng, 0.42, 0.55), int(rng.integers(8, 13)), _u(rng, 0, math.pi)
    half = math.pi / n * _u(rng, 0.3, 0.5)
    rays = []
    for a in spin + np.arange(n) * 2 * math.pi / n:
        base = r + 0.1
        rays.append(
            _one(
                _pts(
                    (base * math.cos(a - half), base * math.sin(a - half)),
                    (math.cos(a), math.sin(a)),
                    (base * math.cos(a + half), base * math.sin(a + half)),
                ),
                SECOND,
            )
        )
    return _shape(_one(_ellipse(0, 0, r, r, 72)), *rays)


@_category("leaf")
def _leaf(rng: np.random.Generator) -> Geometry:
    w, skew, power = _u(rng, 0.38, 0.55), _u(rng, -0.15, 0.15), _u(rng, 0.6, 1.0)
    s = np.linspace(0.0, 1.0, 40)
    y = 0.75 - 1.7 * s
    bulge = w * np.sin(math.pi * s) ** power
    right = np.stack([bulge * (1 + skew) + 0.1 * s * s, y], axis=1)
    left = np.stack([-bulge * (1 - skew) + 0.1 * s * s, y], axis=1)
    outline = np.concatenate([right, left[::-1][1:-1]], axis=0)
    rib = np.stack([0.1 * s * s, y], axis=1)
    stem = _pts((0.0, 0.75), (-0.05, 1.0))
    veins = tuple(
        _pts((0.1 * v * v, 0.75 - 1.7 * v), (side * w * 0.7, 0.75 - 1.7 * v - 0.25))
        for v in (0.3, 0.55)
        for side in (-1.0, 1.0)
    )
    return _shape(_one(outline), strokes=(np.concatenate([stem[::-1], rib]), *veins))


@_category("flower")
def _flower(rng: np.random.Generator) -> Geometry:
    petals, depth, head = int(rng.integers(5, 9)), _u(rng, 0.3, 0.5), _u(rng, 0.5, 0.6)
    cy = -1.0 + head

    def radius(t: NDArray[np.float64]) -> NDArray[np.float64]:
        return head * (1 - depth + depth * np.abs(np.cos(petals * t / 2)) ** 0.6)

    outline = _polar(radius, 240) + np.array([0.0, cy])
    bottom = cy + float(radius(np.array([math.pi / 2]))[0]) * 0.9
    stem = _rect(-0.04, bottom, 0.04, 1.0)
    leaf = _bezier((0.03, 0.65), (0.4, 0.35), (0.5, 0.45), n=12)
    leaf = np.concatenate([leaf, _bezier((0.5, 0.45), (0.35, 0.7), (0.03, 0.75), n=12)[1:]])
    centre = _ellipse(0, cy, head * 0.3, head * 0.3, 40)
    return _shape(_one(stem, SECOND), _one(leaf, SECOND), _one(outline), _one(centre, DETAIL))


@_category("tree")
def _tree(rng: np.random.Generator) -> Geometry:
    tiers, width = int(rng.integers(2, 5)), _u(rng, 0.55, 0.8)
    bottom = _u(rng, 0.45, 0.6)
    step = (bottom + 1.0) / tiers
    right = [(0.0, -1.0)]
    for k in range(1, tiers + 1):
        w = width * (0.45 + 0.55 * k / tiers)
        y = -1.0 + k * step
        right += [(w, y), (w * 0.45, y)] if k < tiers else [(w, y)]
    outline = _mirror(_pts(*right)[1:])
    outline = np.concatenate([_pts((0.0, -1.0)), outline], axis=0)
    trunk_w = _u(rng, 0.09, 0.15)
    return _shape(_one(_rect(-trunk_w, bottom, trunk_w, 1.0), SECOND), _one(outline))


@_category("mushroom")
def _mushroom(rng: np.random.Generator) -> Geometry:
    ry, sw, sag = _u(rng, 0.45, 0.7), _u(rng, 0.18, 0.3), _u(rng, 0.05, 0.15)
    dome = _arc(0, 0, 1, ry, math.pi, 2 * math.pi, 48)
    xs = np.linspace(1.0, -1.0, 24)
    cap = np.concatenate([dome, np.stack([xs, sag * (1 - xs * xs)], axis=1)[1:-1]], axis=0)
    top = np.linspace(-sw, sw, 8)
    stem = np.concatenate(
        [np.stack([top, sag * (1 - top * top)], axis=1), _pts((sw * 1.25, 1.0), (-sw * 1.25, 1.0))]
    )
    spots = []
    for k in range(int(rng.integers(2, 5))):
        x = -0.55 + 0.37 * k + _u(rng, -0.05, 0.05)
        y = -ry * _u(rng, 0.35, 0.6) * math.sqrt(max(1 - x * x, 0.2))
        spots.append(_one(_ellipse(x, y, 0.1, 0.08, 24), DETAIL))
    return _shape(_one(stem, SECOND), _one(cap), *spots)
