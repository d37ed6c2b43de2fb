"""`sketchsearch bench`: export a checkpoint in each precision, then latency, accuracy, report."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sketchsearch.benchmarks.latency import LatencyConfig
    from sketchsearch.train.checkpoint_card import LoadedCheckpoint
    from sketchsearch.train.run_folder import RunFolder

_PATH = click.Path(path_type=Path)
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@dataclass(frozen=True)
class BenchConfig:
    checkpoint: Path
    out: Path
    latency: LatencyConfig  # its models are filled in: the checkpoint, then each export
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    split: str | None = None  # None: the training run's split (config.yaml), test part
    data: Path | None = None
    ann: Path | None = None  # None: the newest benchmarks/results/ann-*.json, if any


def run_split(run: RunFolder) -> tuple[str, Path] | None:
    """The test part of the split, and the data root, that the training run used."""
    named = run.split_and_data()
    return None if named is None else (f"{named[0]}:test", named[1])


def export_all(config: BenchConfig, loaded: LoadedCheckpoint) -> list[dict[str, Any]]:
    """One entry per precision: the file and its verification, or why the export failed."""
    from sketchsearch.data.errors import SketchsearchError
    from sketchsearch.export.pipeline import ExportOptions, export_onnx

    calib = config.split.rsplit(":", 1)[0] + ":train" if config.split else None
    entries = []
    for precision in config.precisions:
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
        entries.append(entry)
    return entries


def run_bench(config: BenchConfig) -> dict[str, Path]:
    """The whole chain; every intermediate JSON is kept in ``config.out``."""
    from sketchsearch.benchmarks.accuracy import AccuracyConfig, run_accuracy
    from sketchsearch.benchmarks.latency import run_latency
    from sketchsearch.benchmarks.report import build_report
    from sketchsearch.data.errors import UsageError
    from sketchsearch.train.checkpoint_card import load_with_card

    loaded = load_with_card(config.checkpoint)  # read once: every export reuses it
    split = (config.split, config.data) if config.split else run_split(loaded.run)
    if split is None or split[1] is None:
        raise UsageError(
            f"{config.checkpoint}: its run folder names no split: pass --split SPLIT:PART --data"
        )
    config.out.mkdir(parents=True, exist_ok=True)
    exports = export_all(config, loaded)
    _write(config.out / "exports.json", {"exports": exports})
    exported = [config.out / e["file"] for e in exports if e["status"] == "ok"]
    models = (config.checkpoint, *exported)
    latency = run_latency(replace(config.latency, models=models))
    _write(config.out / "latency.json", latency)
    accuracy = run_accuracy(
        AccuracyConfig(
            models, split[0], split[1], config.latency.providers, threads=config.latency.threads
        )
    )
    _write(config.out / "accuracy.json", accuracy)
    ann = config.ann or max(RESULTS.glob("ann-*.json"), default=None)
    ann_data = json.loads(ann.read_text()) if ann is not None else None
    return build_report(latency, accuracy, config.out / "report", ann_data, {"exports": exports})


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


@click.command("bench")
@click.option("--checkpoint", type=_PATH, required=True, help="best.ckpt of a training run.")
@click.option("--out", type=_PATH, required=True, help="Folder for models, JSON and report.")
@click.option("--precisions", default="fp32,fp16,int8", show_default=True)
@click.option("--split", "split_spec", metavar="SPLIT[:PART]", help="Default: the run's test.")
@click.option("--data", "data_root", type=_PATH, help="Data root of --split.")
@click.option("--batch-sizes", default="1,8,32", show_default=True)
@click.option("--warmup", type=int, default=10, show_default=True)
@click.option("--iters", type=int, default=100, show_default=True)
@click.option("--threads", type=int, help="Inference threads (default: all cores).")
@click.option("--providers", default="cpu,cuda,tensorrt", show_default=True)
@click.option("--repeat", type=int, default=1, show_default=True, help="Latency runs (spread).")
@click.option("--gallery-size", type=int, default=5000, show_default=True)
@click.option("--ann", type=_PATH, help="ann.py JSON for the recall-vs-QPS plot.")
def bench(
    checkpoint: Path,
    out: Path,
    precisions: str,
    split_spec: str | None,
    data_root: Path | None,
    batch_sizes: str,
    warmup: int,
    iters: int,
    threads: int | None,
    providers: str,
    repeat: int,
    gallery_size: int,
    ann: Path | None,
) -> None:
    """Export CHECKPOINT (fp32/fp16/int8), measure latency and accuracy, write one table.

    Backends this machine cannot run are listed as unavailable, with the reason.

    \b
    Example:
      sketchsearch bench --checkpoint demo-output/run/best.ckpt --out bench/ --threads 2
    """
    from sketchsearch.benchmarks.latency import LatencyConfig, parse_ints
    from sketchsearch.benchmarks.targets import parse_providers

    config = BenchConfig(
        checkpoint=checkpoint,
        out=out,
        latency=LatencyConfig(
            models=(),  # the checkpoint and its exports, once made
            batch_sizes=parse_ints(batch_sizes),
            warmup=warmup,
            iters=iters,
            threads=threads,
            providers=parse_providers(providers),
            gallery_size=gallery_size,
            repeat=repeat,
        ),
        precisions=parse_providers(precisions),
        split=split_spec,
        data=data_root,
        ann=ann,
    )
    paths = run_bench(config)
    click.echo(paths["md"].read_text())
    click.echo(f"report: {paths['md']}, {paths['json']}, {paths['png']}")
