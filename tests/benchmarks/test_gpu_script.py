"""benchmarks/gpu.sh: dry runs, option checks, failed steps as rows, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gpu_presence import has_cuda, has_tensorrt

from sketchsearch.benchmarks import steps
from sketchsearch.runtime.cuda_probe import probe_driver

REPO = Path(__file__).resolve().parents[2]


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
    assert ("[missing] torch.cuda" in out) == (not has_cuda())
    if not has_tensorrt():
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
    if not has_tensorrt():  # with TensorRT, the int8 engine is a second failed step
        assert "gpu.sh: 1 step(s) failed" in done.stderr
