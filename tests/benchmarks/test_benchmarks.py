"""The benchmark scripts on a really trained tiny model, with tiny iteration counts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
import yaml
from click.testing import CliRunner

from sketchsearch.benchmarks import accuracy, latency, report, steps, targets
from sketchsearch.benchmarks.make_checkpoint import make_checkpoint
from sketchsearch.cli.bench_command import bench
from sketchsearch.export.pipeline import ExportOptions, export_onnx
from sketchsearch.runtime.cuda_probe import probe_driver

REPO = Path(__file__).resolve().parents[2]
ANN = sorted((REPO / "benchmarks" / "results").glob("ann-*.json"))
STATS = {"min_ms", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "images_per_s"}
METRICS = {"mAP@all", "mAP@200", "P@1", "P@100", "P@200", "recall@1", "recall@5", "recall@10"}


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError):
        return False
    return _has_cuda()


@pytest.fixture(scope="module")
def models(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bench-models")
    options = ExportOptions(checkpoint=tiny_run / "best.ckpt", output=out / "model.fp32.onnx")
    (result,) = export_onnx(options)
    return {"ckpt": tiny_run / "best.ckpt", "onnx": result.path, "plan": out / "model.fp32.plan"}


@pytest.fixture(scope="module")
def split_args(tiny_run: Path) -> list[str]:
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    return ["--split", f"{config['split']}:test", "--data", str(config["data"])]


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
    for backend in ("torch-cpu", "ort-cpu"):
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
        "torch-cuda": not _has_cuda(),
        "torch-cuda-fp16": not _has_cuda(),
        "ort-cuda": "CUDAExecutionProvider" not in gone,
        "ort-tensorrt": "TensorrtExecutionProvider" not in gone,
        "tensorrt": not _has_tensorrt(),
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
    for backend in ("torch-cpu", "ort-cpu"):
        row = rows[backend]
        assert row["status"] == "ok" and set(row["metrics"]) == METRICS
        assert set(row["exact"]) == METRICS and row["queries"] > 0 and row["gallery_items"] > 0
        assert set(row["delta_vs_reference"]) == METRICS
    assert rows["torch-cpu"]["delta_vs_reference"]["mAP@all"] == 0.0
    assert abs(rows["ort-cpu"]["delta_vs_reference"]["mAP@all"]) < 0.01  # fp32 export
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
    if not _has_tensorrt():
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


def test_bench_command_runs_the_whole_chain(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    args = ["--checkpoint", str(tiny_run / "best.ckpt"), "--out", str(out)]
    args += ["--precisions", "fp32", "--batch-sizes", "1", "--warmup", "0", "--iters", "2"]
    args += ["--providers", "cpu,tensorrt", "--gallery-size", "32", "--threads", "1"]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    for name in ("exports.json", "latency.json", "accuracy.json", "report.json", "report.png"):
        assert (out / name).is_file(), name
    assert "| `model.fp32.onnx` | onnxruntime CPU | fp32 | ok |" in (out / "report.md").read_text()
    assert json.loads((out / "exports.json").read_text())["exports"][0]["status"] == "ok"


SMALL = ["--precisions", "fp32", "--batch-sizes", "1", "--warmup", "0", "--iters", "1"]
SMALL += ["--providers", "cpu", "--gallery-size", "8", "--threads", "1"]


def test_bench_command_without_a_split_and_a_missing_checkpoint_names_no_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The split is checked before the checkpoint is read (exit 2, nothing written)."""
    from sketchsearch.cli.main import cli, run

    checkpoint = tmp_path / "gone" / "best.ckpt"
    out = tmp_path / "bench"
    assert run(cli, ["bench", "--checkpoint", str(checkpoint), "--out", str(out), *SMALL]) == 2
    error = capsys.readouterr().err
    assert error == (
        f"error: {checkpoint}: its run folder names no split: pass --split SPLIT:PART --data\n"
    )
    assert not out.exists()


def test_bench_command_records_an_unreadable_checkpoint_as_failed_rows(
    split_args: list[str], tmp_path: Path
) -> None:
    """With --split, a checkpoint that cannot be read is a failed export row (and failed
    measurements), in a report written as usual: exit 0, as before."""
    checkpoint = tmp_path / "run" / "best.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"not a checkpoint")
    out = tmp_path / "bench"
    args = ["--checkpoint", str(checkpoint), "--out", str(out), *split_args, *SMALL]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    (entry,) = json.loads((out / "exports.json").read_text())["exports"]
    assert entry["status"] == "failed"
    assert entry["reason"].startswith(f"{checkpoint}: not a readable checkpoint")
    assert (out / "report.md").is_file() and (out / "report.json").is_file()
    assert (
        "| `model.fp32.onnx` | ONNX export | fp32 | failed: export: "
        in (out / "report.md").read_text()
    )


def test_bench_command_prints_each_step_as_it_starts(split_args: list[str], tmp_path: Path) -> None:
    """On stderr, in order, before each step runs; the report still goes to stdout."""
    checkpoint = tmp_path / "run" / "best.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"not a checkpoint")
    args = ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "bench")]
    result = CliRunner().invoke(bench, [*args, *split_args, *SMALL])
    assert result.exit_code == 0, result.output
    steps = [line for line in result.stderr.splitlines() if line.startswith("bench: ")]
    assert steps == [
        "bench: exporting fp32…",
        "bench: latency…",
        "bench: accuracy…",
        "bench: report…",
    ]
    assert "bench: " not in result.stdout


def test_bench_takes_the_run_split_as_its_config_names_it(tmp_path: Path) -> None:
    """As before: the paths config.yaml names, unresolved; the steps that use them say when
    they are gone. No split named (or a config that is not settings): None."""
    from sketchsearch.benchmarks.bench import run_split

    checkpoint = tmp_path / "run" / "best.ckpt"
    checkpoint.parent.mkdir()
    assert run_split(checkpoint) is None
    (checkpoint.parent / "config.yaml").write_text("split: gone/split.json\ndata: gone/data\n")
    assert run_split(checkpoint) == ("gone/split.json:test", Path("gone/data"))
    (checkpoint.parent / "config.yaml").write_text("split: s.json\n")
    assert run_split(checkpoint) is None
    (checkpoint.parent / "config.yaml").write_text("- not settings\n")
    assert run_split(checkpoint) is None


def test_bench_exports_every_precision_from_one_read_of_the_checkpoint(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sketchsearch.benchmarks.bench import BenchConfig, export_all, load_once
    from sketchsearch.train import checkpoint_card

    reads: list[Path] = []
    real = checkpoint_card.read_checkpoint

    def counting(path: Any) -> Any:
        reads.append(Path(path))
        return real(path)

    monkeypatch.setattr(checkpoint_card, "read_checkpoint", counting)
    config = BenchConfig(tiny_run / "best.ckpt", tmp_path, precisions=("fp32", "fp16"))
    entries = export_all(config, load_once(config.checkpoint))
    assert [e["precision"] for e in entries] == ["fp32", "fp16"]
    assert entries[0]["status"] == "ok", entries[0]["reason"]
    assert reads == [tiny_run / "best.ckpt"]


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


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine: not missing")
def test_gpu_script_dry_run_reports_what_is_missing(tiny_run: Path) -> None:
    script = str(REPO / "benchmarks" / "gpu.sh")
    done = subprocess.run(
        ["bash", script, "--dry-run", "--checkpoint", str(tiny_run / "best.ckpt")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    out = done.stdout
    for step in ("1. export", "2. build", "3. verify", "4. build the gallery", "6. report"):
        assert step in out
    assert "[missing] nvidia-smi: nvidia-smi not found on PATH" in out
    assert "[ok] checkpoint:" in out and "[ok] split:" in out and "[ok] sketchsearch" in out
    missing = out.split("dry run: missing (required): ", 1)[1].splitlines()[0].split()
    assert missing[0] == "nvidia-smi" and set(missing) <= {"nvidia-smi", "torch.cuda"}
    assert ("[missing] torch.cuda" in out) == (not _has_cuda())
    if not _has_tensorrt():
        assert "[missing, optional] tensorrt" in out
    # The TensorRT stack is checked against the pins by cuda_stack, one line per check.
    stack = out.split("TensorRT stack (python -m sketchsearch.runtime.cuda_stack):\n", 1)[1]
    names = [line.split("] ", 1)[1].split(":", 1)[0] for line in stack.splitlines()[:5]]
    assert names == ["driver", "cuda-major", "tensorrt", "cuda-python", "context"]
    if probe_driver().cuda is None:
        assert "[missing, optional] driver: no NVIDIA driver (libcuda.so.1" in stack
    assert "mismatch" not in out


def test_gpu_script_refuses_unknown_options() -> None:
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), "--frobnicate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "unknown option --frobnicate" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--checkpoint"],
        ["--dry-run", "--split"],
        ["--data"],
        ["--out"],
        ["--warmup"],
        ["--iters"],
        ["--allow-cpu", "--batch-sizes"],
    ],
)
def test_gpu_script_refuses_an_option_without_its_value(args: list[str]) -> None:
    done = subprocess.run(  # exit 2 before anything runs, not set -u's 127
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == f"gpu.sh: {args[-1]} needs a value (see --help)\n"
    assert done.stdout == ""


FAKE_CUDA_STACK = {
    # A crash while creating the CUDA context: a segfault, after one line on stderr.
    "crash": 'echo "Fatal Python error: Segmentation fault" >&2; ulimit -c 0; kill -SEGV $$',
    # A usable TensorRT stack, so that gpu.sh goes on to the verification images.
    "ok": "printf '%s\\n' 'driver ok 580.65.06' 'cuda-major ok 13' 'tensorrt ok 10.13.3.9' "
    "'cuda-python ok 13.0.3' 'context ok fake'; exit 0",
}


def fake_python(
    folder: Path,
    cuda_stack: str,
    *,
    fail_exports: bool = False,
    fail_record: str | None = None,
    fail_verify_images: bool = False,
) -> Path:
    """A PYTHON for gpu.sh that fakes what a CPU machine cannot reach and runs the rest."""
    lines = [
        "#!/usr/bin/env bash",
        'if [[ "$1 $2" == "-m sketchsearch.runtime.cuda_stack" ]]; then',
        f"    {FAKE_CUDA_STACK[cuda_stack]}",
        "fi",
    ]
    if fail_exports:  # `ss export onnx ...`: fast, and every later step still has its turn
        lines += [
            'if [[ "$1" == -c && "$3 $4" == "export onnx" ]]; then',
            '    echo "error: ONNX export disabled by the test" >&2; exit 1',
            "fi",
        ]
    if fail_record is not None:  # steps.py cannot write this stage's outcome
        lines += [
            f'if [[ "$1" == */benchmarks/steps.py && " $* " == *" --stage {fail_record} "* ]]',
            "then",
            '    echo "OSError: [Errno 28] No space left on device" >&2; exit 1',
            "fi",
        ]
    if fail_verify_images:  # the heredoc that links the verification images
        lines += [
            'if [[ "$1" == - ]]; then',
            '    echo "error: $2: no images to verify the engines on" >&2; exit 1',
            "fi",
        ]
    lines.append(f'exec "{sys.executable}" "$@"')
    path = folder / "fake-python"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def test_gpu_script_dry_run_treats_a_crashed_cuda_stack_as_optional(
    tiny_run: Path, tmp_path: Path
) -> None:
    args = ["--dry-run", "--allow-cpu", "--checkpoint", str(tiny_run / "best.ckpt")]
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": str(fake_python(tmp_path, "crash"))},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    crashed = "cuda_stack check crashed with exit 139: Fatal Python error: Segmentation fault"
    assert f"[missing, optional] TensorRT stack check: {crashed} -> native" in done.stdout
    optional = done.stdout.split("dry run: missing (optional): ", 1)[1].splitlines()[0]
    assert "cuda_stack" in optional.split()
    assert "dry run: every required piece is present" in done.stdout


def run_gpu_script(
    tiny_run: Path, small_split: tuple[Path, Path], folder: Path, python: Path
) -> subprocess.CompletedProcess[str]:
    split, data = small_split
    args = ["--allow-cpu", "--checkpoint", str(tiny_run / "best.ckpt"), "--out", str(folder)]
    args += ["--split", f"{split}:test", "--data", str(data)]
    args += ["--batch-sizes", "1", "--warmup", "0", "--iters", "2"]
    return subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": str(python)},
        check=False,
    )


@pytest.mark.slow
def test_gpu_script_goes_on_after_a_cuda_stack_crash_and_notes_an_unrecorded_step(
    tiny_run: Path, small_split: tuple[Path, Path], tmp_path: Path
) -> None:
    python = fake_python(tmp_path, "crash", fail_exports=True, fail_record="gallery")
    out = tmp_path / "gpu-bench"
    done = run_gpu_script(tiny_run, small_split, out, python)
    # The report is written: a step that failed, or one not recorded, is exit 1, not 3.
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-4000:]
    text = (out / "report.md").read_text()
    crashed = "cuda_stack check crashed with exit 139: Fatal Python error: Segmentation fault"
    for precision in ("fp32", "fp16", "int8"):
        unavailable = f"| `model.{precision}.plan` | TensorRT | {precision} | unavailable: "
        assert unavailable + crashed in text
        failed = "failed: export: ONNX export disabled by the test"
        assert f"| `model.{precision}.onnx` | onnxruntime CPU | {precision} | {failed}" in text
    note = "**Note:** gpu.sh could not record 1 step outcome(s) in "
    assert note in text
    assert "gallery of gallery (failed: not built: the fp32 ONNX export failed)" in text
    assert "| `best.ckpt` | torch eager (CPU) | fp32 | ok |" in text
    assert "1 step outcome(s) could not be recorded" in done.stderr
    assert "gpu.sh: 4 step(s) failed" in done.stderr  # 3 exports and the gallery
    payload = json.loads((out / "report.json").read_text())
    assert len(payload["notes"]) == 1 and "gallery of gallery" in payload["notes"][0]
    recorded = json.loads((out / "steps.json").read_text())["steps"]
    assert "gallery" not in {s["stage"] for s in recorded}


@pytest.mark.slow
def test_gpu_script_records_failed_verification_images_as_their_own_step(
    tiny_run: Path, small_split: tuple[Path, Path], tmp_path: Path
) -> None:
    python = fake_python(tmp_path, "ok", fail_exports=True, fail_verify_images=True)
    out = tmp_path / "gpu-bench"
    done = run_gpu_script(tiny_run, small_split, out, python)
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-4000:]
    split = small_split[0]
    reason = f"{split}:val: no images to verify the engines on"
    recorded = json.loads((out / "steps.json").read_text())["steps"]
    (verify,) = [s for s in recorded if s["stage"] == "verify-images"]
    assert verify["status"] == "failed" and verify["reason"] == reason
    text = (out / "report.md").read_text()
    label = steps.STAGE_LABELS["verify-images"]
    assert f"| `verify-images` | {label} | — | failed: verify-images: " in text
    not_built = "failed: engine: not built: no verification images (the verify-images step"
    for precision in ("fp32", "fp16", "int8"):  # blamed on the images, not on the build
        assert f"| `model.{precision}.plan` | TensorRT | {precision} | {not_built}" in text
    assert "**Note:**" not in text


@pytest.fixture(scope="module")
def small_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A split whose train part (6 photos, 6 sketches) is below int8 calibration's one batch
    of 16 images: the int8 export refuses it, for real, and every other step can run."""
    from sketchsearch.data.layouts import scan
    from sketchsearch.data.split_file import build_split_file, save_split
    from sketchsearch.data.splits import SplitConfig, make_split
    from sketchsearch.data.synth import SynthConfig, generate

    folder = tmp_path_factory.mktemp("small-split")
    synth = SynthConfig(categories=3, photos_per_category=4, sketches_per_photo=1, size=48, seed=7)
    generate(folder / "data", synth)
    collection = scan(folder / "data")
    config = SplitConfig(seed=0, fractions=(0.5, 0.25, 0.25))
    split = build_split_file(collection, config, make_split(collection, config))
    return save_split(split, folder / "split.json"), folder / "data"


@pytest.mark.slow
def test_gpu_script_reports_a_failed_step_as_a_row_and_exits_1(
    tiny_run: Path, small_split: tuple[Path, Path], tmp_path: Path
) -> None:
    split, data = small_split
    out = tmp_path / "gpu-bench"
    args = ["--allow-cpu", "--checkpoint", str(tiny_run / "best.ckpt"), "--out", str(out)]
    args += ["--split", f"{split}:test", "--data", str(data)]
    args += ["--batch-sizes", "1", "--warmup", "0", "--iters", "2"]
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-4000:]
    text = (out / "report.md").read_text()
    failed = "failed: export: int8 calibration needs at least one batch of images (16)"
    for backend in ("onnxruntime CPU", "onnxruntime CUDA", "onnxruntime TensorRT EP"):
        assert f"| `model.int8.onnx` | {backend} | int8 | {failed}" in text
    for precision in ("fp32", "fp16"):  # the other rows are all there
        assert f"| `model.{precision}.onnx` | onnxruntime CPU | {precision} | ok |" in text
        assert f"| `model.{precision}.plan` | TensorRT | {precision} |" in text
    assert "| `best.ckpt` | torch eager (CPU) | fp32 | ok |" in text
    steps = json.loads((out / "steps.json").read_text())["steps"]
    outcome = {(s["file"], s["status"]) for s in steps}
    assert ("model.int8.onnx", "failed") in outcome and ("gallery", "ok") in outcome
    assert {("latency.json", "ok"), ("accuracy.json", "ok")} <= outcome
    if not _has_tensorrt():  # with TensorRT, the int8 engine is a second failed step
        assert "gpu.sh: 1 step(s) failed" in done.stderr
