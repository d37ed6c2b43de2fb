"""Open the right engine for a model file, importing only that backend."""

from __future__ import annotations

import os
from pathlib import Path

from sketchsearch.data.errors import UsageError
from sketchsearch.runtime.engine import (
    ONNX_SUFFIXES,
    TENSORRT_SUFFIXES,
    TORCH_SUFFIXES,
    Engine,
)


def open_engine(
    path: str | os.PathLike[str],
    provider: str | None = None,
    threads: int | None = None,
    batch_pipeline: bool = False,
) -> Engine:
    """``.onnx`` → onnxruntime, ``.plan``/``.engine`` → TensorRT, ``.ckpt``/``.pt`` → torch.

    ``batch_pipeline``: the engine will run beside decoding threads (gallery building,
    evaluation), so onnxruntime's threads must not spin-wait between runs.
    """
    model = Path(path)
    suffix = model.suffix.lower()
    if not model.exists():
        raise UsageError(f"--engine {model}: model file not found")
    if suffix in ONNX_SUFFIXES:
        from sketchsearch.runtime.onnx_engine import OnnxEngine

        return OnnxEngine(model, provider=provider, threads=threads, spin=not batch_pipeline)
    if suffix in TENSORRT_SUFFIXES:
        from sketchsearch.runtime.tensorrt_engine import TensorRTEngine

        return TensorRTEngine(model)
    if suffix in TORCH_SUFFIXES:
        from sketchsearch.runtime.torch_engine import TorchEngine

        return TorchEngine(model, threads=threads)
    known = ", ".join(ONNX_SUFFIXES + TENSORRT_SUFFIXES + TORCH_SUFFIXES)
    raise UsageError(f"--engine {model}: unknown model type {suffix!r}; use one of {known}")
