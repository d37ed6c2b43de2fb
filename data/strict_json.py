"""JSON that every reader accepts: ``NaN`` and ``Infinity`` are refused instead of written.

Python's ``json`` writes non-finite floats as ``NaN``/``Infinity`` by default, which is not
JSON (RFC 8259): ``jq``, browsers and most other languages refuse the whole document. A writer
whose output other tools read calls ``dumps`` here; a non-finite number is a bug upstream,
reported with the place it was found.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sketchsearch.data.errors import SketchsearchError


class NonFiniteJSONError(SketchsearchError):
    """A NaN or infinity on its way into a JSON document (a bug: exit code 1)."""


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps(obj, allow_nan=False, **kwargs)``; NonFiniteJSONError names the value."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError as err:
        if "Out of range float" not in str(err):  # a circular reference: not ours to explain
            raise
        where = non_finite_path(obj)
        if where is None:
            raise
        raise NonFiniteJSONError(
            f"refusing to write {where[1]} at {where[0]} as JSON: only finite numbers are JSON"
        ) from None


def non_finite_path(obj: Any, path: str = "$") -> tuple[str, float] | None:
    """The first non-finite float in ``obj`` as (its path, like ``$.results[0].score``, value)."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (path, obj)
    if isinstance(obj, dict):
        items: Any = ((f"{path}.{key}", value) for key, value in obj.items())
    elif isinstance(obj, list | tuple):
        items = ((f"{path}[{n}]", value) for n, value in enumerate(obj))
    else:
        return None
    for where, value in items:
        found = non_finite_path(value, where)
        if found is not None:
            return found
    return None


def undefined_as_null(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by None, which JSON writes as ``null``.

    For measurements where a non-finite value means "undefined" rather than a bug: mAP when no
    query has a relevant item, the cosine of an exported model that outputs NaN. A report of
    such a run must still be written (and its command exit with its own code), so its writer
    opts in here; every other writer keeps the refusal of :func:`dumps`.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: undefined_as_null(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [undefined_as_null(value) for value in obj]
    return obj
