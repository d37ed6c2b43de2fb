"""Engines: one module per backend, opened through the backend table.

``from sketchsearch.runtime.engines import open_engine`` works; the names below are imported
from their modules only when first used, so importing a backend module (or this package)
does not read the backend table.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sketchsearch.runtime.engines.protocol import (
        BackendUnavailableError as BackendUnavailableError,
    )
    from sketchsearch.runtime.engines.protocol import Engine as Engine
    from sketchsearch.runtime.engines.protocol import EngineError as EngineError
    from sketchsearch.runtime.engines.table import open_engine as open_engine

_EXPORTS = {
    "BackendUnavailableError": "sketchsearch.runtime.engines.protocol",
    "Engine": "sketchsearch.runtime.engines.protocol",
    "EngineError": "sketchsearch.runtime.engines.protocol",
    "open_engine": "sketchsearch.runtime.engines.table",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
