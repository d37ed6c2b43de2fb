"""The facts about this machine's CUDA stack, read without importing TensorRT.

The driver comes from ``libcuda.so.1`` through ctypes (``cuDriverGetVersion``: the newest
CUDA it runs) and from nvidia-smi (its version string); the installed TensorRT and
cuda-python from their distributions' metadata, and TensorRT's CUDA major from the
distribution's name (``tensorrt-cu13``). Importing TensorRT is what fails on a mismatched
stack, so nothing here does. Only ``create_context`` imports cuda-python
(``cuda.bindings``), because creating a context is the one check that proves the stack works.
``cuda_stack`` decides from these facts.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from sketchsearch.runtime.engines.protocol import BackendUnavailableError

LIBCUDA = "libcuda.so.1"
PROC_VERSION = Path("/proc/driver/nvidia/version")
_TENSORRT_NAME = re.compile(r"^tensorrt(?:-cu(\d+))?(?:-(libs|bindings))?$")
_CUDA_PYTHON_NAMES = ("cuda-python", "cuda-bindings")


@dataclass(frozen=True)
class DriverFacts:
    """The NVIDIA driver, or why there is none."""

    version: str | None  # "535.104.05"; None when neither nvidia-smi nor /proc tells
    cuda: tuple[int, int] | None  # the newest CUDA it runs, (12, 2); None: no usable driver
    problem: str | None = None  # why ``cuda`` is None


@dataclass(frozen=True)
class ContextFacts:
    """The outcome of creating a CUDA context: the device, or the error."""

    device: str | None  # "NVIDIA H200 (compute capability 9.0)"
    error: str | None = None


def normalize(name: str) -> str:
    """A distribution name as pip compares them: "tensorrt_cu13_libs" → "tensorrt-cu13-libs"."""
    return re.sub(r"[-_.]+", "-", name).lower()


def tensorrt_cuda_major(name: str) -> int | None:
    """The CUDA major a TensorRT distribution is built for, from its name; None: it names none."""
    match = _TENSORRT_NAME.match(normalize(name))
    return int(match[1]) if match and match[1] else None


def is_stack_distribution(name: str) -> bool:
    """TensorRT's distributions (any CUDA major, libs, bindings) and cuda-python's."""
    return bool(_TENSORRT_NAME.match(name)) or name in _CUDA_PYTHON_NAMES


def probe_distributions() -> dict[str, str]:
    """Installed TensorRT and cuda-python distributions → version, read from their metadata."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():  # in sys.path order: the first is the one imported
        name = normalize(dist.metadata["Name"] or "")
        if is_stack_distribution(name):
            found.setdefault(name, dist.version)
    return dict(sorted(found.items()))


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version: "10.13.3.9.post1" → (10, 13, 3, 9)."""
    numbers = []
    for part in version.split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


@dataclass(frozen=True)
class TensorRTInstall:
    """The installed TensorRT; its CUDA major comes from the distribution's name."""

    distribution: str  # "tensorrt-cu13"; "tensorrt" when no per-CUDA distribution is there
    version: str
    cuda_major: int | None  # None: a bare `tensorrt` distribution names no CUDA major
    missing_parts: tuple[str, ...] = ()  # of "tensorrt-cu13-libs", "tensorrt-cu13-bindings"
    cuda_majors: tuple[int, ...] = ()  # every CUDA major some TensorRT distribution is for

    def describe(self) -> str:
        return f"{self.distribution} {self.version}"


@dataclass(frozen=True)
class CudaPythonInstall:
    distribution: str  # "cuda-python", or "cuda-bindings" alone (torch pulls it in)
    version: str

    @property
    def cuda_major(self) -> int | None:
        return (release(self.version) or (None,))[0]

    def describe(self) -> str:
        return f"{self.distribution} {self.version}"


def tensorrt_install(distributions: Mapping[str, str]) -> TensorRTInstall | None:
    """Which TensorRT is installed, and for which CUDA major (the newest, if several)."""
    distributions = {normalize(name): version for name, version in distributions.items()}
    names = [n for n in distributions if n == "tensorrt" or n.startswith("tensorrt-cu")]
    majors = sorted({m for n in names if (m := tensorrt_cuda_major(n)) is not None})
    if not majors:
        return TensorRTInstall("tensorrt", distributions["tensorrt"], None) if names else None
    base = f"tensorrt-cu{majors[-1]}"
    parts = (f"{base}-libs", f"{base}-bindings")
    name = next(n for n in (base, *reversed(parts)) if n in distributions)
    missing = tuple(part for part in parts if part not in distributions)
    return TensorRTInstall(name, distributions[name], majors[-1], missing, tuple(majors))


def cuda_python_install(distributions: Mapping[str, str]) -> CudaPythonInstall | None:
    distributions = {normalize(name): version for name, version in distributions.items()}
    name = next((n for n in ("cuda-python", "cuda-bindings") if n in distributions), None)
    return CudaPythonInstall(name, distributions[name]) if name else None


def driver_version() -> str | None:
    """The driver's version string: nvidia-smi's driver_version, else the kernel module's."""
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        try:
            done = subprocess.run(query, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0 and done.stdout.strip():
            return done.stdout.split()[0]
    try:
        text = PROC_VERSION.read_text()
    except OSError:
        return None
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(?:\.\d+)?)", text)
    return match[1] if match else None


def probe_driver() -> DriverFacts:
    """Load libcuda and ask which CUDA it runs; no driver is a fact, not an exception."""
    try:
        libcuda = ctypes.CDLL(LIBCUDA)
    except OSError as err:
        return DriverFacts(driver_version(), None, str(err))  # names the library
    number = ctypes.c_int(0)
    result = libcuda.cuDriverGetVersion(ctypes.byref(number))
    if result != 0:
        problem = f"cuDriverGetVersion failed with CUresult {result}"
        return DriverFacts(driver_version(), None, problem)
    return DriverFacts(driver_version(), (number.value // 1000, number.value % 1000 // 10))


def _check(driver: Any, result: tuple[Any, ...], what: str) -> Any:
    """Unwrap cuda.bindings' ``(CUresult, values...)``: the value(s), or an error naming it."""
    error, *values = result
    if error != driver.CUresult.CUDA_SUCCESS:
        raise BackendUnavailableError(f"{what} failed: {getattr(error, 'name', error)}")
    return values[0] if len(values) == 1 else tuple(values)


def create_context(ordinal: int = 0) -> str:
    """Create the device's primary CUDA context through cuda.bindings, use it, release it.

    cuInit, cuDeviceGet, cuDevicePrimaryCtxRetain, then cuMemGetInfo inside the context (a
    context that exists but cannot be used is no proof), then release. The primary context
    is the one the CUDA runtime, and so TensorRT, works in; its API is the same in
    cuda-python 12 and 13. Returns "NAME (compute capability X.Y)"; BackendUnavailableError
    with the CUDA error otherwise.
    """
    try:
        from cuda.bindings import driver
    except (ImportError, OSError) as err:
        raise BackendUnavailableError(f"cuda.bindings cannot be imported: {err}") from None
    try:
        return _use_context(driver, ordinal)
    except (OSError, RuntimeError) as err:  # cuda.bindings found no driver library to load
        raise BackendUnavailableError(f"cuda.bindings cannot reach the driver: {err}") from None


def _use_context(driver: Any, ordinal: int) -> str:
    _check(driver, driver.cuInit(0), "cuInit")
    count = _check(driver, driver.cuDeviceGetCount(), "cuDeviceGetCount")
    if count <= ordinal:
        raise BackendUnavailableError(f"no CUDA device {ordinal}: the driver sees {count}")
    device = _check(driver, driver.cuDeviceGet(ordinal), "cuDeviceGet")
    raw = _check(driver, driver.cuDeviceGetName(256, device), "cuDeviceGetName")
    name = bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    attribute = driver.CUdevice_attribute
    major, minor = (
        _check(driver, driver.cuDeviceGetAttribute(getattr(attribute, a), device), a)
        for a in (
            "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR",
            "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR",
        )
    )
    context = _check(driver, driver.cuDevicePrimaryCtxRetain(device), "cuDevicePrimaryCtxRetain")
    try:
        _check(driver, driver.cuCtxPushCurrent(context), "cuCtxPushCurrent")
        try:
            _check(driver, driver.cuMemGetInfo(), "cuMemGetInfo")
        finally:
            _check(driver, driver.cuCtxPopCurrent(), "cuCtxPopCurrent")
    finally:
        _check(driver, driver.cuDevicePrimaryCtxRelease(device), "cuDevicePrimaryCtxRelease")
    return f"{name} (compute capability {major}.{minor})"


def try_context() -> ContextFacts:
    try:
        return ContextFacts(create_context())
    except BackendUnavailableError as err:
        return ContextFacts(None, str(err))
