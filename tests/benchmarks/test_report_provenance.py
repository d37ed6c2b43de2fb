"""The report shows what its run measured: other machines' results are labelled or refused,
and no reason is cut off (issue 13 §1)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sketchsearch.benchmarks import report
from sketchsearch.benchmarks.ann import run_ann
from sketchsearch.benchmarks.machine_info import machine_fingerprint
from sketchsearch.benchmarks.provenance import ReportInputMismatch
from sketchsearch.benchmarks.targets import environment
from sketchsearch.data import strict_json

REPO = Path(__file__).resolve().parents[2]
COMMITTED_ANN = REPO / "benchmarks" / "results" / "ann-2026-11-29.json"
HEADING = "Measured "
LONG_REASON = (
    "--provider cuda: not available in this onnxruntime (available: AzureExecutionProvider, "
    "CPUExecutionProvider); install onnxruntime-gpu built for the CUDA major of this machine's "
    "driver, then check it with `python -m sketchsearch.runtime.cuda_stack` | see README"
)


def _row(backend: str, label: str, status: str = "ok", reason: str | None = None) -> dict:
    row: dict[str, Any] = {"file": "model.fp32.onnx", "backend": backend, "precision": "fp32"}
    row |= {"backend_label": label, "file_size_mb": 1.0, "status": status, "reason": reason}
    if status == "ok":
        row["batches"] = {"1": {"p50_ms": 1.5, "p99_ms": 2.5, "images_per_s": 600.0}}
    return row


@pytest.fixture(scope="module")
def latency() -> dict[str, Any]:
    """latency.py's JSON as measured on this machine (its real environment record)."""
    return {
        "date": "2026-11-30T01:00:00+00:00",
        "environment": environment(1),
        "settings": {"batch_sizes": [1], "warmup": 0, "iters": 2},
        "rows": [
            _row("ort-cpu", "onnxruntime CPU"),
            _row("ort-cuda", "onnxruntime CUDA", "unavailable", LONG_REASON),
            _row("ort-tensorrt", "onnxruntime TensorRT EP", "unavailable", LONG_REASON),
        ],
    }


@pytest.fixture(scope="module")
def ann_here() -> dict[str, Any]:
    """ann.py's JSON, really measured here (1,000 vectors, 50 queries: a few seconds)."""
    return run_ann((1000,), queries=50, argv=["benchmarks/ann.py", "--sizes", "1000"])


def test_machine_records_carry_a_fingerprint_of_this_machine(latency: dict) -> None:
    assert latency["environment"]["fingerprint"] == machine_fingerprint()
    assert len(machine_fingerprint()) == 12


def test_a_committed_ann_file_is_not_shown_under_this_machines_heading(
    latency: dict, tmp_path: Path
) -> None:
    """The old report drew the committed file (another host, no fingerprint) into the panel
    under "Measured … on <this machine>". Now it is a labelled section of its own."""
    ann = json.loads(COMMITTED_ANN.read_text())
    source = "benchmarks/results/ann-2026-11-29.json"
    paths = report.build_report(latency, None, tmp_path / "report", ann, sources={"ann": source})
    text = paths["md"].read_text()
    table_at = text.index("| File |")
    above_table = text[:table_at]
    assert above_table.startswith(HEADING) and "ANN" not in above_table
    section = text[text.index("### Not measured in this run") :]
    assert f"is from `{source}`, measured on AMD EPYC (2 cores, machine unrecorded)" in section
    assert "not this run's" in section
    payload = json.loads(paths["json"].read_text())
    assert payload["ann"]["this_machine"] is False
    assert payload["ann"]["provenance"]["source"] == source


def test_ann_from_another_fingerprint_is_labelled_with_its_machine_and_date(
    latency: dict, ann_here: dict, tmp_path: Path
) -> None:
    other = copy.deepcopy(ann_here)
    other["environment"]["fingerprint"] = "0123456789ab"
    other["date"] = "2026-11-29T10:00:00+00:00"
    paths = report.build_report(
        latency, None, tmp_path / "report", other, sources={"ann": "elsewhere/ann.json"}
    )
    text = paths["md"].read_text()
    assert "ANN (the plot's right panel): measured" not in text
    assert "is from `elsewhere/ann.json`, measured on " in text
    assert "machine 0123456789ab) on 2026-11-29 by `python benchmarks/ann.py --sizes 1000`" in text


def test_ann_measured_on_this_machine_is_listed_under_the_heading(
    latency: dict, ann_here: dict, tmp_path: Path
) -> None:
    paths = report.build_report(latency, None, tmp_path / "report", ann_here)
    text = paths["md"].read_text()
    above_table = text[: text.index("| File |")]
    day = ann_here["date"][:10]
    assert (
        f"ANN (the plot's right panel): measured {day} on this machine by `python " in above_table
    )
    assert "Not measured in this run" not in text
    payload = json.loads(paths["json"].read_text())
    assert payload["ann"]["this_machine"] is True and payload["ann"]["runs"] == [1000]
    assert [i["kind"] for i in payload["inputs"]] == ["latency"]
    assert payload["inputs"][0]["fingerprint"] == machine_fingerprint()


def test_a_long_unavailable_reason_appears_in_full(latency: dict, tmp_path: Path) -> None:
    """The old cell cut the reason at 90 characters; now the cell points to a footnote that
    holds all of it (one footnote for every row with that reason), and the JSON has it all."""
    paths = report.build_report(latency, None, tmp_path / "report")
    text = paths["md"].read_text()
    assert f"\n[^1]: {LONG_REASON}\n" in text  # in full, the "|" included
    cuda = next(line for line in text.splitlines() if "| onnxruntime CUDA |" in line)
    assert cuda.count("[^1]") == 1 and "unavailable: --provider cuda: not available" in cuda
    trt = next(line for line in text.splitlines() if "| onnxruntime TensorRT EP |" in line)
    assert "[^1]" in trt and "[^2]" not in text
    rows = json.loads(paths["json"].read_text())["rows"]
    assert [r["reason"] for r in rows if r["status"] == "unavailable"] == [LONG_REASON] * 2


def test_a_short_reason_stays_in_its_cell_without_a_footnote() -> None:
    row = report.combine(
        {"rows": [_row("ort-cuda", "onnxruntime CUDA", "unavailable", "no")]}, None
    )
    footnotes: dict[str, int] = {}
    assert report.cells(row[0], footnotes)[3] == "unavailable: no" and footnotes == {}


def test_latency_and_accuracy_from_two_machines_are_refused(latency: dict, tmp_path: Path) -> None:
    accuracy = {"date": latency["date"], "environment": dict(latency["environment"])}
    accuracy["environment"]["fingerprint"] = "0123456789ab"
    accuracy |= {"settings": {"split": "s.json:test"}, "rows": [], "reference": None}
    with pytest.raises(ReportInputMismatch, match="one table names one machine"):
        report.build_report(latency, accuracy, tmp_path / "report")
    files = {}
    for name, data in (("latency", latency), ("accuracy", accuracy)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(strict_json.dumps(data))
    args = ["--latency", str(files["latency"]), "--accuracy", str(files["accuracy"])]
    done = subprocess.run(  # as a script: one line and exit code 4 (mismatch), no traceback
        [
            sys.executable,
            str(REPO / "benchmarks" / "report.py"),
            *args,
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith("error: the latency results were measured on ")
    assert done.stderr.count("\n") == 1 and not (tmp_path / "r.md").exists()
