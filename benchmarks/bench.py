"""The chain behind `sketchsearch bench`: export a checkpoint in each precision, then latency,
accuracy and one report. Every intermediate JSON is kept in the output folder,
and each exported model gets ``<model>.backends.json``: the backend that ran it fastest here
(engine alone) for single queries and for batches, among those whose embeddings matched
onnxruntime's on real photos (parity, checked after each export), which ``retrieve`` and
gallery building then use.

A step that fails is a failed row of the report, never the end of the run: an export that
fails (a checkpoint that cannot be read included) is recorded with its reason and the chain
goes on. Only a run that cannot know which images to measure (no --split, and no run folder
naming one) is refused up front.

The report shows what this run measured. The plot's recall-vs-QPS panel is left out unless
``ann_size`` asks this run to measure it (``ann.py`` at that many vectors: about half a minute
at 10,000 on 2 cores), or ``ann`` names an ann.py JSON, which the report places by machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sketchsearch.benchmarks.latency import LatencyConfig
from sketchsearch.data import strict_json

if TYPE_CHECKING:
    from sketchsearch.train.checkpoint_card import LoadedCheckpoint


def _quiet(_: str) -> None:
    """The default ``progress``: say nothing."""


@dataclass(frozen=True)
class BenchConfig:
    """What `sketchsearch bench` runs. ``latency`` holds the latency settings (its ``models`` are
    filled in with the checkpoint and its exports); threads and providers apply to both tables."""

    checkpoint: Path
    out: Path
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    split: str | None = None  # None: the training run's split (config.yaml), test part
    data: Path | None = None
    latency: LatencyConfig = field(default_factory=lambda: LatencyConfig(models=()))
    ann: Path | None = None  # an ann.py JSON for the plot; shown as this run's only if
    # measured on this machine (report.py decides)
    ann_size: int | None = None  # measure ANN in this run at this many vectors; with ``ann``
    # None too, the panel is left out


def measure_ann(size: int, out: Path) -> dict[str, Any]:
    """ann.py at ``size`` vectors and 200 queries, in this run; also written to out/ann.json
    (its ``command`` is this process's: the bench command that measured it)."""
    from sketchsearch.benchmarks.ann import run_ann

    data = run_ann((size,), queries=200, show=_quiet)
    _write(out / "ann.json", data)
    return data


def given_ann(config: BenchConfig) -> dict[str, Any] | None:
    """The --ann file, read before anything is measured; both --ann and --ann-size: refused."""
    from sketchsearch.data.errors import UsageError

    if config.ann is not None and config.ann_size is not None:
        raise UsageError("--ann FILE and --ann-size N both given: pass one of them")
    return None if config.ann is None else json.loads(config.ann.read_text())


def run_split(checkpoint: Path) -> tuple[str, Path] | None:
    """The test part of the split, and the data root, that the training run's config.yaml
    beside the checkpoint names, as written there; None when it names none."""
    from sketchsearch.train.run_folder import read_run_folder

    named = read_run_folder(checkpoint).named_split()
    return None if named is None else (f"{named[0]}:test", Path(named[1]))


def load_once(checkpoint: Path) -> LoadedCheckpoint | None:
    """The checkpoint, read once for every export; None when it cannot be read: each export
    then fails on its own and is recorded as a failed row, with the reason."""
    from sketchsearch.data.errors import SketchsearchError
    from sketchsearch.train.checkpoint_card import load_with_card

    try:
        return load_with_card(checkpoint)
    except SketchsearchError:
        return None


def export_all(
    config: BenchConfig,
    loaded: LoadedCheckpoint | None,
    progress: Callable[[str], None] = _quiet,
) -> list[dict[str, Any]]:
    """One entry per precision: the file and its verification, or why the export failed.
    ``progress`` is told each precision as its export starts."""
    from sketchsearch.data.errors import SketchsearchError
    from sketchsearch.export.pipeline import ExportOptions, export_onnx

    calib = config.split.rsplit(":", 1)[0] + ":train" if config.split else None
    entries = []
    for precision in config.precisions:
        progress(f"bench: exporting {precision}…")
        target = config.out / f"model.{precision}.onnx"
        entry: dict[str, Any] = {
            "file": target.name,
            "backend": "export",
            "backend_label": "ONNX export",
            "precision": precision,
            "file_size_mb": None,
            "status": "ok",
            "reason": None,
        }
        options = ExportOptions(
            checkpoint=config.checkpoint,
            output=target,
            precision=precision,
            calib_split=calib,
            data_root=config.data if calib else None,
        )
        try:
            (result,) = export_onnx(options, loaded)
            entry["file_size_mb"] = round(result.size_bytes / 1e6, 3)
            if result.verification is not None:
                entry["verification"] = result.verification.to_dict()
        except SketchsearchError as err:
            entry.update(status="failed", reason=str(err))
        else:
            entry["backend_parity"] = [backend_parity(target, config.latency.threads)]
        entries.append(entry)
    return entries


def backend_parity(model: Path, threads: int | None) -> dict[str, Any]:
    """OpenVINO against onnxruntime on ``model`` (real photos, cosine >= 0.9999; int8: 0.98):
    the figures, "unavailable" where openvino is not installed, or "failed" and why."""
    from sketchsearch.benchmarks.backend_recommendation import parity_entry

    return parity_entry(model, "openvino", threads)


def run_bench(config: BenchConfig, progress: Callable[[str], None] = _quiet) -> dict[str, Path]:
    """The whole chain; every intermediate JSON is kept in ``config.out``. The paths of the
    report (``md``, ``json``, ``png``). ``progress`` is told each step as it starts
    ("bench: exporting fp32…", "bench: latency…", "bench: accuracy…", with --ann-size
    "bench: ann…", then "bench: report…")."""
    from sketchsearch.benchmarks.accuracy import AccuracyConfig, run_accuracy
    from sketchsearch.benchmarks.backend_recommendation import (
        parity_cosines,
        write_recommendations,
    )
    from sketchsearch.benchmarks.latency import run_latency
    from sketchsearch.benchmarks.report import build_report
    from sketchsearch.data.errors import UsageError

    ann = given_ann(config)
    split = (config.split, config.data) if config.split else run_split(config.checkpoint)
    if split is None:  # a split with no --data uses the data root it records
        raise UsageError(
            f"{config.checkpoint}: its run folder names no split: pass --split SPLIT:PART"
        )
    config.out.mkdir(parents=True, exist_ok=True)
    exports = export_all(config, load_once(config.checkpoint), progress)
    _write(config.out / "exports.json", {"exports": exports})
    exported = [config.out / e["file"] for e in exports if e["status"] == "ok"]
    models = (config.checkpoint, *exported)
    progress("bench: latency…")
    latency = run_latency(replace(config.latency, models=models))
    _write(config.out / "latency.json", latency)
    parity = {
        str(config.out / e["file"]): parity_cosines(e.get("backend_parity", [])) for e in exports
    }
    for path in write_recommendations(latency, parity):
        progress(
            f"bench: backends recommended for {path.name.removesuffix('.backends.json')}: {path}"
        )
    progress("bench: accuracy…")
    accuracy = run_accuracy(
        AccuracyConfig(
            models=models,
            split=split[0],
            data=split[1],
            providers=config.latency.providers,
            threads=config.latency.threads,
        )
    )
    _write(config.out / "accuracy.json", accuracy)
    source = str(config.ann) if config.ann is not None else "this run"
    if config.ann_size is not None:
        progress("bench: ann…")
        ann = measure_ann(config.ann_size, config.out)
    progress("bench: report…")
    return build_report(
        latency,
        accuracy,
        config.out / "report",
        ann,
        {"exports": exports},
        sources={"ann": source},
    )


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(strict_json.dumps(strict_json.undefined_as_null(data), indent=1) + "\n")
