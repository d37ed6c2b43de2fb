"""What `sketchsearch export onnx` prints and writes about each exported file."""

from __future__ import annotations

from typing import Any

from sketchsearch.export.pipeline import ExportResult


def describe_result(result: ExportResult) -> str:
    card = result.card
    lines = [
        f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB, {card.precision}, "
        f"{card.backbone}, dim {card.embed_dim}, input {card.input_dtype} NHWC "
        f"{card.input_size}×{card.input_size}, domain {card.domain}) in {result.seconds:.1f} s",
        f"  graph: {result.nodes} nodes"
        + (
            f" (onnxslim: {result.nodes_before_simplify} → {result.nodes})"
            if result.nodes != result.nodes_before_simplify
            else ""
        ),
    ]
    report = result.verification
    if report is None:
        lines.append("  verification: skipped (--no-verify)")
    else:
        lines.append(f"  verification passed: {report.describe()}")
    lines.append(f"  report: {result.report_path}")
    lint = result.tensorrt_lint
    mark = "✓" if lint.passed else "x"
    lines.append(f"  -[{mark}] {lint.summary()}")
    lines.extend(f"      {line}" for line in lint.lines()[:5])
    if result.calibration is not None:
        lines.append(f"  {result.calibration.describe()}")
    if result.skipped_calibration:
        lines.append(f"  {len(result.skipped_calibration)} calibration image(s) unreadable:")
        lines.extend(f"    {line}" for line in result.skipped_calibration[:5])
    return "\n".join(lines)


def result_dict(result: ExportResult) -> dict[str, Any]:
    return {
        "path": str(result.path),
        "precision": result.card.precision,
        "domain": result.card.domain,
        "size_bytes": result.size_bytes,
        "nodes": result.nodes,
        "nodes_before_simplify": result.nodes_before_simplify,
        "seconds": round(result.seconds, 3),
        "verification": result.verification.to_dict() if result.verification else None,
        "tensorrt_lint": result.tensorrt_lint.to_dict(),
        "calibration": result.calibration.to_dict() if result.calibration else None,
    }
