"""The steps of a benchmark run and how each ended, so that report.py has a row for every one.

``benchmarks/gpu.sh`` runs one command per model file (ONNX export, TensorRT engine build and
verification, after linking the verification images) and then the gallery, latency and
accuracy steps. A step that fails leaves no file behind, and without a record its row would
vanish from the report or read as a bare "model file not found". So gpu.sh appends every
outcome to ``OUT/steps.json``:

    python benchmarks/steps.py OUT/steps.json --file model.int8.onnx --stage export \\
        --precision int8 [--failed-log OUT/logs/model.int8.onnx.log | --failed-reason TEXT]

and ``report.py --steps OUT/steps.json`` turns each failed one into a row that reads
"failed: <stage>: <reason>": the reason is the log's last non-empty line, which is where the
commands print their one-line error. ``--unavailable-reason TEXT`` records a step that was not
run because this machine cannot (stage ``tensorrt``: the native TensorRT rows when the
TensorRT stack check crashed); its row reads "unavailable: <reason>". The entries have the
shape of ``bench``'s exports.json.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sketchsearch.data import strict_json

KIND = "sketchsearch-steps"
STAGE_LABELS = {
    "export": "ONNX export",
    "verify-images": "verification images (64 of the val part)",
    "engine": "TensorRT engine build and verification",
    "tensorrt": "TensorRT",  # the native TensorRT rows, when they cannot run at all
    "gallery": "gallery build",
    "latency": "latency.py",
    "accuracy": "accuracy.py",
}


def last_line(text: str) -> str:
    """The last non-empty line, whitespace collapsed, without the CLI's "error: " prefix."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    last = next((line for line in reversed(lines) if line), "no output")
    return last.removeprefix("error: ")


def step_entry(
    file: Path, stage: str, precision: str, reason: str | None = None, status: str = "failed"
) -> dict[str, Any]:
    """One step's outcome; ``reason`` None means it succeeded, else it is ``status`` ("failed"
    or "unavailable") for that reason."""
    if status not in ("failed", "unavailable"):
        raise ValueError(f"status {status!r}: not failed or unavailable")
    size = file.stat().st_size / 1e6 if reason is None and file.is_file() else None
    return {
        "file": file.name,
        "backend": stage,
        "backend_label": STAGE_LABELS[stage],
        "stage": stage,
        "precision": precision,
        "file_size_mb": round(size, 3) if size is not None else None,
        "status": "ok" if reason is None else status,
        "reason": reason,
    }


def read_steps(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    if data.get("kind") != KIND:
        raise ValueError(f"{path}: not a {KIND} file (kind {data.get('kind')!r})")
    return list(data["steps"])


def record_step(path: Path, entry: dict[str, Any]) -> None:
    """Append ``entry``; written to a temporary file and renamed, so a crash leaves the old."""
    steps = [*read_steps(path), entry]
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(strict_json.dumps({"kind": KIND, "steps": steps}, indent=1) + "\n")
    os.replace(staged, path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("steps", type=Path, help="The steps file (created when missing).")
    parser.add_argument("--file", type=Path, required=True, help="What the step writes.")
    parser.add_argument("--stage", choices=sorted(STAGE_LABELS), required=True)
    parser.add_argument("--precision", default="—")
    failed = parser.add_mutually_exclusive_group()
    failed.add_argument("--failed-log", type=Path, help="Failed; the reason ends this log.")
    failed.add_argument("--failed-reason", help="Failed, for this reason.")
    failed.add_argument("--unavailable-reason", help="Not run: this machine cannot, because.")
    args = parser.parse_args(argv)
    reason = args.failed_reason
    if args.failed_log is not None:
        reason = last_line(args.failed_log.read_text(errors="replace"))
    status = "failed"
    if args.unavailable_reason is not None:
        reason, status = args.unavailable_reason, "unavailable"
    record_step(args.steps, step_entry(args.file, args.stage, args.precision, reason, status))


if __name__ == "__main__":
    main()
