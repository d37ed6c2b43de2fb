"""What a benchmark row measures: one model file on one backend, opened or said unavailable.

Shared by ``latency.py`` and ``accuracy.py``, so that both tables have the same rows and the
same reasons for the rows that cannot run here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sketchsearch.benchmarks.machine_info import machine_facts
from sketchsearch.data.errors import SketchsearchError, UsageError
from sketchsearch.runtime.cuda_probe import probe_distributions, tensorrt_install
from sketchsearch.runtime.engine import (
    ONNX_SUFFIXES,
    TENSORRT_SUFFIXES,
    TORCH_SUFFIXES,
    BackendUnavailableError,
    Engine,
)

PROVIDERS = ("cpu", "cuda", "tensorrt")
BACKEND_LABELS = {
    "torch-cpu": "torch eager (CPU)",
    "torch-cuda": "torch eager (CUDA)",
    "torch-cuda-fp16": "torch eager, fp16 autocast (CUDA)",
    "ort-cpu": "onnxruntime CPU",
    "ort-cuda": "onnxruntime CUDA",
    "ort-tensorrt": "onnxruntime TensorRT EP",
    "tensorrt": "TensorRT",
}


@dataclass(frozen=True)
class Target:
    """One model file on one backend: what a row of the latency and accuracy tables measures."""

    model: Path
    backend: str  # a key of BACKEND_LABELS
    precision: str

    @property
    def key(self) -> str:
        return f"{self.model.name}:{self.backend}"


def list_targets(models: Sequence[Path], providers: Sequence[str]) -> list[Target]:
    """Every (model, backend) pair asked for, runnable here or not."""
    unknown = sorted(set(providers) - set(PROVIDERS))
    if unknown:
        raise UsageError(f"--providers {','.join(unknown)}: use some of {', '.join(PROVIDERS)}")
    targets = []
    for model in models:
        suffix = model.suffix.lower()
        if suffix in TORCH_SUFFIXES:
            targets.append(Target(model, "torch-cpu", "fp32"))
            if "cuda" in providers:
                targets.append(Target(model, "torch-cuda", "fp32"))
                targets.append(Target(model, "torch-cuda-fp16", "fp16 (autocast)"))
        elif suffix in ONNX_SUFFIXES:
            precision = _precision(model)
            targets.extend(Target(model, f"ort-{name}", precision) for name in providers)
        elif suffix in TENSORRT_SUFFIXES:
            targets.append(Target(model, "tensorrt", _precision(model)))
        else:
            raise UsageError(f"--model {model}: not a .ckpt, .onnx or .plan file")
    return targets


def _precision(model: Path) -> str:
    """The card's precision; for a file that cannot be read, the one its name says, or "?"."""
    from sketchsearch.runtime.model_card import read_onnx_card, read_sidecar

    try:
        card = read_onnx_card(model) if model.suffix == ".onnx" else read_sidecar(model)
        return card.precision
    except (SketchsearchError, OSError):
        named = [p for p in ("fp32", "fp16", "int8") if f".{p}." in model.name]
        return named[0] if named else "?"


def open_target(target: Target, threads: int | None) -> Engine:
    """The engine, or BackendUnavailableError when this machine cannot run the backend."""
    if target.backend.startswith("torch"):
        device = "cpu" if target.backend == "torch-cpu" else "cuda"
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise BackendUnavailableError("torch.cuda.is_available() is False: no CUDA GPU")
        from sketchsearch.runtime.torch_engine import TorchEngine

        fp16 = target.backend.endswith("fp16")
        return TorchEngine(target.model, device=device, autocast_fp16=fp16, threads=threads)
    if target.backend.startswith("ort-"):
        from sketchsearch.runtime.onnx_engine import PROVIDER_ALIASES, OnnxEngine

        provider = target.backend.removeprefix("ort-")
        engine = OnnxEngine(target.model, provider=provider, threads=threads)
        if engine.device != PROVIDER_ALIASES[provider]:  # onnxruntime fell back silently
            raise BackendUnavailableError(
                f"onnxruntime could not start {PROVIDER_ALIASES[provider]} here (it fell back "
                f"to {engine.device}); check the GPU, CUDA and cuDNN libraries"
            )
        return engine
    from sketchsearch.runtime.tensorrt_engine import TensorRTEngine, current_target

    current_target()  # TensorRT and a GPU first: "unavailable" before "file not found"
    return TensorRTEngine(target.model)


def target_row(target: Target) -> dict[str, Any]:
    """A row's identity; measurements or the reason there are none are added to it."""
    size = target.model.stat().st_size / 1e6 if target.model.is_file() else None
    return {
        "model": str(target.model),
        "file": target.model.name,
        "backend": target.backend,
        "backend_label": BACKEND_LABELS[target.backend],
        "precision": target.precision,
        "file_size_mb": round(size, 3) if size is not None else None,
        "status": "failed",
        "reason": None,
        "device": None,
        "family": None,
    }


def environment(threads: int | None) -> dict[str, str]:
    """CPU, cores, threads, GPU, onnxruntime providers and library versions."""
    import shutil
    import subprocess
    from importlib import metadata

    versions = {}
    for name in ("sketchsearch", "numpy", "onnxruntime", "onnxruntime-gpu", "torch", "timm"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        versions["hnswlib"] = metadata.version("hnswlib")
    except metadata.PackageNotFoundError:
        versions["hnswlib"] = "not installed"
    # The pinned extras install tensorrt-cu12/-cu13 without the bare `tensorrt` distribution.
    trt = tensorrt_install(probe_distributions())
    versions["tensorrt"] = f"{trt.version} ({trt.distribution})" if trt else "not installed"
    import onnxruntime

    gpu = "none"
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
        done = subprocess.run(query, capture_output=True, text=True, check=False)
        gpu = done.stdout.strip().replace("\n", "; ") or f"nvidia-smi failed: {done.stderr[:200]}"
    return machine_facts(
        threads=str(threads) if threads else "default (all cores)",
        gpu=gpu,
        onnxruntime_providers=",".join(onnxruntime.get_available_providers()),
        **versions,
    )


def close_engine(engine: Engine) -> None:
    """Free what an engine holds (TensorRT buffers and streams) before the next one opens."""
    close = getattr(engine, "close", None)
    if callable(close):
        close()


def parse_providers(text: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in text.split(",") if part.strip())
