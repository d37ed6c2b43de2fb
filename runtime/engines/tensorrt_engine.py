"""TensorRT engines (``.plan``/``.engine``) behind the Engine interface, with their sidecar card.

A serialized engine loads only on the TensorRT version and GPU it was built for, and TensorRT
reports a mismatch as a deserialization failure deep in its log. The sidecar records both, so
a mismatch is refused before deserializing, with the command that fixes it. TensorRT and
cuda-python (``cuda.bindings``) are imported only when an engine is opened or built: the
runtime installs and runs without them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sketchsearch.runtime.cuda_stack import diagnose_briefly, explain_import_failure
from sketchsearch.runtime.engines.backend import OpenOptions
from sketchsearch.runtime.engines.lifecycle import EngineLifecycle
from sketchsearch.runtime.engines.protocol import BackendUnavailableError, EngineError, check_batch
from sketchsearch.runtime.model_card import (
    ModelCard,
    ModelCardError,
    TensorRTInfo,
    read_sidecar,
    sidecar_path,
)

if TYPE_CHECKING:
    import tensorrt as trt

# TensorRT DataType names of the I/O tensors this runtime can feed or read.
NUMPY_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}
INSTALL_HINT = "pip install 'sketchsearch[tensorrt]' on a machine with an NVIDIA GPU"
EMBEDDING = "embedding"


@dataclass(frozen=True)
class TensorRTTarget:
    """The TensorRT version and GPU an engine is built for, or that a machine offers."""

    version: str
    gpu_name: str
    compute_capability: str  # "9.0"

    @classmethod
    def of(cls, info: TensorRTInfo) -> TensorRTTarget:
        return cls(info.version, info.gpu_name, info.compute_capability)

    def describe(self) -> str:
        return (
            f"TensorRT {self.version} on {self.gpu_name} "
            f"(compute capability {self.compute_capability})"
        )


def target_mismatches(built: TensorRTTarget, here: TensorRTTarget) -> list[str]:
    """What differs; TensorRT refuses (or silently mis-tunes) an engine on any of these."""
    checks = (
        ("TensorRT version", built.version, here.version),
        ("GPU", built.gpu_name, here.gpu_name),
        ("compute capability", built.compute_capability, here.compute_capability),
    )
    return [name for name, a, b in checks if a != b]


def check_engine_target(engine: Path, built: TensorRTTarget, here: TensorRTTarget) -> None:
    differs = target_mismatches(built, here)
    if differs:
        raise EngineError(
            f"{engine}: built for {built.describe()}, but this machine has {here.describe()} "
            f"({', '.join(differs)} differ): rebuild the engine here with "
            f"`sketchsearch export tensorrt --onnx MODEL.onnx --output {engine}`"
        )


@dataclass(frozen=True)
class Chunk:
    """Rows ``start:stop`` of a call, run as one engine batch of ``size`` (padded up to min)."""

    start: int
    stop: int
    size: int


def plan_chunks(count: int, min_batch: int, max_batch: int) -> list[Chunk]:
    """Split a call into batches the optimization profile accepts."""
    if not 1 <= min_batch <= max_batch:
        raise ValueError(f"need 1 <= min_batch <= max_batch, got {min_batch}, {max_batch}")
    chunks = []
    for start in range(0, count, max_batch):
        stop = min(start + max_batch, count)
        chunks.append(Chunk(start, stop, max(stop - start, min_batch)))
    return chunks


@dataclass(frozen=True)
class TensorSpec:
    """One I/O tensor of an engine; -1 marks the dynamic batch axis."""

    name: str
    is_input: bool
    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.shape[1:]


def check_io(tensors: Sequence[TensorSpec], card: ModelCard, source: Path) -> None:
    """The engine must take the card's input and give its embedding, or nothing else holds."""
    inputs = [t for t in tensors if t.is_input]
    outputs = {t.name: t for t in tensors if not t.is_input}
    size = card.input_size
    problems = []
    if [t.name for t in inputs] != [card.input_name]:
        problems.append(f"inputs {[t.name for t in inputs]}, the card says [{card.input_name!r}]")
    elif inputs[0].dtype != np.dtype(card.input_dtype):
        problems.append(f"input dtype {inputs[0].dtype}, the card says {card.input_dtype}")
    elif inputs[0].sample_shape != (size, size, 3):
        problems.append(
            f"input shape {list(inputs[0].shape)}, the card says [N, {size}, {size}, 3]"
        )
    if EMBEDDING not in outputs:
        problems.append(f"outputs {sorted(outputs)} lack {EMBEDDING!r}")
    elif outputs[EMBEDDING].sample_shape != (card.embed_dim,):
        problems.append(
            f"embedding shape {list(outputs[EMBEDDING].shape)}, the card says [N, {card.embed_dim}]"
        )
    for tensor in tensors:
        if -1 in tensor.sample_shape:
            problems.append(f"{tensor.name!r} has a dynamic axis besides the batch")
    if problems:
        # the same refusal, and exit code (3), as an ONNX file whose card disagrees with it
        raise ModelCardError(f"{source}: the engine does not match its card: {'; '.join(problems)}")


def require_tensorrt() -> None:
    """Import TensorRT once, or stop with what is wrong and the fix (exit code 2).

    A TensorRT that is installed but cannot be loaded is most often one built for another
    CUDA major than the driver or cuda-python: ``cuda_stack`` names the versions it finds.
    """
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError) as err:  # OSError: the wheel is there, its libraries are not
        reason = explain_import_failure("tensorrt", err)
        raise BackendUnavailableError(
            reason or f"TensorRT is not installed: {INSTALL_HINT}"
        ) from None


def cuda_runtime() -> Any:
    """cuda-python's runtime API (untyped), or stop with what is wrong and the fix."""
    try:  # by module name: an imported cuda.bindings package's attribute would bypass a failure
        runtime = importlib.import_module("cuda.bindings.runtime")
    except (ImportError, OSError) as err:
        reason = explain_import_failure("cuda.bindings", err)
        raise BackendUnavailableError(
            reason or f"cuda-python >= 12.6.1 (cuda.bindings) is not installed: {INSTALL_HINT}"
        ) from None
    return runtime


def cuda_call(result: tuple[Any, ...], what: str) -> Any:
    """Unwrap cuda-python's ``(error, value...)`` tuples; the value, or None when there is none."""
    cudart = cuda_runtime()
    error, *values = result
    if error != cudart.cudaError_t.cudaSuccess:
        raise EngineError(f"CUDA {what} failed: {getattr(error, 'name', error)}")
    return values[0] if len(values) == 1 else None


def current_target() -> TensorRTTarget:
    """This machine's TensorRT and current GPU; BackendUnavailableError when either is missing."""
    require_tensorrt()
    import tensorrt as trt

    cudart = cuda_runtime()
    error, count = cudart.cudaGetDeviceCount()
    if error != cudart.cudaError_t.cudaSuccess or count == 0:
        reason = "no device" if error == cudart.cudaError_t.cudaSuccess else error
        raise BackendUnavailableError(
            f"no usable NVIDIA GPU ({getattr(reason, 'name', reason)}): "
            f"{diagnose_briefly() or INSTALL_HINT}"
        )
    device = cuda_call(cudart.cudaGetDevice(), "cudaGetDevice")
    props = cuda_call(cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = bytes(props.name).split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    return TensorRTTarget(str(trt.__version__), name, f"{int(props.major)}.{int(props.minor)}")


def stream_handle(stream: Any) -> int:
    """The raw handle TensorRT wants; ``int(stream)`` is deprecated from cuda-bindings 12.9.1."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(stream)
    return int(get_cuda_native_handle(stream))


def check_tensorrt(device: str | None = None) -> None:
    """The backend table's probe: TensorRT and a GPU, or BackendUnavailableError saying why."""
    current_target()


def open_tensorrt(path: Path, options: OpenOptions) -> TensorRTEngine:
    """The backend table's opener for ``.plan``/``.engine`` files: the GPU is the engine's."""
    return TensorRTEngine(path)


class TensorRTEngine(EngineLifecycle):
    """A deserialized engine with its device buffers, for the profile's largest batch."""

    backend = "tensorrt"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelCardError(f"{self.path}: engine file not found")
        self.card = read_sidecar(self.path)
        if self.card.tensorrt is None:
            raise ModelCardError(
                f"{sidecar_path(self.path)}: a card without a 'tensorrt' section is not an "
                "engine's sidecar: build the engine with `sketchsearch export tensorrt`"
            )
        self._target = current_target()
        check_engine_target(self.path, TensorRTTarget.of(self.card.tensorrt), self._target)
        self._buffers: dict[str, int] = {}
        self._stream: Any = None
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        import tensorrt as trt

        cudart = cuda_runtime()
        # TensorRT needs the logger and the runtime to outlive the engine: they stay referenced.
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise EngineError(f"{self.path}: TensorRT could not deserialize the engine (see above)")
        self._engine: trt.ICudaEngine = engine
        self._tensors = [
            _spec(engine, engine.get_tensor_name(i), self.path)
            for i in range(engine.num_io_tensors)
        ]
        check_io(self._tensors, self.card, self.path)
        low, opt, high = engine.get_tensor_profile_shape(self.card.input_name, 0)
        self._batches = (int(low[0]), int(opt[0]), int(high[0]))  # the profile's min, opt, max
        self._context: trt.IExecutionContext = engine.create_execution_context()
        self._stream = cuda_call(cudart.cudaStreamCreate(), "cudaStreamCreate")
        for tensor in self._tensors:
            nbytes = self._batches[2] * int(np.prod(tensor.sample_shape)) * tensor.dtype.itemsize
            self._buffers[tensor.name] = int(cuda_call(cudart.cudaMalloc(nbytes), "cudaMalloc"))
            if not self._context.set_tensor_address(tensor.name, self._buffers[tensor.name]):
                raise EngineError(f"{self.path}: TensorRT refused the buffer of {tensor.name!r}")

    @property
    def device(self) -> str:
        return self._target.gpu_name

    def embed(self, images: np.ndarray) -> np.ndarray:
        self._require_open()
        check_batch(images, self.card, self.path)
        result = np.empty((len(images), self.card.embed_dim), dtype=np.float32)
        for chunk in plan_chunks(len(images), self._batches[0], self._batches[2]):
            result[chunk.start : chunk.stop] = self._run(
                images[chunk.start : chunk.stop], chunk.size
            )
        return result

    def _run(self, images: np.ndarray, size: int) -> np.ndarray:
        cudart = cuda_runtime()
        spec = next(t for t in self._tensors if t.is_input)
        host = np.zeros((size, *spec.sample_shape), dtype=spec.dtype)
        host[: len(images)] = images  # the card's input dtype: uint8, or float32 0..255
        if not self._context.set_input_shape(spec.name, host.shape):
            raise EngineError(f"{self.path}: batch {size} is outside the engine's profile")
        kind = cudart.cudaMemcpyKind
        handle = stream_handle(self._stream)
        copy = cudart.cudaMemcpyAsync(
            self._buffers[spec.name],
            host.ctypes.data,
            host.nbytes,
            kind.cudaMemcpyHostToDevice,
            self._stream,
        )
        cuda_call(copy, "copy to the GPU")
        if not self._context.execute_async_v3(handle):
            raise EngineError(f"{self.path}: TensorRT failed to run the engine (see above)")
        out_spec = next(t for t in self._tensors if t.name == EMBEDDING)
        out = np.empty((size, *out_spec.sample_shape), dtype=out_spec.dtype)
        copy = cudart.cudaMemcpyAsync(
            out.ctypes.data,
            self._buffers[EMBEDDING],
            out.nbytes,
            kind.cudaMemcpyDeviceToHost,
            self._stream,
        )
        cuda_call(copy, "copy from the GPU")
        # embed() returns when the stream is done, so synchronize() is the lifecycle's no-op.
        cuda_call(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return out[: len(images)].astype(np.float32)

    def warmup(self, iterations: int = 2) -> None:
        size = self.card.input_size
        batch = np.zeros((self._batches[1], size, size, 3), dtype=np.uint8)
        for _ in range(iterations):
            self.embed(batch)

    def _release(self) -> None:
        """Free the device buffers and the stream; TensorRT objects go with their references."""
        if not self._buffers and self._stream is None:
            return
        cudart = cuda_runtime()
        for pointer in self._buffers.values():
            cuda_call(cudart.cudaFree(pointer), "cudaFree")
        self._buffers.clear()
        if self._stream is not None:
            cuda_call(cudart.cudaStreamDestroy(self._stream), "cudaStreamDestroy")
            self._stream = None


def _spec(engine: trt.ICudaEngine, name: str, source: Path) -> TensorSpec:
    import tensorrt as trt

    dims = engine.get_tensor_shape(name)
    dtype = engine.get_tensor_dtype(name).name
    if dtype not in NUMPY_DTYPES:
        raise EngineError(f"{source}: tensor {name!r} has the TensorRT type {dtype}, not supported")
    return TensorSpec(
        name=name,
        is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
        dtype=np.dtype(NUMPY_DTYPES[dtype]),
        shape=tuple(int(dims[i]) for i in range(len(dims))),
    )
