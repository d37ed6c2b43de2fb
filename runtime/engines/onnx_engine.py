"""The onnxruntime engine: the default backend, on the CPU or on a GPU through its providers.

Providers default to the best available: TensorRT's execution provider, then CUDA, then the
CPU. The TensorRT provider gets an engine cache beside the model, so its slow first build
happens once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.runtime.engines.backend import OpenOptions
from sketchsearch.runtime.engines.lifecycle import EngineLifecycle
from sketchsearch.runtime.engines.protocol import BackendUnavailableError, check_batch
from sketchsearch.runtime.model_card import ModelCardError, card_from_metadata, check_onnx_io

PROVIDER_ORDER = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def choose_providers(requested: str | None, available: Sequence[str]) -> list[str]:
    """The providers to ask for, best first; the CPU is always the last resort.

    A requested provider that is not available is an error, not a silent fall back: someone
    who asks for CUDA and gets the CPU would benchmark the wrong thing.
    """
    if requested is None or requested == "auto":
        chosen = [name for name in PROVIDER_ORDER if name in available]
        return chosen or ["CPUExecutionProvider"]
    name = PROVIDER_ALIASES.get(requested.lower(), requested)
    if name not in available:
        raise BackendUnavailableError(
            f"--provider {requested}: not available in this onnxruntime (available: "
            f"{', '.join(available)}); for CUDA/TensorRT install onnxruntime-gpu "
            "(`make venv-gpu`)"
        )
    return [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]


def open_onnx(path: Path, options: OpenOptions) -> OnnxEngine:
    """The backend table's opener for ``.onnx`` files.

    A command's ``--provider`` is onnxruntime's own choice, which it may fall back from when
    the provider fails to start; a benchmark row (``strict_device``) refuses that fall back.
    """
    engine = OnnxEngine(
        path, provider=options.device, threads=options.threads, spin=not options.batch_pipeline
    )
    if options.strict_device:
        try:
            check_started(options.device, engine.providers)
        except BaseException:
            engine.close()
            raise
    return engine


class OnnxEngine(EngineLifecycle):
    backend = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        provider: str | None = None,
        threads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        spin: bool = True,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelCardError(f"{self.path}: model file not found")
        providers = choose_providers(provider, ort.get_available_providers())
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initializers etc. are noise
        if not spin:
            # Idle inference threads spin for a while after each run: that cuts single-query
            # latency (efficientnet_b0 at batch 1: 6.5 ms with, 8.4 ms without) but takes the
            # CPU that decoding threads need while a gallery is built, so batch pipelines
            # turn it off (benchmarks/gallery_throughput.py).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        cache = Path(cache_dir) if cache_dir else self.path.parent / ".trt-cache"
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                options,
                providers=providers,
                provider_options=[_provider_options(name, cache) for name in providers],
            )
        except Exception as err:  # onnxruntime's own exception types: a bad or foreign file
            text = str(err).strip().splitlines()
            raise ModelCardError(
                f"{self.path}: onnxruntime cannot load it ({text[0] if text else err!r})"
            ) from None
        source = str(self.path)
        self.card = card_from_metadata(self.session.get_modelmeta().custom_metadata_map, source)
        # Checked here, at open: a card that disagrees with the graph (an edited card, one copied
        # onto another export) would otherwise fail at the first query inside onnxruntime.
        check_onnx_io(self.card, self.session.get_inputs(), self.session.get_outputs(), source)
        self.providers = self.session.get_providers()
        self._dtype = np.dtype(self.card.input_dtype)

    @property
    def device(self) -> str:
        return str(self.providers[0])

    def embed(self, images: np.ndarray) -> np.ndarray:
        self._require_open()
        check_batch(images, self.card, self.path)
        if len(images) == 0:
            return np.empty((0, self.card.embed_dim), np.float32)
        feed = {self.card.input_name: images.astype(self._dtype, copy=False)}
        (embedding,) = self.session.run(["embedding"], feed)
        return np.asarray(embedding, dtype=np.float32)

    def _release(self) -> None:
        """onnxruntime frees the session's memory when the last reference goes."""
        del self.session


def check_started(requested: str | None, started: Sequence[str]) -> None:
    """onnxruntime falls back silently when a provider fails to start: refuse that."""
    if requested is None or requested == "auto":
        return
    name = PROVIDER_ALIASES.get(requested.lower(), requested)
    if started[0] != name:
        raise BackendUnavailableError(
            f"onnxruntime could not start {name} here (it fell back to {started[0]}); "
            "check the GPU, CUDA and cuDNN libraries"
        )


def _provider_options(name: str, cache: Path) -> dict[str, Any]:
    if name != "TensorrtExecutionProvider":
        return {}
    return {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache),
    }
