"""The drawable object categories of the synthetic demo data set.

Every category is a function of a per-instance random generator that returns geometry in
normalised coordinates (y points down, the object fits in [-1, 1]²). Geometry, not pixels,
is the shared currency so that one instance can be rendered both as a filled "photo" and as
a line "sketch" and the two stay paired at instance level. Proportions vary per instance so
that a category is learnable but not a single template.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sketchsearch.data.errors import UsageError

Points = NDArray[np.float64]
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

    def transformed(self, matrix: NDArray[np.float64]) -> Geometry:
        """Apply a 2x3 affine matrix to every point, as cv2.transform would."""
        linear, shift = matrix[:, :2], matrix[:, 2]

        def move(points: Points) -> Points:
            return np.asarray(points @ linear.T + shift, dtype=np.float64)

        parts = tuple(Part(tuple(move(c) for c in p.contours), p.role) for p in self.parts)
        return Geometry(parts, tuple(move(s) for s in self.strokes))


_REGISTRY: dict[str, ShapeFn] = {}


def _category(name: str) -> Callable[[ShapeFn], ShapeFn]:
    def register(fn: ShapeFn) -> ShapeFn:
        _REGISTRY[name] = fn
        return fn

    return register


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


# ---------------------------------------------------------------------------------------------
# Things


@_category("house")
def _house(rng: np.random.Generator) -> Geometry:
    w, eave, peak = _u(rng, 0.6, 0.8), _u(rng, -0.2, 0.0), _u(rng, -1.0, -0.8)
    roof = _pts((-w - 0.15, eave), (0.0, peak), (w + 0.15, eave))
    cx, cw = w * 0.45, 0.16

    def roof_y(x: float) -> float:
        return peak + (eave - peak) * x / (w + 0.15)

    chimney = _pts((cx, roof_y(cx)), (cx, peak + 0.05), (cx + cw, peak + 0.05))
    chimney = np.concatenate([chimney, _pts((cx + cw, roof_y(cx + cw)))])
    dx = _u(rng, -0.3, 0.1)
    door = _rect(dx - 0.13, 0.5, dx + 0.13, 1.0)
    wx = 0.4 if dx < -0.05 else -0.4
    window = _rect(wx - 0.15, 0.2, wx + 0.15, 0.5)
    bars = (_pts((wx, 0.2), (wx, 0.5)), _pts((wx - 0.15, 0.35), (wx + 0.15, 0.35)))
    return _shape(
        _one(chimney, SECOND), _one(_rect(-w, eave, w, 1.0)), _one(roof, SECOND),
        _one(door, DETAIL), _one(window, DETAIL), strokes=bars,
    )  # fmt: skip


@_category("car")
def _car(rng: np.random.Generator) -> Geometry:
    top, cab0, cab1 = _u(rng, -0.5, -0.3), _u(rng, -0.6, -0.4), _u(rng, 0.35, 0.6)
    body = _pts(
        (-1.0, 0.4), (-1.0, 0.05), (cab0 - 0.1, 0.0), (cab0 + 0.15, top), (cab1 - 0.1, top),
        (cab1 + 0.15, 0.0), (1.0, 0.1), (1.0, 0.4),
    )  # fmt: skip
    mid = (cab0 + cab1) / 2
    windows = (
        _pts((cab0 + 0.05, -0.02), (cab0 + 0.2, top + 0.07), (mid - 0.04, top + 0.07),
             (mid - 0.04, -0.02)),
        _pts((mid + 0.04, -0.02), (mid + 0.04, top + 0.07), (cab1 - 0.13, top + 0.07),
             (cab1 + 0.05, -0.02)),
    )  # fmt: skip
    r = _u(rng, 0.18, 0.24)
    wheels = [_one(_ellipse(x, 0.4, r, r, 40), DETAIL) for x in (-0.6, 0.6)]
    hubs = [_one(_ellipse(x, 0.4, r * 0.4, r * 0.4, 20), SECOND) for x in (-0.6, 0.6)]
    return _shape(_one(body), *[_one(w, SECOND) for w in windows], *wheels, *hubs)


@_category("cup")
def _cup(rng: np.random.Generator) -> Geometry:
    w, taper, rim = _u(rng, 0.5, 0.65), _u(rng, 0.0, 0.15), _u(rng, 0.08, 0.14)
    top, bottom = -0.45, 0.75
    upper = _arc(0, top, w, rim, math.pi, 2 * math.pi, 32)
    body = np.concatenate([upper, _pts((w - taper, bottom), (-w + taper, bottom))])
    hy = (top + bottom) / 2
    handle = _annulus_arc(w - taper / 2 - 0.02, hy, 0.36, 0.2, -math.pi / 2, math.pi / 2)
    coffee = _ellipse(0, top, w * 0.9, rim * 0.7, 40)
    steam = tuple(
        _pts(*[(x + 0.07 * math.sin(k * 1.8), top - 0.2 - 0.15 * k) for k in range(5)])
        for x in (-0.2, 0.15)
        if rng.random() < 0.7
    )
    return _shape(_one(handle), _one(body), _one(coffee, DETAIL), strokes=steam)


@_category("bottle")
def _bottle(rng: np.random.Generator) -> Geometry:
    wb, wn, shoulder = _u(rng, 0.35, 0.55), _u(rng, 0.1, 0.16), _u(rng, -0.2, 0.05)
    neck = _u(rng, -0.55, -0.4)
    curve = _bezier((wn, neck), (wn, neck + 0.2), (wb, shoulder - 0.15), (wb, shoulder), n=16)
    right = np.concatenate([_pts((wn, -0.82)), curve, _pts((wb, 1.0))])
    cap = _rect(-wn * 1.2, -1.0, wn * 1.2, -0.82)
    label = _rect(-wb, shoulder + 0.25, wb, shoulder + 0.25 + _u(rng, 0.3, 0.45))
    return _shape(_one(_mirror(right)), _one(cap, SECOND), _one(label, SECOND))


@_category("key")
def _key(rng: np.random.Generator) -> Geometry:
    r_out, hole, t = _u(rng, 0.32, 0.42), _u(rng, 0.35, 0.5), _u(rng, 0.07, 0.1)
    hx = -1.0 + r_out
    head = Part((_ellipse(hx, 0, r_out, r_out, 56), _ellipse(hx, 0, r_out * hole, r_out * hole)))
    x0 = hx + math.sqrt(r_out * r_out - t * t) - 0.02
    teeth: list[tuple[float, float]] = [(1.0, t)]
    for x in (0.95, 0.7, 0.45):
        depth = t + _u(rng, 0.12, 0.25)
        teeth += [(x, t), (x, depth), (x - 0.12, depth), (x - 0.12, t)]
    shaft = _pts((x0, -t), (1.0, -t), *teeth, (x0, t))
    return _shape(head, _one(shaft))


@_category("umbrella")
def _umbrella(rng: np.random.Generator) -> Geometry:
    h, k, dip = _u(rng, 0.5, 0.7), int(rng.integers(3, 6)), _u(rng, 0.08, 0.15)
    dome = _arc(0, 0, 1, h, math.pi, 2 * math.pi, 48)
    edges = np.linspace(1.0, -1.0, k + 1)
    scallops = [
        np.stack([np.linspace(a, b, 10), -dip * np.sin(np.linspace(0, math.pi, 10))], axis=1)[1:]
        for a, b in itertools.pairwise(edges)
    ]
    canopy = np.concatenate([dome, *scallops[:-1], scallops[-1][:-1]])
    hook = _arc(0.15, 0.8, 0.15, 0.15, math.pi, 0.0, 16)
    handle = np.concatenate([_pts((0.0, 0.0)), hook])
    ribs = tuple(_bezier((0.0, -h), (x * 0.6, -h * 0.8), (x, 0.0), n=12) for x in edges[1:-1])
    tip = _pts((0.0, -h), (0.0, -h - 0.12))
    return _shape(_one(canopy), strokes=(handle, tip, *ribs))


@_category("bell")
def _bell(rng: np.random.Generator) -> Geometry:
    wb, waist, lip = _u(rng, 0.75, 0.95), _u(rng, 0.3, 0.45), _u(rng, 0.08, 0.14)
    profile = _bezier((0.0, -0.75), (0.55, -0.78), (waist, 0.05), (wb, 0.55), n=24)
    right = np.concatenate([profile[1:], _pts((wb, 0.55 + lip))])
    body = np.concatenate([_pts((0.0, -0.75)), _mirror(right)])
    knob = _ellipse(0, -0.8, 0.13, 0.13, 24)
    clapper = _ellipse(0, 0.62 + lip, 0.14, 0.14, 24)
    return _shape(_one(knob, SECOND), _one(clapper, DETAIL), _one(body))


@_category("hourglass")
def _hourglass(rng: np.random.Generator) -> Geometry:
    w, neck, sand = _u(rng, 0.5, 0.75), _u(rng, 0.05, 0.1), _u(rng, 0.25, 0.55)
    glass = _pts((-w, -0.8), (w, -0.8), (neck, 0.0), (w, 0.8), (-w, 0.8), (-neck, 0.0))
    bars = [_one(_rect(-w - 0.15, y0, w + 0.15, y0 + 0.18), SECOND) for y0 in (-0.98, 0.8)]
    pile = _pts((-w * 0.8, 0.8), (w * 0.8, 0.8), (0.0, 0.8 - sand))
    return _shape(_one(glass), _one(pile, DETAIL), *bars)


@_category("diamond")
def _diamond(rng: np.random.Generator) -> Geometry:
    table, girdle, culet = _u(rng, 0.4, 0.6), _u(rng, -0.35, -0.15), _u(rng, 0.75, 1.0)
    top = girdle - _u(rng, 0.3, 0.45)
    outline = _pts((-table, top), (table, top), (1.0, girdle), (0.0, culet), (-1.0, girdle))
    facets = (
        _pts((-1.0, girdle), (1.0, girdle)),
        _pts((-table, top), (-0.4, girdle), (0.0, culet), (0.4, girdle), (table, top)),
        _pts((-0.4, girdle), (0.0, top), (0.4, girdle)),
    )
    return _shape(_one(outline), strokes=facets)


@_category("ring")
def _ring(rng: np.random.Generator) -> Geometry:
    band, r = _u(rng, 0.12, 0.2), 0.78
    cy = 1.0 - r
    outer, inner = _ellipse(0, cy, r, r, 72), _ellipse(0, cy, r - band, r - band, 72)
    gy, gw = cy - r, _u(rng, 0.22, 0.3)
    gem = _pts(
        (-gw, gy - 0.05), (-gw * 0.6, -1.0), (gw * 0.6, -1.0), (gw, gy - 0.05), (0, gy + 0.2)
    )
    return _shape(Part((outer, inner)), _one(gem, SECOND))


@_category("fish")
def _fish(rng: np.random.Generator) -> Geometry:
    ry, notch, fin = _u(rng, 0.32, 0.45), _u(rng, 0.75, 0.9), _u(rng, 0.3, 0.45)
    body = _ellipse(-0.25, 0, 0.75, ry, 72)
    tail = _pts((0.42, 0.0), (1.0, -fin), (notch, 0.0), (1.0, fin))
    top_fin = _pts((-0.45, -ry * 0.92), (-0.1, -ry - 0.22), (0.1, -ry * 0.8))
    eye = _ellipse(-0.7, -ry * 0.2, 0.07, 0.07, 20)
    gill = _arc(-0.75, 0.0, 0.3, ry * 0.7, -0.9, 0.9, 12)
    return _shape(
        _one(tail, SECOND), _one(top_fin, SECOND), _one(body), _one(eye, DETAIL), strokes=(gill,)
    )


@_category("t-shirt")
def _t_shirt(rng: np.random.Generator) -> Geometry:
    w, sleeve, hem = _u(rng, 0.5, 0.65), _u(rng, 0.85, 1.0), _u(rng, 0.8, 1.0)
    neck = _u(rng, 0.18, 0.26)
    right = _pts(
        (neck, -0.85), (w, -0.78), (sleeve, -0.4), (sleeve - 0.2, -0.2), (w, -0.38), (w, hem)
    )
    collar = _arc(0, -0.85, neck, _u(rng, 0.15, 0.25), 0.0, math.pi, 16)
    outline = np.concatenate([_mirror(right), collar[1:-1]])
    return _shape(_one(outline))


@_category("jack-o-lantern")
def _jack_o_lantern(rng: np.random.Generator) -> Geometry:
    ry, grin = _u(rng, 0.7, 0.82), _u(rng, 0.15, 0.3)
    body = _ellipse(0, 0, 1.0, ry, 96)
    stem = _pts((-0.08, -ry + 0.02), (-0.12, -ry - 0.22), (0.1, -ry - 0.25), (0.1, -ry + 0.02))
    eyes = [
        _one(_pts((s * 0.15, -0.05), (s * 0.5, -0.05), (s * 0.32, -0.38)), DETAIL)
        for s in (-1.0, 1.0)
    ]
    nose = _one(_pts((-0.08, 0.15), (0.08, 0.15), (0.0, 0.02)), DETAIL)
    xs = np.linspace(-0.5, 0.5, 13)
    upper = np.stack([xs, 0.25 + 0.08 * np.where(np.arange(13) % 4 == 2, 1.0, 0.0)], axis=1)
    lower = np.stack([xs[::-1], 0.25 + grin + 0.2 * (1 - (xs[::-1] / 0.5) ** 2)], axis=1)
    mouth = _one(np.concatenate([upper, lower[1:-1]]), DETAIL)
    lobes = tuple(
        _arc(0, 0, 0.72, ry * 0.97, -1.05, 1.05, 24) * np.array([s, 1.0]) for s in (-1, 1)
    )
    return _shape(_one(stem, SECOND), _one(body), *eyes, nose, mouth, strokes=lobes)


@_category("hot-air_balloon")
def _hot_air_balloon(rng: np.random.Generator) -> Geometry:
    r, neck, basket = _u(rng, 0.55, 0.65), _u(rng, 0.12, 0.2), _u(rng, 0.14, 0.2)
    cy = -1.0 + r
    spread = _u(rng, 0.2, 0.45)
    dome = _arc(0, cy, r, r, math.pi - spread, 2 * math.pi + spread, 64)
    envelope = np.concatenate([dome, _pts((neck, 0.45), (-neck, 0.45))])
    box = _rect(-basket, 0.7, basket, 1.0)
    ropes = (_pts((-neck, 0.45), (-basket, 0.7)), _pts((neck, 0.45), (basket, 0.7)))
    gores = tuple(
        _bezier((0.0, -1.0), (s * r * 0.75, cy), (s * neck * 0.5, 0.45), n=20) for s in (-1, 0, 1)
    )
    return _shape(_one(envelope), _one(box, SECOND), strokes=ropes + gores)


# ---------------------------------------------------------------------------------------------


def _normalised(geometry: Geometry) -> Geometry:
    """Centre the bounding box and scale its longer side to [-1, 1], whatever the proportions."""
    points = geometry.points()
    low, high = points.min(axis=0), points.max(axis=0)
    scale = 2.0 / float(max(high - low))
    centre = (low + high) / 2
    matrix = np.array([[scale, 0.0, -scale * centre[0]], [0.0, scale, -scale * centre[1]]])
    return geometry.transformed(matrix)


CATEGORY_NAMES: tuple[str, ...] = tuple(sorted(_REGISTRY))


def draw(name: str, rng: np.random.Generator) -> Geometry:
    """One instance of a category in normalised coordinates; ``rng`` sets its proportions."""
    if name not in _REGISTRY:
        raise UsageError(
            f"unknown shape category {name!r}: choose from {', '.join(CATEGORY_NAMES)}"
        )
    return _normalised(_REGISTRY[name](rng))
