"""The benchmark scripts on a really trained tiny model, with tiny iteration counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
from gpu_presence import has_cuda, has_tensorrt

from sketchsearch.benchmarks import accuracy, latency, report, steps, targets
from sketchsearch.benchmarks.make_checkpoint import make_checkpoint
from sketchsearch.export.pipeline import ExportOptions, export_onnx

REPO = Path(__file__).resolve().parents[2]
ANN = sorted((REPO / "benchmarks" / "results").glob("ann-*.json"))
STATS = {"min_ms", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "images_per_s"}
METRICS = {"mAP@all", "mAP@200", "P@1", "P@100", "P@200", "recall@1", "recall@5", "recall@10"}


@pytest.fixture(scope="module")
def models(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bench-models")
    options = ExportOptions(checkpoint=tiny_run / "best.ckpt", output=out / "model.fp32.onnx")
    (result,) = export_onnx(options)
    return {"ckpt": tiny_run / "best.ckpt", "onnx": result.path, "plan": out / "model.fp32.plan"}


@pytest.fixture(scope="module")
def latency_json(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("latency") / "latency.json"
    args = ["--model", str(models["ckpt"]), "--model", str(models["onnx"])]
    args += ["--model", str(models["plan"]), "--batch-sizes", "1,2", "--warmup", "1"]
    args += ["--iters", "3", "--threads", "1", "--gallery-size", "64", "--repeat", "2"]
    latency.main([*args, "--json", str(path)])
    return path


@pytest.fixture(scope="module")
def accuracy_json(
    models: dict[str, Path], split_args: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("accuracy") / "accuracy.json"
    args = ["--model", str(models["ckpt"]), "--model", str(models["onnx"]), *split_args]
    accuracy.main([*args, "--providers", "cpu,cuda,tensorrt", "--json", str(path)])
    return path


def rows_by_backend(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    return {row["backend"]: row for row in data["rows"]}


def test_latency_json_has_every_column(latency_json: Path) -> None:
    data = json.loads(latency_json.read_text())
    assert {"cpu", "cores", "threads", "gpu", "onnxruntime", "torch"} <= set(data["environment"])
    rows = rows_by_backend(latency_json)
    for backend in ("torch-cpu", "ort-cpu", "openvino-cpu"):
        row = rows[backend]
        assert row["status"] == "ok" and row["reason"] is None
        assert set(row["batches"]) == {"1", "2"}
        for stats in row["batches"].values():
            assert set(stats) == STATS and 0 < stats["min_ms"] <= stats["p50_ms"]
            assert stats["p50_ms"] <= stats["p99_ms"] and stats["images_per_s"] > 0
        assert set(row["end_to_end"]) == {"decode_preprocess", "embed", "search", "total"}
        assert all(stage["p50_ms"] > 0 for stage in row["end_to_end"].values())
        assert len(row["repeat"]["p50_ms"]) == 2 and row["repeat"]["p50_spread"] >= 0
        assert row["file_size_mb"] > 0 and row["precision"] == "fp32"
    (ratio,) = data["ratios_vs_torch_eager"]
    assert ratio["row"] == "model.fp32.onnx:ort-cpu" and ratio["ratio"] > 0


def test_latency_reports_unavailable_backends_with_a_reason(latency_json: Path) -> None:
    rows = rows_by_backend(latency_json)
    assert set(rows) == set(targets.BACKEND_LABELS)  # every backend has a row, runnable or not
    gone = ort.get_available_providers()
    expected = {
        "torch-cuda": not has_cuda(),
        "torch-cuda-fp16": not has_cuda(),
        "ort-cuda": "CUDAExecutionProvider" not in gone,
        "ort-tensorrt": "TensorrtExecutionProvider" not in gone,
        "tensorrt": not has_tensorrt(),
    }
    for backend, unavailable in expected.items():
        if unavailable:
            row = rows[backend]
            assert row["status"] == "unavailable" and row["reason"], row
            assert "batches" not in row and "end_to_end" not in row  # no numbers made up


def test_accuracy_json_has_metrics_and_deltas(accuracy_json: Path) -> None:
    data = json.loads(accuracy_json.read_text())
    assert data["reference"] == "best.ckpt:torch-cpu"
    rows = rows_by_backend(accuracy_json)
    for backend in ("torch-cpu", "ort-cpu", "openvino-cpu"):
        row = rows[backend]
        assert row["status"] == "ok" and set(row["metrics"]) == METRICS
        assert set(row["exact"]) == METRICS and row["queries"] > 0 and row["gallery_items"] > 0
        assert set(row["delta_vs_reference"]) == METRICS
    assert rows["torch-cpu"]["delta_vs_reference"]["mAP@all"] == 0.0
    assert abs(rows["ort-cpu"]["delta_vs_reference"]["mAP@all"]) < 0.01  # fp32 export
    # OpenVINO runs the same .onnx: the same ranking as onnxruntime.
    assert rows["openvino-cpu"]["metrics"]["mAP@all"] == pytest.approx(
        rows["ort-cpu"]["metrics"]["mAP@all"], abs=1e-3
    )
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert rows["ort-cuda"]["status"] == "unavailable" and "metrics" not in rows["ort-cuda"]


def test_report_combines_into_markdown_json_and_png(
    latency_json: Path, accuracy_json: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    args = ["--latency", str(latency_json), "--accuracy", str(accuracy_json), "--out", str(out)]
    if ANN:
        args += ["--ann", str(ANN[-1])]
    done = subprocess.run(  # as a script, the way the README runs it
        [sys.executable, str(REPO / "benchmarks" / "report.py"), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    text = out.with_name("report.md").read_text()
    assert text == done.stdout.rstrip("\n") + "\n"
    assert "| " + " | ".join(report.COLUMNS) + " |" in text
    env = json.loads(latency_json.read_text())["environment"]
    assert env["cpu"] in text and json.loads(latency_json.read_text())["date"][:10] in text
    assert "| `model.fp32.onnx` | onnxruntime CPU | fp32 | ok |" in text
    payload = json.loads(out.with_name("report.json").read_text())
    assert payload["columns"] == list(report.COLUMNS)
    by_key = {row["key"]: row for row in payload["rows"]}
    ok = by_key["model.fp32.onnx:ort-cpu"]
    assert ok["mAP@all"] is not None and ok["p50_ms_batch1"] > 0 and ok["best_batch"] in (1, 2)
    if not has_tensorrt():
        plan = by_key["model.fp32.plan:tensorrt"]
        assert plan["status"] == "unavailable" and plan["p50_ms_batch1"] is None
        assert "| `model.fp32.plan` | TensorRT | fp32 | unavailable: " in text
    assert out.with_name("report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_export_is_a_failed_row() -> None:
    entry: dict[str, Any] = {"file": "model.int8.onnx", "backend": "export"}
    entry |= {"backend_label": "ONNX export", "precision": "int8", "file_size_mb": None}
    entry |= {"status": "failed", "reason": "bad"}
    (row,) = report.combine(None, None, {"exports": [entry]})
    assert row["status"] == "failed" and row["reason"] == "export: bad"
    assert report.cells(row)[3] == "failed: export: bad" and report.cells(row)[5] == "—"


def test_failed_steps_become_rows_and_steps_that_worked_add_none(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    log.write_text("[I] building\nerror: verification failed: cosine 0.91 < 0.999\n\n")
    path = tmp_path / "steps.json"
    engine = ["--file", "model.fp16.plan", "--stage", "engine", "--precision", "fp16"]
    steps.main([str(path), *engine, "--failed-log", str(log)])
    steps.main([str(path), "--file", "gallery", "--stage", "gallery"])
    steps.main(
        [str(path), "--file", "accuracy.json", "--stage", "accuracy", "--failed-reason", "x"]
    )
    recorded = json.loads(path.read_text())
    assert [e["status"] for e in recorded["steps"]] == ["failed", "ok", "failed"]
    row: dict[str, Any] = {"file": "model.fp16.plan", "backend": "tensorrt", "precision": "fp16"}
    row |= {"backend_label": "TensorRT", "file_size_mb": None, "status": "unavailable"}
    row |= {"reason": "TensorRT is not installed"}
    rows = report.combine({"rows": [row]}, None, None, recorded)
    assert [(r["file"], r["status"], r["reason"]) for r in rows] == [
        ("model.fp16.plan", "failed", "engine: verification failed: cosine 0.91 < 0.999"),
        ("accuracy.json", "failed", "accuracy: x"),  # no row of its own to join: one is added
    ]
    paths = report.build_report(None, None, tmp_path / "report", steps=recorded)  # steps alone
    assert "| `accuracy.json` | accuracy.py | — | failed: accuracy: x |" in paths["md"].read_text()


def test_make_checkpoint_writes_what_the_loaders_accept(tmp_path: Path) -> None:
    from sketchsearch.train.checkpoint import load_checkpoint
    from sketchsearch.train.torch_engine import TorchEngine

    path = make_checkpoint(tmp_path / "ckpt" / "best.ckpt", "test_efficientnet", 64, 16, 3)
    model = load_checkpoint(path, backbone="test_efficientnet", embed_dim=16, num_classes=3)
    assert model.config.img_size == 64
    engine = TorchEngine(path, device="cpu", threads=1)
    assert engine.card.class_names == ("class_0", "class_1", "class_2")
    import numpy as np

    vectors = engine.embed(np.zeros((2, 64, 64, 3), np.uint8))
    assert vectors.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
