"""Checkpoint → ONNX in one precision, with its card, checked and verified before it lands.

The file is written under a temporary name and renamed only once it has passed
``onnx.checker`` and parity verification, so a failed export never leaves a model that looks
usable. A model trained with separate encoders is exported as one file per domain.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from sketchsearch.data.errors import UsageError
from sketchsearch.data.strict_json import dumps
from sketchsearch.export.graph import DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAMES, export_graph
from sketchsearch.export.images import ExportImages, check_calibration_count, resolve_images
from sketchsearch.export.int8_calibration import AUTO, CalibrationChoice, choose
from sketchsearch.export.onnx_file import check_full, set_card, simplify
from sketchsearch.export.precision import CALIBRATION_BATCH, to_fp16, to_int8
from sketchsearch.export.tensorrt_lint import LintReport, lint_model
from sketchsearch.export.verify import (
    VerificationError,
    VerificationReport,
    compare,
    load_images,
    onnx_embeddings,
    torch_embeddings,
    write_report,
)
from sketchsearch.runtime.engines.recommendation import recommendation_path
from sketchsearch.runtime.model_card import PRECISIONS, ModelCard
from sketchsearch.train.checkpoint_card import LoadedCheckpoint, load_with_card
from sketchsearch.train.run_folder import RunFolder


@dataclass(frozen=True)
class ExportOptions:
    checkpoint: Path
    output: Path
    precision: str = "fp32"
    opset: int = DEFAULT_OPSET
    dynamo: bool = True
    simplify: bool = True
    verify: bool = True
    input_dtype: str = "uint8"
    with_logits: bool = True
    calib_images: Path | None = None
    calib_split: str | None = None
    data_root: Path | None = None
    calib_count: int = 500
    calib_method: str = AUTO
    verify_count: int = 64


@dataclass(frozen=True)
class ExportResult:
    path: Path
    card: ModelCard
    nodes: int
    nodes_before_simplify: int
    size_bytes: int
    seconds: float
    verification: VerificationReport | None
    report_path: Path | None
    tensorrt_lint: LintReport
    skipped_calibration: list[str] = field(default_factory=list)
    calibration: CalibrationChoice | None = None


def export_onnx(
    options: ExportOptions, loaded: LoadedCheckpoint | None = None
) -> list[ExportResult]:
    """Export ``options.checkpoint``; ``loaded`` is that checkpoint when the caller has read it
    already (`sketchsearch bench` exports it in three precisions from one read)."""
    if options.precision not in PRECISIONS:
        raise UsageError(f"--precision {options.precision!r}: use one of {', '.join(PRECISIONS)}")
    if options.output.suffix != ".onnx":
        raise UsageError(f"--output {options.output}: the file name must end in .onnx")
    if not options.output.parent.is_dir():
        raise UsageError(f"--output {options.output}: folder {options.output.parent} not found")
    if loaded is None:
        loaded = load_with_card(options.checkpoint)  # the only read of the checkpoint file
    images = _images(options, loaded.run)
    domains = ["query", "gallery"] if loaded.model.config.separate_encoders else ["both"]
    return [_export_one(options, loaded, images, domain, len(domains) > 1) for domain in domains]


def _images(options: ExportOptions, run: RunFolder) -> ExportImages | None:
    needs_images = options.verify or options.precision == "int8"
    if not needs_images:
        return None
    images = resolve_images(
        run,
        options.calib_images,
        options.calib_split,
        options.data_root,
        options.calib_count,
        options.verify_count,
    )
    if images is None:
        purpose = "calibrate and verify" if options.precision == "int8" else "verify"
        raise UsageError(
            f"{options.checkpoint}: no images to {purpose} on (its run folder names no "
            "data); pass --calib-images DIR or --calib-split SPLIT --data ROOT"
            + ("" if options.precision == "int8" else ", or --no-verify")
        )
    if options.precision == "int8":
        check_calibration_count(len(images.calibration), CALIBRATION_BATCH)
    return images


def output_path(output: Path, domain: str, separate: bool) -> Path:
    return output.with_name(f"{output.stem}.{domain}.onnx") if separate else output


def _export_one(
    options: ExportOptions,
    loaded: LoadedCheckpoint,
    images: ExportImages | None,
    domain: str,
    separate: bool,
) -> ExportResult:
    start = time.perf_counter()
    target = output_path(options.output, domain, separate)
    graph_domain = "query" if domain == "both" else domain
    card = loaded.card.with_changes(
        precision=options.precision,
        domain=domain,
        input_name=INPUT_NAME,
        input_dtype=options.input_dtype,
        output_names=OUTPUT_NAMES if options.with_logits else OUTPUT_NAMES[:1],
    )
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
        fp32 = Path(scratch) / "fp32.onnx"
        export_graph(
            loaded.model,
            fp32,
            domain=graph_domain,
            input_dtype=options.input_dtype,
            with_logits=options.with_logits,
            opset=options.opset,
            dynamo=options.dynamo,
        )
        converted = _convert(options, fp32, Path(scratch), loaded, card, images)
        model = converted.model
        set_card(model, card)
        staged = Path(scratch) / "final.onnx"
        onnx.save(model, str(staged))
        check_full(staged)
        lint = lint_model(model)
        report_path = target.with_name(target.name + ".verify.json")
        if not lint.passed:
            warnings.warn(
                f"{target.name}: {lint.summary()}: no TensorRT engine can be built from it "
                f"(every finding: {report_path})",
                UserWarning,
                stacklevel=2,
            )
        header = {
            **_report_header(options, target, card),
            "tensorrt_lint": lint.to_dict(),
            "calibration": converted.calibration.to_dict() if converted.calibration else None,
        }
        report = None
        if not (options.verify and images is not None):
            report_path.write_text(dumps({**header, "verified": False}, indent=1) + "\n")
        else:
            report = converted.verification or verify_file(
                staged, loaded, card, images.verification, images.source
            )
            write_report(report, report_path, {**header, "verified": True})
            if not report.passed:
                raise VerificationError(
                    f"{target}: verification failed: {'; '.join(report.failures)} (report: "
                    f"{report_path}); the model was not written"
                )
        os.replace(staged, target)
        # Backend figures measured on the file this one replaces are not this file's.
        recommendation_path(target).unlink(missing_ok=True)
    return ExportResult(
        path=target,
        card=card,
        nodes=converted.nodes_after,
        nodes_before_simplify=converted.nodes_before,
        size_bytes=target.stat().st_size,
        seconds=time.perf_counter() - start,
        verification=report,
        report_path=report_path,
        tensorrt_lint=lint,
        skipped_calibration=converted.skipped_calibration,
        calibration=converted.calibration,
    )


@dataclass(frozen=True)
class _Converted:
    """The graph in its final precision, before its card is set."""

    model: onnx.ModelProto
    nodes_before: int
    nodes_after: int
    skipped_calibration: list[str] = field(default_factory=list)
    calibration: CalibrationChoice | None = None
    verification: VerificationReport | None = None  # int8: the chosen file's, already measured


def _convert(
    options: ExportOptions,
    fp32: Path,
    scratch: Path,
    loaded: LoadedCheckpoint,
    card: ModelCard,
    images: ExportImages | None,
) -> _Converted:
    if options.precision == "int8":
        assert images is not None
        return _quantize(options, fp32, scratch, loaded, card, images)
    model = onnx.load(str(fp32))
    if options.precision == "fp16":
        model = to_fp16(model)
    if not options.simplify:
        return _Converted(model, len(model.graph.node), len(model.graph.node))
    return _Converted(*simplify(model))


def _quantize(
    options: ExportOptions,
    fp32: Path,
    scratch: Path,
    loaded: LoadedCheckpoint,
    card: ModelCard,
    images: ExportImages,
) -> _Converted:
    """int8 with each candidate calibration method; the one closest to the checkpoint wins."""
    # Simplify first: quantization then sees the graph that will run.
    base = onnx.load(str(fp32))
    slim = simplify(base)[0] if options.simplify else base
    slim_path = scratch / "slim.onnx"
    onnx.save(slim, str(slim_path))
    skipped: list[str] = []

    def quantize(method: str) -> Path:
        quantized = scratch / f"int8.{method}.onnx"
        failed = to_int8(
            slim_path,
            quantized,
            images.calibration,
            card.preprocess,
            card.input_name,
            card.input_dtype,
            method,
        )
        skipped[:] = failed  # the same images each time: report them once
        return quantized

    def score(path: Path) -> VerificationReport:
        return verify_file(path, loaded, card, images.verification, images.source)

    chosen, calibration, verification = choose(options.calib_method, quantize, score)
    model = onnx.load(str(chosen))
    nodes = len(model.graph.node)
    return _Converted(model, nodes, nodes, skipped, calibration, verification)


def verify_file(
    path: Path,
    loaded: LoadedCheckpoint,
    card: ModelCard,
    image_paths: tuple[Path, ...] | list[Path],
    source: str,
) -> VerificationReport:
    """torch (the checkpoint) against onnxruntime (the file) on the same uint8 batch."""
    batch, skipped = load_images(image_paths, card.preprocess)
    domain = "query" if card.domain == "both" else card.domain
    reference = torch_embeddings(loaded.model, batch, domain)
    candidate = (
        onnx_embeddings(path, batch, card.input_name, card.input_dtype)
        if len(batch)
        else np.empty((0, card.embed_dim))
    )
    return compare(reference, candidate, card.precision, source, skipped)


def _report_header(options: ExportOptions, target: Path, card: ModelCard) -> dict[str, object]:
    return {
        "model": str(target),
        "checkpoint": str(options.checkpoint),
        "checkpoint_sha256": card.checkpoint_sha256,
        "domain": card.domain,
        "exporter": "dynamo" if options.dynamo else "torchscript",
        "opset": options.opset,
    }


def read_report(path: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def verify_existing(
    checkpoint: Path,
    model_path: Path,
    calib_images: Path | None = None,
    calib_split: str | None = None,
    data_root: Path | None = None,
    verify_count: int = 64,
) -> VerificationReport:
    """Re-verify an exported file against its checkpoint (e.g. after copying it around)."""
    from sketchsearch.export.onnx_file import get_card, load_model

    model = load_model(model_path)
    card = get_card(model, str(model_path))
    loaded = load_with_card(checkpoint, card.precision)
    if loaded.card.checkpoint_sha256 != card.checkpoint_sha256:
        raise VerificationError(
            f"{model_path}: exported from checkpoint {card.checkpoint_sha256[:12]}, not from "
            f"{checkpoint} ({loaded.card.checkpoint_sha256[:12]})"
        )
    images = resolve_images(
        loaded.run, calib_images, calib_split, data_root, verify_count, verify_count
    )
    if images is None:
        raise UsageError(
            f"{checkpoint}: no images to verify on; pass --calib-images DIR or --calib-split"
        )
    return verify_file(model_path, loaded, card, images.verification, images.source)
