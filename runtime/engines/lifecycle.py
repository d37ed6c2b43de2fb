"""The engine lifecycle every backend shares: ``with``, an idempotent ``close()``, no use after.

A backend subclasses ``EngineLifecycle``, frees what it holds in ``_release()``, calls
``_require_open()`` first thing in ``embed()``, and overrides ``synchronize()`` only when its
work can still be running when ``embed()`` returns, and ``warmup()`` only when one image is
not what its first real call looks like (TensorRT warms at its profile's batch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

import numpy as np

from sketchsearch.runtime.engines.protocol import EngineError
from sketchsearch.runtime.model_card import ModelCard


class EngineLifecycle:
    path: Path
    card: ModelCard
    _closed: bool = False

    def embed(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def warmup(self, iterations: int = 2) -> None:
        """A few calls on one blank image, so that the first real call is not the slow one."""
        blank = np.zeros((1, self.card.input_size, self.card.input_size, 3), np.uint8)
        for _ in range(iterations):
            self.embed(blank)

    def close(self) -> None:
        """Free the engine's sessions, buffers and streams; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        self._release()

    def _release(self) -> None:
        """What ``close()`` frees; backends that hold something override it."""

    def _require_open(self) -> None:
        if self._closed:
            raise EngineError(f"{self.path}: the engine is closed; open the model file again")

    def synchronize(self) -> None:
        """Wait for the device's queued work; a no-op where ``embed()`` returns when it is done."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
