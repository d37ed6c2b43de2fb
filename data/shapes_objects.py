"""Things: the everyday-object half of the synthetic categories.

Each function draws one instance from its generator, in normalised coordinates; ``shapes``
gathers ``SHAPES`` from here and from ``shapes_simple`` into the one category registry.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from sketchsearch.data._geometry import (
    DETAIL,
    SECOND,
    Geometry,
    Part,
    ShapeFn,
    _annulus_arc,
    _arc,
    _bezier,
    _ellipse,
    _mirror,
    _one,
    _pts,
    _rect,
    _registrar,
    _shape,
    _u,
)

SHAPES: dict[str, ShapeFn] = {}
_category = _registrar(SHAPES)


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
