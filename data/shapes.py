"""The drawable object categories of the synthetic demo data set.

Every category is a function of a per-instance random generator that returns geometry in
normalised coordinates (y points down, the object fits in [-1, 1]²). Geometry, not pixels,
is the shared currency so that one instance can be rendered both as a filled "photo" and as
a line "sketch" and the two stay paired at instance level. Proportions vary per instance so
that a category is learnable but not a single template.

The geometry types and helpers live in ``_geometry``, the category functions in
``shapes_simple`` (plain shapes, nature) and ``shapes_objects`` (things). This module imports
both catalogs and builds the registry from them, so ``CATEGORY_NAMES`` is always complete.
"""

from __future__ import annotations

import numpy as np

from sketchsearch.data import shapes_objects, shapes_simple
from sketchsearch.data._geometry import BODY, DETAIL, SECOND, Geometry, Part, Points, ShapeFn
from sketchsearch.data.errors import UsageError

__all__ = [
    "BODY",
    "CATEGORY_NAMES",
    "DETAIL",
    "SECOND",
    "Geometry",
    "Part",
    "Points",
    "ShapeFn",
    "draw",
]

_REGISTRY: dict[str, ShapeFn] = {**shapes_simple.SHAPES, **shapes_objects.SHAPES}


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
