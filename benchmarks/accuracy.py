"""Retrieval metrics per artefact through the real runtime and gallery, with deltas against the
torch reference (the checkpoint run in torch eager).

    python benchmarks/accuracy.py --model run/best.ckpt --model model.fp32.onnx \\
        --model model.int8.onnx --split split.json:test --data DATA --json accuracy.json

Each artefact (and backend, as in ``latency.py``) embeds the split part's gallery-domain
images into its own gallery with ``build_gallery``, then ``runtime.evaluation.evaluate``
embeds the queries and scores them: the metrics are those of ``sketchsearch evaluate``
(definitions in ``runtime/evaluation/metrics.py``), taken from the HNSW search that serving
uses; the exhaustive-search figures are kept beside them. Deltas are artefact minus reference.
"""

from __future__ import annotations

import argparse
import datetime
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sketchsearch.benchmarks.targets import (
    Target,
    environment,
    list_targets,
    measure_row,
    model_help,
    parse_providers,
)
from sketchsearch.data.errors import UsageError
from sketchsearch.data.evaluation import evaluation_set
from sketchsearch.data.split_spec import SplitPart, parse_split_spec
from sketchsearch.data.strict_json import dumps, undefined_as_null
from sketchsearch.gallery.store_table import open_gallery
from sketchsearch.runtime.engines.protocol import Engine
from sketchsearch.runtime.evaluation.evaluate import evaluate
from sketchsearch.runtime.gallery_build import build_gallery, split_source, split_sources
from sketchsearch.runtime.retriever import model_ref

REFERENCE_BACKENDS = ("torch-cpu", "torch-cuda")  # the first one that ran is the reference


@dataclass(frozen=True)
class AccuracyConfig:
    models: tuple[Path, ...]
    split: str  # "split.json:test"
    data: Path | None
    providers: tuple[str, ...] = ("cpu", "cuda", "tensorrt")
    direction: tuple[str, str] | None = None  # (query domain, gallery domain)
    batch_size: int = 32
    threads: int | None = None
    workdir: Path | None = None  # where the galleries go; None: a temporary folder


def measure_target(
    target: Target, part: SplitPart, config: AccuracyConfig, folder: Path
) -> dict[str, Any]:
    """Build this artefact's gallery from the split's gallery domain, then evaluate on it."""
    return measure_row(
        target, config.threads, lambda engine: measure_engine(engine, part, config, folder)
    )


def measure_engine(
    engine: Engine, part: SplitPart, config: AccuracyConfig, folder: Path
) -> dict[str, Any]:
    """Metrics and timings of one open engine, on a gallery it builds in ``folder``."""
    sets = evaluation_set(part.split, part.part, config.direction)
    sources = split_sources(part, sets.gallery_domain)
    built = build_gallery(
        engine,
        folder,
        part.root,
        sources,
        config.batch_size,
        progress=False,
        source=split_source(part, sets.gallery_domain),
    )
    with open_gallery(folder, expected_model=model_ref(engine.card)) as gallery:
        result = evaluate(engine, gallery, part, config.direction, batch_size=config.batch_size)
    return {
        "metrics": result.hnsw,
        "exact": result.exact,
        "queries": result.queries,
        "gallery_items": result.gallery_items,
        "direction": result.direction,
        "failures": [str(f) for f in [*built.failed, *result.failures]],
        "seconds": {"gallery": round(built.seconds, 3), **result.seconds},
    }


def add_deltas(rows: list[dict[str, Any]]) -> str | None:
    """``delta_vs_reference`` on every measured row; returns the reference row's key."""
    ok = [r for r in rows if r["status"] == "ok"]
    reference = next((r for name in REFERENCE_BACKENDS for r in ok if r["backend"] == name), None)
    if reference is None:
        return None
    for row in ok:
        same = row.get("family") == reference.get("family")
        row["delta_vs_reference"] = (
            {k: round(v - reference["metrics"][k], 6) for k, v in row["metrics"].items()}
            if same
            else None  # another model: no delta is meaningful
        )
    return f"{reference['file']}:{reference['backend']}"


def run_accuracy(config: AccuracyConfig) -> dict[str, Any]:
    part = parse_split_spec(config.split, config.data)
    targets = list_targets(config.models, config.providers)
    with tempfile.TemporaryDirectory(prefix="accuracy-") as tmp:
        base = config.workdir or Path(tmp)
        rows = [
            measure_target(t, part, config, base / re.sub(r"[^\w.-]+", "_", t.key)) for t in targets
        ]
    reference = add_deltas(rows)
    return {
        "kind": "sketchsearch-accuracy",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "environment": environment(config.threads),
        "settings": {
            "split": config.split,
            "data": str(part.root),
            "direction": "2".join(config.direction) if config.direction else "split order",
            "match": "category",
            "providers": list(config.providers),
            "metrics_from": "hnsw (as served); 'exact' holds exhaustive search",
        },
        "reference": reference,
        "rows": rows,
    }


def parse_args(argv: Sequence[str] | None) -> tuple[AccuracyConfig, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--model", type=Path, action="append", required=True, help=model_help())
    add("--split", required=True, metavar="SPLIT[:PART]", help="e.g. split.json:test")
    add("--data", type=Path, help="Data root of --split (default: the one it records).")
    add("--providers", default="cpu,cuda,tensorrt", help="onnxruntime providers to try.")
    add("--direction", choices=["sketch2photo", "photo2sketch"])
    add("--batch-size", type=int, default=32)
    add("--threads", type=int)
    add("--workdir", type=Path, help="Keep the galleries here (default: temporary).")
    add("--json", type=Path, help="Write the results here.")
    args = parser.parse_args(argv)
    direction: tuple[str, str] | None = None
    if args.direction:
        query_domain, gallery_domain = args.direction.split("2")
        direction = (query_domain, gallery_domain)
    config = AccuracyConfig(
        models=tuple(args.model),
        split=args.split,
        data=args.data,
        providers=parse_providers(args.providers),
        direction=direction,
        batch_size=args.batch_size,
        threads=args.threads,
        workdir=args.workdir,
    )
    return config, args.json


def describe_row(row: dict[str, Any]) -> str:
    head = f"{row['file']:<28} {row['backend']:<16} {row['precision']:<14}"
    if row["status"] != "ok":
        return f"{head} {row['status']}: {row['reason']}"
    m, d = row["metrics"], row.get("delta_vs_reference") or {}
    delta = f" (Δ {d['mAP@all']:+.4f})" if "mAP@all" in d else ""
    return (
        f"{head} mAP@all {m['mAP@all']:.4f}{delta}, P@100 {m['P@100']:.4f}, "
        f"recall@1 {m['recall@1']:.4f}"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config, json_path = parse_args(argv)
    if config.workdir is not None and config.workdir.exists() and any(config.workdir.iterdir()):
        raise UsageError(f"--workdir {config.workdir}: not empty (galleries are created there)")
    report = run_accuracy(config)
    for row in report["rows"]:
        print(describe_row(row))
    if json_path is not None:
        json_path.write_text(dumps(undefined_as_null(report), indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
