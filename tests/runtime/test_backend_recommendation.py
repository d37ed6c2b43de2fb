"""The backend recommendation's round trip: measured and written beside the model, read back,
used by ``retrieve`` (single queries) and ``gallery build`` (batches), which say so on stderr;
``--backend`` overrides; another machine's file, another file's (size or content), other usable
CPUs or threads, a damaged file, or a backend that is not installed is set aside with a note;
a backend whose embeddings differ from the default's is never recommended; without a file
nothing changes.

The model is a real export of the tiny trained model; the figures the commands read are
written by hand where the test needs a given winner (a measured winner on 2 shared cores is
whichever ran faster that second).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sketchsearch.benchmarks import latency
from sketchsearch.benchmarks.backend_recommendation import parity_entry, write_recommendations
from sketchsearch.cli.main import cli, run
from sketchsearch.data.split_spec import parse_split_spec
from sketchsearch.export.pipeline import ExportOptions, export_onnx
from sketchsearch.runtime.engines.backend_choice import BackendChoice, choose_backend
from sketchsearch.runtime.engines.recommendation import (
    PARITY_COSINE,
    BackendRecommendation,
    Candidate,
    RecommendationError,
    pick,
    read_recommendation,
    recommend,
    recommendation_path,
    write_recommendation,
)
from sketchsearch.runtime.machine import available_cpus, machine_fingerprint


@pytest.fixture
def model(tiny_onnx: Path, tmp_path: Path) -> Path:
    """A fresh copy per test: each writes its own recommendation beside it."""
    return Path(shutil.copy(tiny_onnx, tmp_path / "model.onnx"))


MEASURED = {
    "machine": machine_fingerprint(),
    "cpu": "test CPU",
    "cpus": available_cpus(),
    "threads": 2,
    "date": "2026-11-30T00:00:00+00:00",
    "command": "test",
}
ROWS = {"onnxruntime": "ort-cpu", "openvino": "openvino-cpu"}


def hand_written(
    model: Path, single: str = "onnxruntime", batch: str = "openvino", parity: float = 0.99999
) -> Path:
    """A recommendation for this machine: ``single`` is faster at batch 1, ``batch`` at batch
    32; OpenVINO's embeddings reached ``parity`` against onnxruntime's."""
    ms = {single: 3.0, ({"onnxruntime", "openvino"} - {single}).pop(): 4.0}
    rate = {batch: 1210.0, ({"onnxruntime", "openvino"} - {batch}).pop(): 905.0}
    cosine = {"onnxruntime": None, "openvino": parity}
    found = recommend(
        model,
        MEASURED,
        [Candidate(n, ROWS[n], "cpu", 1, value, cosine[n]) for n, value in ms.items()],
        [Candidate(n, ROWS[n], "cpu", 32, value, cosine[n]) for n, value in rate.items()],
        "onnxruntime",
    )
    return write_recommendation(model, found)


def test_latency_writes_a_recommendation_that_reads_back(model: Path, capsys) -> None:
    args = ["--model", str(model), "--batch-sizes", "1,8", "--warmup", "1", "--iters", "3"]
    report = latency.main([*args, "--providers", "cpu", "--gallery-size", "50", "--recommend"])
    out = capsys.readouterr().out
    assert f"recommendation: {recommendation_path(model)}" in out
    assert "parity model.onnx on openvino: cosine min " in out
    found = read_recommendation(model)
    assert found is not None and found.machine == machine_fingerprint()
    assert (found.model, found.model_size) == ("model.onnx", model.stat().st_size)
    assert (found.cpus, found.threads) == (available_cpus(), None)
    assert found.single is not None and found.batch is not None
    rows = {row["backend"]: row for row in report["rows"]}
    single = {c.row: c.value for c in found.single.candidates}
    batch = {c.row: c.value for c in found.batch.candidates}
    assert single == {key: rows[key]["batches"]["1"]["p50_ms"] for key in rows}
    assert batch == {key: rows[key]["batches"]["8"]["images_per_s"] for key in rows}
    # The fp32 file embeds alike on both backends, so OpenVINO may win: by 5 % at least.
    parity = {c.backend: c.parity for c in found.single.candidates}
    assert parity["onnxruntime"] is None and (parity["openvino"] or 0) >= 0.9999
    ort_ms, ov_ms = single["ort-cpu"], single["openvino-cpu"]
    ort_ips, ov_ips = batch["ort-cpu"], batch["openvino-cpu"]
    assert found.single.backend == ("openvino" if ov_ms * 1.05 <= ort_ms else "onnxruntime")
    assert found.batch.backend == ("openvino" if ov_ips >= ort_ips * 1.05 else "onnxruntime")
    path = recommendation_path(model)
    assert BackendRecommendation.from_json(path.read_text(), str(path)) == found


def test_an_int8_file_holds_other_backends_to_its_export_bar(
    tiny_run: Path, tmp_path: Path, capsys
) -> None:
    """OpenVINO runs a quantized graph with its own int8 kernels: cosine 0.9994 against
    onnxruntime on the tiny model (0.998 on the demo), below the float bar but inside the
    0.98 an int8 export is held to against its checkpoint, so it competes on speed."""
    split, data = tiny_run.parent / "split.json", tiny_run.parent / "data"
    options = ExportOptions(
        checkpoint=tiny_run / "best.ckpt",
        output=tmp_path / "model.int8.onnx",
        precision="int8",
        calib_split=f"{split}:train",
        data_root=data,
    )
    (result,) = export_onnx(options)
    args = ["--model", str(result.path), "--batch-sizes", "1,8", "--warmup", "1", "--iters", "3"]
    report = latency.main([*args, "--providers", "cpu", "--gallery-size", "20", "--recommend"])
    assert "(may be recommended, needs >= 0.98)" in capsys.readouterr().out
    found = read_recommendation(result.path)
    assert found is not None and found.single is not None and found.batch is not None
    assert found.single.parity_bar == found.batch.parity_bar == 0.98
    parity = {c.backend: c.parity for c in found.batch.candidates}
    assert parity["onnxruntime"] is None
    assert parity["openvino"] is not None and 0.98 <= parity["openvino"] < PARITY_COSINE
    rows = {row["backend"]: row["batches"] for row in report["rows"]}
    ort_ms, ov_ms = rows["ort-cpu"]["1"]["p50_ms"], rows["openvino-cpu"]["1"]["p50_ms"]
    assert found.single.backend == ("openvino" if ov_ms * 1.05 <= ort_ms else "onnxruntime")
    # the same file's figures held to the float bar: OpenVINO is left out
    assert pick("single", list(found.single.candidates), "onnxruntime").backend == "onnxruntime"


def test_another_backend_must_beat_the_default_by_the_margin() -> None:
    def single(ort_ms: float, openvino_ms: float) -> str | None:
        candidates = [
            Candidate("onnxruntime", "ort-cpu", "cpu", 1, ort_ms),
            Candidate("openvino", "openvino-cpu", "cpu", 1, openvino_ms, 1.0),
        ]
        chosen = pick("single", candidates, "onnxruntime")
        return chosen.backend if chosen else None

    def batch(ort_ips: float, openvino_ips: float) -> str | None:
        candidates = [
            Candidate("onnxruntime", "ort-cpu", "cpu", 8, ort_ips),
            Candidate("openvino", "openvino-cpu", "cpu", 8, openvino_ips, 1.0),
        ]
        chosen = pick("batch", candidates, "onnxruntime")
        return chosen.backend if chosen else None

    assert single(3.0, 2.0) == "openvino"
    assert single(3.0, 2.9) == "onnxruntime"  # 3.4 % faster: inside the margin
    assert single(2.0, 3.0) == "onnxruntime"
    assert batch(900.0, 1000.0) == "openvino"
    assert batch(1000.0, 1040.0) == "onnxruntime"
    alone = Candidate("openvino", "openvino-cpu", "cpu", 8, 1.0, 1.0)  # its parity: 1.0
    assert pick("batch", [alone], "onnxruntime")
    assert pick("single", [], "onnxruntime") is None


def test_a_damaged_or_foreign_file_is_refused_by_the_reader(model: Path) -> None:
    path = hand_written(model)
    path.write_text(path.read_text().replace('"threads"', '"thread_count"'))
    with pytest.raises(RecommendationError, match="unexpected keys"):
        read_recommendation(model)
    path.write_text('{"format": "sketchsearch-backend-recommendation", "format_version": 9}')
    with pytest.raises(RecommendationError, match="format version 9"):
        read_recommendation(model)


def test_the_choice_per_workload_and_its_note(model: Path) -> None:
    assert choose_backend(model, None, "single") == choose_backend(model, None, "batch")
    assert choose_backend(model, None, "single").note is None  # no file: as before
    hand_written(model, single="onnxruntime", batch="openvino")
    batch = choose_backend(model, None, "batch")
    assert (batch.backend, batch.device) == ("openvino", "cpu")
    assert batch.note == (
        "backend: openvino (recommended for batches by model.onnx.backends.json: "
        "engine alone, batch 32: 1,210 vs 905 img/s)"
    )
    # The default won: nothing is pinned, onnxruntime picks its best provider as before.
    assert choose_backend(model, None, "single") == BackendChoice(
        None,
        None,
        "backend: onnxruntime (recommended for single queries by model.onnx.backends.json: "
        "engine alone, batch 1: p50 3.00 vs 4.00 ms)",
    )
    assert choose_backend(model, "onnxruntime", "batch").note == "backend: onnxruntime (--backend)"
    assert choose_backend(model, None, "batch", provider="cpu").backend is None  # onnxruntime's


def test_a_backend_that_embeds_differently_is_not_recommended(model: Path) -> None:
    """A float file: 0.998 (int8 kernels' difference) is below its bar of 0.9999."""
    hand_written(model, single="openvino", batch="openvino", parity=0.998)
    for workload in ("single", "batch"):
        choice = choose_backend(model, None, workload)
        assert choice.backend is None and choice.device is None
        assert choice.note is not None and choice.note.startswith("backend: onnxruntime (")
        assert "openvino left out: cosine 0.998000 < 0.9999" in choice.note
    found = read_recommendation(model)
    assert found is not None and found.batch is not None
    assert {c.backend: c.parity for c in found.batch.candidates} == {
        "onnxruntime": None,
        "openvino": 0.998,
    }
    unchecked = [Candidate("openvino", "openvino-cpu", "cpu", 1, 1.0)]  # parity unknown
    assert pick("single", unchecked, "onnxruntime") is None
    assert pick("single", [replace(unchecked[0], parity=PARITY_COSINE)], "onnxruntime")
    at_int8_bar = [replace(unchecked[0], parity=0.998)]
    assert pick("single", at_int8_bar, "onnxruntime") is None
    chosen = pick("single", at_int8_bar, "onnxruntime", parity_bar=0.98)
    assert chosen is not None and chosen.backend == "openvino" and chosen.parity_bar == 0.98


def report_for(
    model: Path, ms: dict[str, float], threads: int | None = 2, precision: str = "fp32"
) -> dict[str, Any]:
    """A latency report as latency.py writes it: one batch-1 row per backend named in ``ms``."""
    rows = [
        {
            "model": str(model),
            "backend": ROWS[name],
            "status": "ok",
            "precision": precision,
            "batches": {"1": {"p50_ms": value, "images_per_s": 1000 / value}},
        }
        for name, value in ms.items()
    ]
    environment = {"fingerprint": machine_fingerprint(), "cpu": "test CPU"}
    return {
        "environment": environment,
        "settings": {"threads": threads},
        "date": "2026-11-30T00:00:00+00:00",
        "rows": rows,
    }


def test_the_recommendation_is_written_only_for_backends_that_passed_parity(
    model: Path,
) -> None:
    report = report_for(model, {"onnxruntime": 4.0, "openvino": 2.0})
    (path,) = write_recommendations(report, {str(model): {"openvino": 0.998}})
    found = read_recommendation(model)
    assert path == recommendation_path(model) and found is not None and found.single is not None
    assert found.single.backend == "onnxruntime"  # twice as fast, but other vectors
    write_recommendations(report, {})  # not checked: not recommended either
    found = read_recommendation(model)
    assert found is not None and found.single is not None
    assert found.single.backend == "onnxruntime"
    assert [c.parity for c in found.single.candidates] == [None, None]
    write_recommendations(report, {str(model): {"openvino": 0.99999}})
    found = read_recommendation(model)
    assert found is not None and found.single is not None and found.single.backend == "openvino"
    int8 = report_for(model, {"onnxruntime": 4.0, "openvino": 2.0}, precision="int8")
    write_recommendations(int8, {str(model): {"openvino": 0.998}})  # int8's bar is 0.98
    found = read_recommendation(model)
    assert found is not None and found.single is not None and found.single.backend == "openvino"


def test_a_model_measured_with_one_backend_loses_its_old_file(model: Path) -> None:
    path = hand_written(model)
    assert write_recommendations(report_for(model, {"onnxruntime": 4.0}), {}) == []
    assert not path.exists()


def test_a_parity_check_that_breaks_is_a_failed_entry_not_the_end(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    entry = parity_entry(garbage, "openvino", 1)
    assert entry["status"] == "failed" and entry["backend"] == "openvino"
    assert "garbage.onnx: onnxruntime cannot load it" in entry["reason"]


def test_another_machines_or_another_files_figures_are_ignored(model: Path) -> None:
    path = hand_written(model)
    found = read_recommendation(model)
    assert found is not None
    write_recommendation(model, replace(found, machine="000000000000", cpu="other CPU"))
    choice = choose_backend(model, None, "batch")
    assert choice.backend is None and choice.note is not None
    assert choice.note.startswith("backend: onnxruntime (model.onnx.backends.json was measured ")
    assert "another machine (other CPU, machine 000000000000)" in choice.note
    another_file = (
        "backend: onnxruntime (model.onnx.backends.json was measured for another model.onnx: "
        "ignored)"
    )
    write_recommendation(model, replace(found, model_size=found.model_size + 1))
    assert choose_backend(model, None, "batch") == BackendChoice(None, note=another_file)
    # the same size, other bytes: a file re-exported over the one measured
    write_recommendation(model, found)
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    assert choose_backend(model, None, "batch") == BackendChoice(None, note=another_file)
    path.write_text("{not json")
    assert "ignored" in (choose_backend(model, None, "single").note or "")


def test_other_usable_cpus_or_threads_set_the_figures_aside(model: Path) -> None:
    hand_written(model)  # measured with --threads 2
    found = read_recommendation(model)
    assert found is not None
    assert choose_backend(model, None, "batch", threads=2).backend == "openvino"
    choice = choose_backend(model, None, "batch", threads=1)
    assert choice == BackendChoice(
        None,
        note="backend: onnxruntime (model.onnx.backends.json was measured with 2 threads, not "
        "--threads 1: ignored)",
    )
    write_recommendation(model, replace(found, cpus=found.cpus + 1))
    choice = choose_backend(model, None, "batch")
    assert choice.backend is None
    assert choice.note == (
        f"backend: onnxruntime (model.onnx.backends.json was measured with {found.cpus + 1} "
        f"usable CPUs, {available_cpus()} here: ignored, rerun `sketchsearch bench`)"
    )


def _edit(path: Path, edit: Any) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _set(*keys: str | int, value: Any) -> Any:
    def edit(data: Any) -> None:
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("batch", "candidates", 0, "value", value=None), "value must be a finite positive"),
        (_set("batch", "candidates", 0, "value", value="3"), "value must be a finite positive"),
        (_set("batch", "candidates", 0, "value", value=-1.0), "value must be a finite positive"),
        (_set("batch", "candidates", 0, "backend", value=5), "backend must be a string, not 5"),
        (_set("batch", "backend", value=5), "backend must be a string, not 5"),
        (_set("batch", "device", value=["cpu"]), "device must be a string or null"),
        (_set("batch", "unit", value="ms"), "unit must be 'img/s', not 'ms'"),
        (_set("single", "candidates", 0, "batch_size", value=True), "batch_size must be a pos"),
        (_set("single", "candidates", 0, "parity", value="high"), "parity must be a finite"),
        (_set("single", "candidates", value={}), "candidates must be a list"),
        (_set("single", "candidates", 0, value=3), "Candidate is not an object"),
        (_set("single", value=[]), "single must be an object or null"),
        (_set("model_size", value="12"), "model_size must be a size in bytes"),
        (_set("threads", value=2.0), "threads must be a positive integer or null"),
        (_set("cpus", value=0), "cpus must be a positive integer"),
        (_set("model_sha256", value=None), "model_sha256 must be a string"),
    ],
)
def test_a_file_with_wrong_value_types_is_ignored_with_one_line(
    model: Path, edit: Any, message: str
) -> None:
    _edit(hand_written(model), edit)
    with pytest.raises(RecommendationError, match=message):
        read_recommendation(model)
    choice = choose_backend(model, None, "batch")
    assert choice.backend is None and choice.note is not None
    assert choice.note.startswith("backend: onnxruntime (") and choice.note.endswith(": ignored)")
    assert message in choice.note and "\n" not in choice.note


def test_a_nan_figure_is_ignored(model: Path) -> None:
    path = hand_written(model)
    path.write_text(path.read_text().replace("1210.0", "NaN"))
    note = choose_backend(model, None, "batch").note or ""
    assert "value must be a finite positive number, not nan" in note


def test_a_fresh_onnx_export_removes_the_old_recommendation(tiny_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    stale = recommendation_path(target)
    stale.write_text("{}")
    (result,) = export_onnx(
        ExportOptions(checkpoint=tiny_run / "best.ckpt", output=target, verify=False)
    )
    assert result.path == target and target.is_file() and not stale.exists()


def test_a_recommended_backend_that_is_not_installed_falls_back(model: Path) -> None:
    hand_written(model, batch="openvino")
    script = (
        "import sys; sys.modules['openvino'] = None\n"
        "from pathlib import Path\n"
        "from sketchsearch.runtime.engines.backend_choice import choose_backend\n"
        f"choice = choose_backend(Path({str(model)!r}), None, 'batch')\n"
        "print(choice.backend); print(choice.note)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    backend, note = done.stdout.splitlines()
    assert backend == "None", done.stderr
    assert note.startswith("backend: onnxruntime (model.onnx.backends.json recommends openvino,")
    assert "pip install 'sketchsearch[openvino]'" in note


# --- the commands ---


def gallery_build(model: Path, tiny_run: Path, out: Path, *extra: str) -> int:
    data, split = tiny_run.parent / "data", tiny_run.parent / "split.json"
    args = ["gallery", "build", "--engine", str(model), "--split", f"{split}:test"]
    args += ["--data", str(data), "--out", str(out), "--quiet", "--no-default", *extra]
    return run(cli, args)


def test_gallery_build_and_retrieve_use_the_recommendation(
    model: Path, tiny_run: Path, tmp_path: Path, capsys
) -> None:
    hand_written(model, single="onnxruntime", batch="openvino")
    assert gallery_build(model, tiny_run, tmp_path / "g") == 0
    err = capsys.readouterr().err
    assert "backend: openvino (recommended for batches by model.onnx.backends.json" in err
    part = parse_split_spec(f"{tiny_run.parent / 'split.json'}:test", tiny_run.parent / "data")
    query = str(part.path(part.items("sketch")[0]))
    retrieve = ["retrieve", "--engine", str(model), "--index", str(tmp_path / "g")]
    assert run(cli, [*retrieve, "--query", query, "--json"]) == 0
    out, err = capsys.readouterr()
    assert '"backend": "onnxruntime"' in out
    assert "backend: onnxruntime (recommended for single queries by" in err
    assert run(cli, [*retrieve, "--query", query, "--json", "--backend", "openvino"]) == 0
    out, err = capsys.readouterr()
    assert '"backend": "openvino"' in out and "backend: openvino (--backend)" in err


def test_without_a_recommendation_nothing_is_said(
    model: Path, tiny_run: Path, tmp_path: Path, capsys
) -> None:
    assert gallery_build(model, tiny_run, tmp_path / "g") == 0
    assert "backend:" not in capsys.readouterr().err
    assert gallery_build(model, tiny_run, tmp_path / "g2", "--backend", "openvino") == 0
    assert "backend: openvino (--backend)" in capsys.readouterr().err
