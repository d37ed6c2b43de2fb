"""The OpenVINO engine: our ``.onnx`` files (read directly) or OpenVINO's own IR, on the CPU.

Same uint8 NHWC images in, same float32 embeddings out as onnxruntime. It is chosen by name
(``--backend openvino``, or a recommendation measured by ``sketchsearch bench``): on 2 cores it
was faster than onnxruntime for batches (0.69-0.88x the latency) and slower at batch 1
(1.13-1.17x), so neither backend is the default for every workload.

The card is read from OpenVINO's own view of the file: the ONNX metadata, or the IR's
``rt_info`` where ``sketchsearch export openvino`` writes it, under the same key, so both
file kinds are read by one function; it is checked against the graph at open, like onnxruntime.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.runtime.engines.backend import OpenOptions
from sketchsearch.runtime.engines.lifecycle import EngineLifecycle
from sketchsearch.runtime.engines.protocol import BackendUnavailableError, check_batch
from sketchsearch.runtime.model_card import (
    CARD_KEY,
    ModelCard,
    ModelCardError,
    check_onnx_io,
)

# Where the card sits in a model's rt_info: OpenVINO files an ONNX file's metadata under
# "framework", and the IR writer keeps it there.
CARD_RT_PATH = ["framework", CARD_KEY]
# OpenVINO element type → the ONNX type string that check_onnx_io compares with the card.
_TYPES = {"u8": "tensor(uint8)", "f32": "tensor(float)", "f16": "tensor(float16)"}


def check_openvino(device: str | None = None) -> None:
    """The backend table's probe: openvino imports and offers its CPU plugin."""
    core = openvino_core()
    if "CPU" not in core.available_devices:
        raise BackendUnavailableError(
            f"OpenVINO has no CPU device here (it has {core.available_devices})"
        )
    if device not in (None, "cpu"):
        raise BackendUnavailableError(f"the OpenVINO backend runs on the CPU only, not {device}")


def open_openvino(path: Path, options: OpenOptions) -> OpenVinoEngine:
    """The backend table's opener for ``.xml`` (IR) and, chosen by name, ``.onnx`` files."""
    if options.strict_device:
        check_openvino(options.device)
    return OpenVinoEngine(path, threads=options.threads)


def read_openvino_card(path: str | Path) -> ModelCard:
    """The card of an ONNX or IR file as OpenVINO reads it, checked against the graph."""
    path = Path(path)
    return card_of(_read(openvino_core(), path), str(path))


@dataclass(frozen=True)
class _Tensor:
    """One named graph input or output in check_onnx_io's terms (its ``GraphTensor``)."""

    name: str
    shape: list[int | None]
    type: str


def card_of(model: Any, source: str) -> ModelCard:
    """The card in ``model``'s rt_info, refused when it disagrees with the graph."""
    if not model.has_rt_info(CARD_RT_PATH):
        raise ModelCardError(
            f"{source}: this model has no sketchsearch model card; export it with "
            "`sketchsearch export onnx` (and `sketchsearch export openvino` for an IR)"
        )
    card = ModelCard.from_json(str(model.get_rt_info(CARD_RT_PATH).value), source)
    check_onnx_io(card, _tensors(model.inputs), _tensors(model.outputs), source)
    return card


def _tensors(ports: Any) -> list[_Tensor]:
    """Every name of every port: an OpenVINO port may carry several tensor names."""
    found = []
    for port in ports:
        shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        kind = port.get_element_type().get_type_name()
        found += [_Tensor(name, shape, _TYPES.get(kind, kind)) for name in port.get_names()]
    return found


class OpenVinoEngine(EngineLifecycle):
    """One compiled model and one synchronous ``InferRequest``. A request runs one inference at
    a time and reuses its buffers, so ``embed`` holds a lock: calls from several threads (the
    service's) run one after another, each with its own result, never mixing inputs."""

    backend = "openvino"

    def __init__(
        self,
        path: str | os.PathLike[str],
        threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        core = openvino_core()  # first: it says which extra installs openvino
        import openvino.properties as props
        import openvino.properties.hint as hints

        model = _read(core, self.path)
        self.card = card_of(model, str(self.path))
        config: dict[Any, Any] = {
            # LATENCY for batch pipelines too. THROUGHPUT splits the cores into streams (2
            # streams of one thread on 2 cores), and the one synchronous request that gallery
            # building runs at a time then uses one core: measured on 2 shared cores, resnet10t
            # 48 px at batch 32, best of two runs, 1.6-2.2x slower than LATENCY (64-70 ms vs
            # 32-41 ms), and slower at batch 1 too (4.6-5.3 ms vs 3.3-4.2 ms).
            hints.performance_mode: hints.PerformanceMode.LATENCY,
            # fp32 arithmetic whatever the CPU offers: on CPUs with bf16/AMX OpenVINO would
            # otherwise compute in bf16, and embeddings must match onnxruntime's (cosine 0.9999).
            hints.inference_precision: "f32",
        }
        if threads:
            config[props.inference_num_threads] = threads
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as err:
            raise ModelCardError(
                f"{self.path}: OpenVINO cannot compile it ({_first_line(err)})"
            ) from None
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # guards self.request: see the class docstring
        self._output = self.compiled.output("embedding")
        self._dtype = np.dtype(self.card.input_dtype)

    @property
    def device(self) -> str:
        return "OpenVINO CPU"

    def embed(self, images: np.ndarray) -> np.ndarray:
        self._require_open()
        check_batch(images, self.card, self.path)
        if len(images) == 0:
            return np.empty((0, self.card.embed_dim), np.float32)
        feed = {self.card.input_name: images.astype(self._dtype, copy=False)}
        with self._lock:
            self._require_open()  # again: another thread may have closed it meanwhile
            result = self.request.infer(feed)
            # The request reuses its output buffer on the next call: hand out a copy.
            return np.array(result[self._output], dtype=np.float32, copy=True)

    def _release(self) -> None:
        """OpenVINO frees the compiled model when the last reference goes; not mid-call."""
        with self._lock:
            del self.request
            del self.compiled


@functools.cache
def openvino_core() -> Any:
    """One OpenVINO ``Core`` per process (the probe and every engine share it)."""
    try:
        import openvino as ov
    except ImportError:
        raise BackendUnavailableError(
            "the OpenVINO backend cannot be imported (openvino is not installed): "
            "pip install 'sketchsearch[openvino]'"
        ) from None
    return ov.Core()


def _read(core: Any, path: Path) -> Any:
    if not path.is_file():
        raise ModelCardError(f"{path}: model file not found")
    try:
        return core.read_model(str(path))
    except RuntimeError as err:  # OpenVINO raises RuntimeError for a bad or foreign file
        raise ModelCardError(f"{path}: OpenVINO cannot read it ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
