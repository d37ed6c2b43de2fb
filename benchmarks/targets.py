"""What a benchmark row measures: one model file on one backend, opened or said unavailable.

Shared by ``latency.py`` and ``accuracy.py``, so that both tables have the same rows and the
same reasons for the rows that cannot run here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sketchsearch.benchmarks.machine_info import machine_facts
from sketchsearch.data.errors import SketchsearchError, UsageError
from sketchsearch.runtime.cuda_probe import probe_distributions, tensorrt_install
from sketchsearch.runtime.engines.backend import Backend, Offer, OpenOptions
from sketchsearch.runtime.engines.protocol import BackendUnavailableError, Engine
from sketchsearch.runtime.engines.table import (
    all_backends,
    describe_backends,
    find_backend,
    known_suffixes,
    missing_plugins_hint,
)


def offered_devices() -> tuple[str, ...]:
    """What ``--providers`` can name: the devices the backend table offers, in table order."""
    devices = (offer.device for backend in all_backends() for offer in backend.offers)
    return tuple(dict.fromkeys(device for device in devices if device is not None))


def backend_labels() -> dict[str, str]:
    """Every row the tables can have (``Target.backend``) and its label, from the table."""
    return {offer.key: offer.label for backend in all_backends() for offer in backend.offers}


def __getattr__(name: str) -> Any:
    """``BACKEND_LABELS``, the old constant, read from the backend table when used."""
    if name == "BACKEND_LABELS":
        return backend_labels()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Target:
    """One model file on one backend: what a row of the latency and accuracy tables measures."""

    model: Path
    source: Backend  # the backend table's entry that runs the file
    offer: Offer  # where it runs: the row
    precision: str

    @property
    def backend(self) -> str:
        return self.offer.key

    @property
    def key(self) -> str:
        return f"{self.model.name}:{self.backend}"


def list_targets(models: Sequence[Path], providers: Sequence[str]) -> list[Target]:
    """Every (model, backend) pair asked for, runnable here or not.

    A file's rows are its default backend's, then those of every backend that also opens its
    suffix (an ``.onnx`` also gets OpenVINO's rows): each is measured, or says why it is not.
    """
    offered = offered_devices()
    unknown = sorted(set(providers) - set(offered))
    if unknown:
        raise UsageError(f"--providers {','.join(unknown)}: use some of {', '.join(offered)}")
    targets: list[Target] = []
    for model in models:
        backend = find_backend(model)
        if backend is None:
            raise UsageError(
                f"--model {model}: not a {_either(known_suffixes())} file{missing_plugins_hint()}"
            )
        runners = [backend, *(b for b in all_backends() if b is not backend and b.opens(model))]
        offers = [(runner, offer) for runner in runners for offer in _offers(runner, providers)]
        needs_card = any(offer.precision is None for _, offer in offers)
        read = _precision(model, backend) if needs_card else "?"
        targets.extend(Target(model, b, o, o.precision or read) for b, o in offers)
    return targets


def _offers(backend: Backend, providers: Sequence[str]) -> list[Offer]:
    """The backend's reference rows (table order), then its rows in ``--providers`` order."""
    rows = [offer for offer in backend.offers if offer.always]
    for device in dict.fromkeys(providers):
        rows += [o for o in backend.offers if not o.always and o.device == device]
    return rows


def _either(suffixes: Sequence[str]) -> str:
    """``.onnx, .plan or .ckpt``."""
    return " or ".join([", ".join(suffixes[:-1]), suffixes[-1]] if len(suffixes) > 1 else suffixes)


def _precision(model: Path, backend: Backend) -> str:
    """The card's precision; for a file that cannot be read, the one its name says, or "?"."""
    try:
        card = backend.read_card(model)
    except (SketchsearchError, OSError):
        card = None
    if card is not None:
        return card.precision
    named = [p for p in ("fp32", "fp16", "int8") if f".{p}." in model.name]
    return named[0] if named else "?"


def open_target(target: Target, threads: int | None) -> Engine:
    """The engine, or BackendUnavailableError when this machine cannot run the backend.

    The backend's probe runs first, so a row reads "unavailable" rather than "file not
    found" where the backend could not have run the file anyway.
    """
    offer = target.offer
    target.source.check_available(offer.device)
    options = OpenOptions(
        device=offer.device,
        threads=threads,
        autocast_fp16=offer.autocast_fp16,
        strict_device=True,  # a row measures its own device: never onnxruntime's fall back
    )
    return target.source.open(target.model, options)


def target_row(target: Target) -> dict[str, Any]:
    """A row's identity; measurements or the reason there are none are added to it."""
    size = target.model.stat().st_size / 1e6 if target.model.is_file() else None
    return {
        "model": str(target.model),
        "file": target.model.name,
        "backend": target.backend,
        "backend_label": target.offer.label,
        "precision": target.precision,
        "file_size_mb": round(size, 3) if size is not None else None,
        "status": "failed",
        "reason": None,
        "device": None,
        "family": None,
    }


def measure_row(
    target: Target, threads: int | None, measure: Callable[[Engine], dict[str, Any]]
) -> dict[str, Any]:
    """One table row: ``measure(engine)``'s figures, or why there are none.

    The engine is closed before the next row opens its own; an unavailable backend is a row
    saying so, and a backend that breaks is a row saying how, never a crashed run.
    """
    row = target_row(target)
    try:
        with open_target(target, threads) as engine:
            row["device"], row["family"] = engine.device, engine.card.family
            row.update(measure(engine))
        row["status"] = "ok"
    except BackendUnavailableError as err:
        row.update(status="unavailable", reason=str(err))
    except Exception as err:
        row.update(status="failed", reason=f"{type(err).__name__}: {err}")
    return row


def environment(threads: int | None) -> dict[str, str]:
    """CPU, cores, threads, GPU, onnxruntime providers and library versions."""
    import shutil
    import subprocess
    from importlib import metadata

    versions = {}
    names = ("sketchsearch", "numpy", "onnxruntime", "onnxruntime-gpu", "openvino", "torch", "timm")
    for name in names:
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


def model_help() -> str:
    """``--model``'s help: the model files the backend table opens (argparse-escaped)."""
    return f"Model file: {describe_backends()}.".replace("%", "%%")


def parse_providers(text: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in text.split(",") if part.strip())
