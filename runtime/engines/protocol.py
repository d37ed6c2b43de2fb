"""The engine interface: uint8 NHWC images in, float32 embeddings out, whatever the backend.

Backends are chosen from the model file's suffix through the backend table
(``engines/table.py``) and imported only when chosen. An engine is a context manager:
``with open_engine(path) as engine:`` closes it, and ``embed()`` after ``close()`` is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Self

import numpy as np

from sketchsearch.data.errors import ExitCode, SketchsearchError
from sketchsearch.runtime.model_card import ModelCard


class BackendUnavailableError(SketchsearchError):
    """The backend a model file needs is not installed, or has no device to run on."""

    exit_code = ExitCode.USAGE


class EngineError(SketchsearchError):
    """A model file that cannot run: wrong inputs, or built for another TensorRT or GPU."""

    exit_code = ExitCode.USAGE


class Engine(Protocol):
    """What the retriever, gallery building, evaluation and benchmarks use."""

    path: Path
    card: ModelCard
    backend: str  # the name of its entry in the backend table: "onnxruntime", "tensorrt", ...

    @property
    def device(self) -> str:
        """Where it runs, e.g. "CPUExecutionProvider" or "NVIDIA H200"."""
        ...

    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] RGB images → float32 [N, D] embeddings (unit length)."""
        ...

    def warmup(self, iterations: int = 2) -> None:
        """Run a few batches so that the first real call is not the slow one."""
        ...

    def synchronize(self) -> None:
        """Wait for work still queued on the device (a no-op on the CPU); for timing."""
        ...

    def close(self) -> None:
        """Free sessions, device buffers and streams; idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


def check_batch(images: np.ndarray, card: ModelCard, source: Path) -> None:
    size = card.input_size
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise EngineError(
            f"{source}: expects uint8 images of shape [N, {size}, {size}, 3], got "
            f"{images.dtype} {list(images.shape)}"
        )
