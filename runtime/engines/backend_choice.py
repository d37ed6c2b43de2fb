"""Which backend a command opens a model file with: ``--backend``, else the recommendation
measured on this machine for the workload, else the suffix's default (today's behaviour).

One function for every front end (``retrieve``, gallery building, evaluation, the service),
so they choose alike and say alike why. The note is one line for stderr; with no
recommendation file and no ``--backend`` there is none, and output stays what it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sketchsearch.data.errors import UsageError
from sketchsearch.data.hashing import file_sha256
from sketchsearch.runtime.engines.protocol import BackendUnavailableError
from sketchsearch.runtime.engines.recommendation import (
    RecommendationError,
    WorkloadChoice,
    read_recommendation,
    recommendation_path,
)
from sketchsearch.runtime.engines.table import backend_for, backend_named, backend_opening
from sketchsearch.runtime.machine import available_cpus, machine_fingerprint

WORKLOAD_WORDS = {"single": "single queries", "batch": "batches"}


@dataclass(frozen=True)
class BackendChoice:
    """What to pass to ``open_engine``: ``backend`` (None: the suffix's default) and, where a
    recommendation names another backend than the default, the ``device`` it was measured on
    for an unset ``--provider`` (the default backend keeps choosing its best provider)."""

    backend: str | None
    device: str | None = None
    note: str | None = None  # one line for stderr; None: nothing to say


def choose_backend(
    model: Path,
    requested: str | None,
    workload: str,
    provider: str | None = None,
    threads: int | None = None,
) -> BackendChoice:
    """The backend for ``model`` under ``workload`` ("single" or "batch").

    ``requested`` (``--backend``) wins, and must run the file (a UsageError otherwise). A
    ``provider`` (``--provider``, onnxruntime's) without it keeps the suffix's default, as
    before recommendations: the user named where onnxruntime runs. A recommendation from
    another machine, for another file, for other usable CPUs or other ``threads``
    (``--threads``, when given), unreadable, or naming a backend that is not installed, is set
    aside with a note saying so; the suffix's default runs.
    """
    name = recommendation_path(model).name
    if requested is not None:
        backend_opening(model, requested)
        return BackendChoice(requested, note=f"backend: {requested} (--backend)")
    if provider is not None:
        return BackendChoice(None)
    try:
        recommendation = read_recommendation(model)
    except RecommendationError as err:
        return _default(model, f"{err}: ignored")
    if recommendation is None:
        return BackendChoice(None)
    if recommendation.machine != machine_fingerprint():
        return _default(
            model,
            f"{name} was measured on another machine ({recommendation.cpu}, machine "
            f"{recommendation.machine}): ignored, rerun `sketchsearch bench` here",
        )
    if not _same_file(model, recommendation.model_size, recommendation.model_sha256):
        return _default(model, f"{name} was measured for another {model.name}: ignored")
    cpus = available_cpus()
    if recommendation.cpus != cpus:
        return _default(
            model,
            f"{name} was measured with {recommendation.cpus} usable CPUs, {cpus} here: "
            "ignored, rerun `sketchsearch bench`",
        )
    if threads is not None and threads != recommendation.threads:
        measured = recommendation.threads or "the default"
        return _default(
            model,
            f"{name} was measured with {measured} threads, not --threads {threads}: ignored",
        )
    chosen = recommendation.choice(workload)
    if chosen is None:
        return BackendChoice(None)
    return _recommended(model, chosen, workload, name)


def _same_file(model: Path, size: int, sha256: str) -> bool:
    """``model`` is the file measured: its size first (free), then its hash (~20 ms a 20 MB)."""
    try:
        return model.stat().st_size == size and file_sha256(model) == sha256
    except OSError:
        return False


def _recommended(model: Path, chosen: WorkloadChoice, workload: str, name: str) -> BackendChoice:
    why = f"recommended for {WORKLOAD_WORDS[workload]} by {name}: {chosen.explain()}"
    try:
        backend = backend_named(chosen.backend)
        if not backend.opens(model):
            return _default(model, f"{name} names {chosen.backend}, which cannot run it: ignored")
        backend.check_available(chosen.device)
    except BackendUnavailableError as err:
        return _default(model, f"{name} recommends {chosen.backend}, unavailable here ({err})")
    except UsageError as err:  # a name this table lacks: the file outlived a plugin
        return _default(model, f"{name} recommends {chosen.backend} ({err}): ignored")
    note = f"backend: {chosen.backend} ({why})"
    if backend.name == backend_for(model).name:  # the default picks its best provider, as before
        return BackendChoice(None, note=note)
    return BackendChoice(chosen.backend, chosen.device, note)


def _default(model: Path, reason: str) -> BackendChoice:
    return BackendChoice(None, note=f"backend: {backend_for(model).name} ({reason})")
