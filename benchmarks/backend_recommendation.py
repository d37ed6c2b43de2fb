"""From a latency report to ``<model>.backends.json``: the fastest backend per workload.

``sketchsearch bench`` and ``benchmarks/latency.py --recommend`` call this after measuring;
the runtime reads the file (``runtime/engines/recommendation.py``) and the commands use it
(``runtime/engines/backend_choice.py``). Only rows measured in this report count, and only
for the model file they measured. The figures are the engine alone (latency.py's embed rows,
onnxruntime spinning on), at batch 1 and at each batch >= 8; a backend other than the file's
default counts only once its embeddings matched the default's on real photos (parity).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sketchsearch.benchmarks.machine_info import run_record
from sketchsearch.export.backend_parity import min_cosine
from sketchsearch.runtime.engines.protocol import BackendUnavailableError
from sketchsearch.runtime.engines.recommendation import (
    BATCH_MIN,
    Candidate,
    recommend,
    recommendation_path,
    write_recommendation,
)
from sketchsearch.runtime.engines.table import all_backends, backend_for
from sketchsearch.runtime.machine import available_cpus

# model (as the report's rows name it) → backend name → its lowest cosine against the
# file's default backend on the parity photos; a backend missing there is not recommended.
Parity = Mapping[str, Mapping[str, float]]


def parity_entry(model: Path, backend: str, threads: int | None) -> dict[str, Any]:
    """``backend`` against onnxruntime on ``model`` (real photos) as a report entry: "ok" with
    the figures, "unavailable" when the backend is not installed here, "failed" with the
    reason when the check broke (a file it cannot compile, or OpenVINO's own exceptions):
    one entry, never the end of a bench run."""
    from sketchsearch.export.backend_parity import check_parity

    try:
        return {"status": "ok", **check_parity(model, model, backend, threads=threads).to_dict()}
    except BackendUnavailableError as err:
        return {"status": "unavailable", "backend": backend, "reason": str(err)}
    except Exception as err:  # OpenVINO raises RuntimeError and its own: a failed entry
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return {"status": "failed", "backend": backend, "reason": reason}


def parity_cosines(entries: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """backend → lowest cosine, from the "ok" entries of :func:`parity_entry`."""
    return {e["backend"]: e["min_cosine"] for e in entries if e["status"] == "ok"}


def check_candidates(
    report: dict[str, Any], threads: int | None = None
) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    """Parity of every non-default backend that ran a model of ``report``, measured now; the
    cosines for :func:`write_recommendations` and every entry (what was checked, or why not)."""
    parity: dict[str, dict[str, float]] = {}
    entries = []
    for model, names in _backends_by_model(report).items():
        default = backend_for(Path(model)).name
        checked = [parity_entry(Path(model), name, threads) for name in names if name != default]
        entries += [{"model": model, **entry} for entry in checked]
        parity[model] = parity_cosines(checked)
    return parity, entries


def write_recommendations(
    report: dict[str, Any], parity: Parity, argv: Sequence[str] | None = None
) -> list[Path]:
    """One file beside every model that two or more backends ran (one backend alone is no
    choice: a checkpoint's torch rows, an ``.onnx`` where OpenVINO is not installed); the
    paths written. ``parity`` holds each non-default backend's cosine per model (from
    :func:`check_candidates` or the bench's exports). A model this report measured that gets
    no file loses the one it had: its figures are not this run's."""
    offers = {o.key: (b.name, o.device) for b in all_backends() for o in b.offers}
    env = report["environment"]
    measured = {
        "machine": env["fingerprint"],
        "cpu": env["cpu"],
        "cpus": available_cpus(),
        "threads": report["settings"]["threads"],
        "date": report["date"],
        "command": run_record(argv)["command"],
    }
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in report["rows"]:
        if row["status"] == "ok" and row["backend"] in offers:
            by_model.setdefault(row["model"], []).append(row)
    written = []
    for model, rows in by_model.items():
        if len({offers[row["backend"]][0] for row in rows}) < 2:
            continue
        cosines = parity.get(model, {})
        single: list[Candidate] = []
        batch: list[Candidate] = []
        for row in rows:
            name, device = offers[row["backend"]]
            for text, stats in row["batches"].items():
                size = int(text)
                if size == 1:
                    into, value = single, stats["p50_ms"]
                elif size >= BATCH_MIN:
                    into, value = batch, stats["images_per_s"]
                else:
                    continue
                into.append(Candidate(name, row["backend"], device, size, value, cosines.get(name)))
        default = backend_for(Path(model)).name
        bar = min_cosine(rows[0]["precision"])  # int8: its export's bar, else PARITY_COSINE
        found = recommend(Path(model), measured, single, batch, default, bar)
        written.append(write_recommendation(Path(model), found))
    for row in report["rows"]:  # every model measured, whatever its rows' status
        stale = recommendation_path(row["model"])
        if stale not in written:
            stale.unlink(missing_ok=True)
    return written


def _backends_by_model(report: dict[str, Any]) -> dict[str, list[str]]:
    """model → the backend names whose rows ran it (in the report's order)."""
    offers = {o.key: b.name for b in all_backends() for o in b.offers}
    found: dict[str, list[str]] = {}
    for row in report["rows"]:
        if row["status"] == "ok" and row["backend"] in offers:
            names = found.setdefault(row["model"], [])
            if offers[row["backend"]] not in names:
                names.append(offers[row["backend"]])
    return found
