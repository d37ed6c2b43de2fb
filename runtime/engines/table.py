"""The backend table: every engine backend, declared once, and ``open_engine`` over it.

The runtime declares its own backends here (onnxruntime, TensorRT). A higher layer declares
one through the ``sketchsearch.engines`` entry point group (the torch reference:
``torch = sketchsearch.train.torch_backend:BACKEND`` in setup.cfg), so the runtime never
imports it. Entry points are read only when a suffix is not a built-in one or the whole
table is listed, and once per process.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from sketchsearch.data.errors import UsageError
from sketchsearch.runtime.engines.backend import Backend, Offer, OpenOptions
from sketchsearch.runtime.engines.protocol import BackendUnavailableError, Engine

ENTRY_POINT_GROUP = "sketchsearch.engines"
_ENGINES = "sketchsearch.runtime.engines"
_CARDS = "sketchsearch.runtime.model_card"

BUILTIN_BACKENDS = (
    Backend(
        name="onnxruntime",
        label="onnxruntime",
        suffixes=(".onnx",),
        opener=f"{_ENGINES}.onnx_engine:open_onnx",
        card_reader=f"{_CARDS}:read_onnx_card",
        offers=(
            Offer("ort-cpu", "onnxruntime CPU", device="cpu"),
            Offer("ort-cuda", "onnxruntime CUDA", device="cuda"),
            Offer("ort-tensorrt", "onnxruntime TensorRT EP", device="tensorrt"),
        ),
    ),
    Backend(
        name="tensorrt",
        label="TensorRT",
        suffixes=(".plan", ".engine"),
        opener=f"{_ENGINES}.tensorrt_engine:open_tensorrt",
        probe=f"{_ENGINES}.tensorrt_engine:check_tensorrt",
        card_reader=f"{_CARDS}:read_sidecar",
        extra="tensorrt",
        offers=(Offer("tensorrt", "TensorRT", always=True),),
    ),
    Backend(
        name="openvino",
        label="OpenVINO",
        suffixes=(".xml",),
        also_opens=(".onnx",),
        opener=f"{_ENGINES}.openvino_engine:open_openvino",
        probe=f"{_ENGINES}.openvino_engine:check_openvino",
        card_reader=f"{_ENGINES}.openvino_engine:read_openvino_card",
        extra="openvino",
        offers=(Offer("openvino-cpu", "OpenVINO CPU", device="cpu"),),
    ),
)


def load_plugins(points: Iterable[EntryPoint]) -> tuple[Backend, ...]:
    """The backends the entry points declare; a broken one stops with one line saying which."""
    found = []
    for point in sorted(points, key=lambda p: p.name):
        where = f"engine backend {point.name!r} ({point.value}, entry point {point.group})"
        try:
            backend = point.load()
        except Exception as err:  # a plugin's own import error, whatever it is: one line
            text = str(err).strip().splitlines()
            raise BackendUnavailableError(
                f"{where} failed to load: {type(err).__name__}: {text[0] if text else ''}; "
                "reinstall the package that declares it (`pip install -e .` here) or remove it"
            ) from None
        if not isinstance(backend, Backend) or backend.name != point.name:
            raise BackendUnavailableError(
                f"{where} is {backend!r}, not a Backend named {point.name!r}: fix the declaration"
            )
        found.append(backend)
    return tuple(found)


@functools.cache
def plugin_backends() -> tuple[Backend, ...]:
    """The backends declared by installed packages, loaded on first use."""
    return load_plugins(entry_points(group=ENTRY_POINT_GROUP))


def all_backends() -> tuple[Backend, ...]:
    """Built-ins first, then the declared ones; a name or suffix taken twice is an error."""
    backends = BUILTIN_BACKENDS + plugin_backends()
    seen: dict[str, str] = {}
    for backend in backends:
        for claim in (backend.name, *backend.suffixes):
            if claim in seen:
                raise BackendUnavailableError(
                    f"engine backends {seen[claim]!r} and {backend.name!r} both claim {claim!r}: "
                    "uninstall one of them"
                )
            seen[claim] = backend.name
    return backends


def known_suffixes() -> tuple[str, ...]:
    return tuple(suffix for backend in all_backends() for suffix in backend.suffixes)


def describe_backends() -> str:
    """``.onnx (onnxruntime), .plan/.engine (TensorRT, needs [tensorrt]), ...`` for help texts.

    A plugin that fails to load is named after the built-ins, so that help still shows.
    """
    try:
        return ", ".join(backend.describe() for backend in all_backends())
    except BackendUnavailableError as err:
        return ", ".join(backend.describe() for backend in BUILTIN_BACKENDS) + f" ({err})"


def find_backend(path: Path) -> Backend | None:
    """The backend that claims ``path``'s suffix, or None; entry points are read only if needed."""
    suffix = path.suffix.lower()
    return _find(lambda backend: suffix in backend.suffixes)


def backend_for(path: Path, option: str = "--engine") -> Backend:
    """The backend that runs ``path``, by its suffix; entry points are read only when needed."""
    found = find_backend(path)
    if found is None:
        known = ", ".join(known_suffixes())
        raise UsageError(
            f"{option} {path}: unknown model type {path.suffix.lower()!r}; use one of {known}"
            f"{missing_plugins_hint()}"
        )
    return found


def missing_plugins_hint() -> str:
    """For an unknown suffix: a note when no entry point declares a backend at all.

    The torch reference is always declared by this package, so an empty entry point group
    means stale install metadata (a checkout updated without reinstalling it).
    """
    if plugin_backends():
        return ""
    return " (no plugin backends registered: reinstall with `pip install -e .`)"


def backend_named(name: str, option: str = "--backend") -> Backend:
    found = _find(lambda backend: backend.name == name)
    if found is None:
        names = [backend.name for backend in all_backends()]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(
            f"{option} {name}: no such engine backend{hint}; use one of {', '.join(names)}"
        )
    return found


def backend_opening(path: Path, name: str | None, option: str = "--backend") -> Backend:
    """The backend named ``name`` if it runs ``path``'s suffix; None: the suffix's default."""
    if name is None:
        return backend_for(path)
    backend = backend_named(name, option)
    if not backend.opens(path):
        runs = "/".join(backend.suffixes + backend.also_opens)
        raise UsageError(
            f"{option} {name}: it runs {runs} files, not {path.name}; "
            f"drop {option} to use {path.suffix.lower()}'s default backend"
        )
    return backend


def _find(matches: Callable[[Backend], bool]) -> Backend | None:
    """The first match among the built-ins, and only then among the declared backends."""
    for backends in (lambda: BUILTIN_BACKENDS, all_backends):
        for backend in backends():
            if matches(backend):
                return backend
    return None


def open_engine(
    path: str | os.PathLike[str],
    provider: str | None = None,
    threads: int | None = None,
    batch_pipeline: bool = False,
    domain: str | None = None,
    backend: str | None = None,
) -> Engine:
    """The engine for a model file, from the backend that claims its suffix or ``backend``.

    ``provider``: the ``--provider`` option, onnxruntime's execution provider (``cpu``,
    ``cuda``, ``tensorrt`` or a provider name; None: the best there is); onnxruntime may still
    fall back to the CPU when it fails to start, and the other backends ignore it (benchmark
    rows, which must run where they say, open through ``OpenOptions.strict_device``).
    ``batch_pipeline``: the engine will run beside decoding threads
    (gallery building, evaluation), so onnxruntime's threads must not spin-wait between runs.
    ``domain``: the side to embed ("gallery" when indexing) where the file holds both encoders.
    ``backend``: a backend table name (``--backend``) that runs the file instead of the
    suffix's default, e.g. "openvino" for an ``.onnx``; one that cannot is a UsageError.
    """
    model = Path(path)
    if not model.exists():
        raise UsageError(f"--engine {model}: model file not found")
    options = OpenOptions(
        device=provider, threads=threads, batch_pipeline=batch_pipeline, domain=domain
    )
    return backend_opening(model, backend).open(model, options)
