"""`sketchsearch export tensorrt`: its decisions, its sidecar, its verification and its CLI.

The decisions are plain functions, tested with the flag sets TensorRT 10.x and 11.x expose
(as namespaces: which names exist is all that differs). Verification runs for real on a tiny
ONNX model and real image files. Only the last test needs TensorRT and a GPU.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from imagetree import write_image

from sketchsearch.cli.main import run
from sketchsearch.cli.tensorrt_commands import tensorrt
from sketchsearch.data.errors import ExitCode, UsageError
from sketchsearch.export.tensorrt_build import (
    BatchProfile,
    PrecisionPlan,
    TensorRTExportConfig,
    TensorRTExportReport,
    check_network,
    engine_info,
    image_paths,
    plan_precision,
    verify_engine,
    write_atomic,
)
from sketchsearch.export.verify import VerificationError, VerificationReport
from sketchsearch.runtime.engines.lifecycle import EngineLifecycle
from sketchsearch.runtime.engines.protocol import BackendUnavailableError, EngineError
from sketchsearch.runtime.engines.tensorrt_engine import INSTALL_HINT, TensorRTTarget
from sketchsearch.runtime.model_card import (
    CARD_KEY,
    ModelCard,
    read_onnx_card,
    read_sidecar,
    write_sidecar,
)
from sketchsearch.runtime.preprocess import PreprocessConfig

REPO = Path(__file__).resolve().parents[2]
H200 = TensorRTTarget("10.13.0.35", "NVIDIA H200", "9.0")
# What the releases expose: 10.x has STRONGLY_TYPED and the weak-typing flags; 11.x deprecates
# STRONGLY_TYPED (ignored) and removed FP16/INT8; a build without strong typing has only flags.
TRT10_NETWORK = SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
TRT10_BUILDER = SimpleNamespace(FP16=0, INT8=1, TF32=6)
TRT11_NETWORK = SimpleNamespace(STRONGLY_TYPED=0)
TRT11_BUILDER = SimpleNamespace(TF32=6, REFIT=4)
WEAK_NETWORK = SimpleNamespace(EXPLICIT_BATCH=0)


def make_card(precision: str = "fp32", size: int = 8, dim: int = 4) -> ModelCard:
    return ModelCard(
        backbone="tiny",
        embed_dim=dim,
        preprocess=PreprocessConfig(input_size=size, crop_pct=1.0, interpolation="bilinear"),
        class_names=("a", "b", "c"),
        family="f" * 64,
        checkpoint_sha256="0" * 64,
        precision=precision,
    )


def write_tiny_onnx(path: Path, card: ModelCard) -> Path:
    """uint8 NHWC → mean colour → linear → unit embedding (+ logits), with the card inside."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((3, card.embed_dim)).astype(np.float32)
    head = rng.standard_normal((card.embed_dim, card.num_classes)).astype(np.float32)
    size = card.input_size
    nodes = [
        helper.make_node("Cast", ["images"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["pixels"], ["colour"], axes=[1, 2], keepdims=0),
        helper.make_node("Sub", ["colour", "centre"], ["centred"]),
        helper.make_node("MatMul", ["centred", "weights"], ["raw"]),
        helper.make_node("ReduceL2", ["raw"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Div", ["raw", "norm"], ["embedding"]),
        helper.make_node("MatMul", ["embedding", "head"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", size, size, 3])],
        [
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", card.embed_dim]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", card.num_classes]),
        ],
        [
            numpy_helper.from_array(np.full(3, 127.5, np.float32), "centre"),
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(head, "head"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {CARD_KEY: card.to_json()})
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> SimpleNamespace:
    card = make_card()
    images = tmp_path / "images"
    for index in range(6):
        write_image(images / ("sub" if index % 2 else "") / f"im{index}.png", seed=index, size=20)
    (images / "notes.txt").write_text("not an image")
    return SimpleNamespace(
        card=card, onnx=write_tiny_onnx(tmp_path / "model.onnx", card), images=images
    )


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError


# --- the optimization profile ---


def test_the_profile_gives_nhwc_shapes_for_min_opt_max() -> None:
    assert BatchProfile(1, 8, 64).shapes(224) == (
        (1, 224, 224, 3),
        (8, 224, 224, 3),
        (64, 224, 224, 3),
    )
    assert BatchProfile(4, 4, 4).shapes(96) == ((4, 96, 96, 3),) * 3
    assert BatchProfile() == BatchProfile(1, 8, 64)


@pytest.mark.parametrize(("low", "opt", "high"), [(0, 1, 1), (-1, 8, 64), (9, 8, 64), (1, 65, 64)])
def test_an_impossible_profile_is_a_usage_error(low: int, opt: int, high: int) -> None:
    with pytest.raises(UsageError) as raised:
        BatchProfile(low, opt, high)
    assert raised.value.exit_code == ExitCode.USAGE
    assert "--min-batch <= --opt-batch <= --max-batch" in str(raised.value)
    assert f"got {low}, {opt}, {high}" in str(raised.value)


def test_the_output_must_be_named_like_an_engine(tmp_path: Path) -> None:
    for name in ("model.plan", "model.engine"):
        TensorRTExportConfig(tmp_path / "m.onnx", tmp_path / name)
    with pytest.raises(UsageError, match=r"\.plan or \.engine"):
        TensorRTExportConfig(tmp_path / "m.onnx", tmp_path / "model.trt")
    with pytest.raises(UsageError, match="--workspace-gb"):
        TensorRTExportConfig(tmp_path / "m.onnx", tmp_path / "m.plan", workspace_gb=0)


# --- precision: from the ONNX graph, flags only where TensorRT cannot type strongly ---


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_10_builds_strongly_typed_without_precision_flags(precision: str) -> None:
    plan = plan_precision(precision, "10.13.0.35", TRT10_NETWORK, TRT10_BUILDER)
    tf32 = ("TF32",) if precision == "fp32" else ()
    assert plan == PrecisionPlan(True, ("STRONGLY_TYPED",), (), tf32)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("network", [TRT11_NETWORK, SimpleNamespace()])
def test_tensorrt_11_never_sets_flags(precision: str, network: SimpleNamespace) -> None:
    tf32 = ("TF32",) if precision == "fp32" else ()
    plan = plan_precision(precision, "11.4.0.10", network, TRT11_BUILDER)
    assert plan == PrecisionPlan(True, (), (), tf32)
    # Even a flag namespace that still had the names would not be used on 11.x.
    assert plan_precision(precision, "11.0.0.1", network, TRT10_BUILDER).builder_flags == ()


def test_tf32_is_only_cleared_where_the_flag_exists() -> None:
    builder = SimpleNamespace(FP16=0, INT8=1)
    assert plan_precision("fp32", "10.13.0.35", TRT10_NETWORK, builder).cleared_flags == ()


@pytest.mark.parametrize(
    ("precision", "flags"), [("fp32", ()), ("fp16", ("FP16",)), ("int8", ("INT8",))]
)
def test_without_strong_typing_the_flags_follow_the_model(
    precision: str, flags: tuple[str, ...]
) -> None:
    plan = plan_precision(precision, "10.0.1.6", WEAK_NETWORK, TRT10_BUILDER)
    assert plan == PrecisionPlan(False, (), flags, ("TF32",) if precision == "fp32" else ())


def test_a_precision_neither_typing_nor_flags_can_give_is_refused() -> None:
    with pytest.raises(BackendUnavailableError, match=r"BuilderFlag\.INT8"):
        plan_precision("int8", "10.0.1.6", WEAK_NETWORK, SimpleNamespace(FP16=0))


@pytest.mark.parametrize("version", ["8.6.1", "9.3.0.1", "banana"])
def test_tensorrt_before_10_is_refused(version: str) -> None:
    with pytest.raises(BackendUnavailableError, match="TensorRT"):
        plan_precision("fp32", version, TRT10_NETWORK, TRT10_BUILDER)


# --- the parsed network against the card ---


def test_a_network_with_the_cards_input_and_embedding_passes() -> None:
    card, profile = make_card(size=8), BatchProfile(1, 8, 64)
    check_network([("images", (-1, 8, 8, 3))], ["embedding", "logits"], card, profile, Path("m"))
    check_network([("images", (-1, -1, -1, 3))], ["embedding"], card, profile, Path("m"))
    fixed = BatchProfile(4, 4, 4)
    check_network([("images", (4, 8, 8, 3))], ["embedding"], card, fixed, Path("m"))


@pytest.mark.parametrize(
    ("inputs", "outputs", "error", "message"),
    [
        ([("pixels", (-1, 8, 8, 3))], ["embedding"], EngineError, "inputs ['pixels']"),
        ([("images", (-1, 8, 8, 3)), ("x", (1,))], ["embedding"], EngineError, "inputs"),
        ([("images", (-1, 3, 8, 8))], ["embedding"], EngineError, "[N, 8, 8, 3]"),
        ([("images", (-1, 16, 16, 3))], ["embedding"], EngineError, "input shape"),
        ([("images", (1, 8, 8, 3))], ["embedding"], UsageError, "fixed batch size of 1"),
        ([("images", (-1, 8, 8, 3))], ["logits"], EngineError, "lack 'embedding'"),
    ],
)
def test_a_network_that_does_not_fit_is_refused(
    inputs: list[tuple[str, tuple[int, ...]]],
    outputs: list[str],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error) as raised:
        check_network(inputs, outputs, make_card(size=8), BatchProfile(1, 8, 64), Path("m.onnx"))
    assert message in str(raised.value)


# --- the sidecar and the engine file ---


def test_the_sidecar_is_the_onnx_card_plus_the_engine_facts(tmp_path: Path) -> None:
    card = make_card("fp16")
    info = engine_info(card, H200, BatchProfile(2, 16, 32))
    assert (info.version, info.gpu_name, info.compute_capability) == (
        "10.13.0.35",
        "NVIDIA H200",
        "9.0",
    )
    assert (info.min_batch, info.opt_batch, info.max_batch, info.precision) == (2, 16, 32, "fp16")
    engine = tmp_path / "model.plan"
    written = write_sidecar(engine, card.with_changes(tensorrt=info))
    assert written == tmp_path / "model.plan.json"
    loaded = read_sidecar(engine)
    assert loaded == card.with_changes(tensorrt=info)
    assert loaded.with_changes(tensorrt=None) == card  # nothing else changed
    assert TensorRTTarget.of(info) == H200


def test_the_engine_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "model.plan"
    write_atomic(path, b"old engine")
    write_atomic(path, memoryview(b"new engine"))
    assert path.read_bytes() == b"new engine"
    assert [p.name for p in tmp_path.iterdir()] == ["model.plan"]
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "model.plan", b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["model.plan"]


# --- verification against onnxruntime, on real images ---


class OnnxRuntimeEngine(EngineLifecycle):
    """The tiny model in onnxruntime behind the Engine interface; ``noise`` spoils its output."""

    backend = "onnxruntime"
    device = "CPUExecutionProvider"

    def __init__(self, path: Path, noise: float = 0.0) -> None:
        import onnxruntime as ort

        self.path, self.card, self.noise = path, read_onnx_card(path), noise
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def embed(self, images: np.ndarray) -> np.ndarray:
        self._require_open()
        out = self.session.run(["embedding"], {"images": images})[0].astype(np.float32)
        rng = np.random.default_rng(1)
        return out + self.noise * rng.standard_normal(out.shape).astype(np.float32)

    def warmup(self, iterations: int = 2) -> None:
        pass


def test_image_paths_are_every_image_below_the_folder_sorted(tiny: SimpleNamespace) -> None:
    paths = image_paths(tiny.images)
    assert len(paths) == 6 and paths == sorted(paths)
    assert all(p.suffix == ".png" for p in paths)
    with pytest.raises(UsageError, match="not a folder"):
        image_paths(tiny.images / "im0.png")
    (tiny.images / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no image files"):
        image_paths(tiny.images / "empty")


def test_an_engine_that_computes_the_model_passes_verification(tiny: SimpleNamespace) -> None:
    paths = image_paths(tiny.images)
    report = verify_engine(OnnxRuntimeEngine(tiny.onnx), tiny.onnx, paths, str(tiny.images))
    assert report.passed and report.images == 6 and report.threshold_cosine == 0.9999
    assert report.min_cosine == pytest.approx(1.0, abs=1e-6)
    result = exported(tiny, report)
    assert any(line.startswith("-[✓] against onnxruntime") for line in result.lines())
    result.check()


def test_an_engine_that_drifts_fails_verification_with_exit_code_4(tiny: SimpleNamespace) -> None:
    paths = image_paths(tiny.images)
    drifting = OnnxRuntimeEngine(tiny.onnx, noise=0.05)
    report = verify_engine(drifting, tiny.onnx, paths, str(tiny.images))
    assert not report.passed and report.min_cosine < 0.9999
    assert any("min cosine" in failure for failure in report.failures)
    result = exported(tiny, report)
    assert any(line.startswith("-[x] against onnxruntime") for line in result.lines())
    with pytest.raises(VerificationError, match="do not serve it") as raised:
        result.check()
    assert raised.value.exit_code == ExitCode.MISMATCH


def exported(tiny: SimpleNamespace, report: VerificationReport) -> TensorRTExportReport:
    info = engine_info(tiny.card, H200, BatchProfile())
    return TensorRTExportReport(Path("model.plan"), info, 12.5, 3_000_000, None, report)


# --- the command on a machine without TensorRT ---


def test_the_command_without_tensorrt_exits_2_with_one_line(
    tiny: SimpleNamespace, tmp_path: Path, no_tensorrt: None, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "model.plan"
    args = ["--onnx", str(tiny.onnx), "--output", str(output), "--images", str(tiny.images)]
    assert run(tensorrt, args) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: TensorRT is not installed: {INSTALL_HINT}\n"
    assert captured.out == "" and not output.exists()


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here"
)
def test_the_script_without_tensorrt_exits_2_with_one_line(
    tiny: SimpleNamespace, tmp_path: Path
) -> None:
    output = tmp_path / "model.plan"
    script = REPO / "export" / "to_tensorrt.py"
    args = ["--onnx", str(tiny.onnx), "--output", str(output), "--no-verify"]
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: TensorRT is not installed: {INSTALL_HINT}\n"
    assert not output.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "pass --images DIR, or --no-verify"),
        (["--no-verify", "--max-batch", "4"], "got 1, 8, 4"),
        (["--no-verify", "--workspace-gb", "-1"], "--workspace-gb must be positive"),
    ],
)
def test_usage_errors_come_before_tensorrt_is_needed(
    tiny: SimpleNamespace,
    tmp_path: Path,
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--onnx", str(tiny.onnx), "--output", str(tmp_path / "m.plan"), *extra]
    assert run(tensorrt, args) == 2
    assert message in capsys.readouterr().err


def test_the_output_name_is_checked_too(
    tiny: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--onnx", str(tiny.onnx), "--output", str(tmp_path / "m.onnx"), "--no-verify"]
    assert run(tensorrt, args) == 2
    assert "use a .plan or .engine name" in capsys.readouterr().err


# --- the real thing: needs TensorRT, cuda-python and an NVIDIA GPU ---


@pytest.mark.gpu
@pytest.mark.parametrize("backbone", ["resnet10t", "test_efficientnet"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_verify_and_serve_a_real_export_on_the_gpu(
    real_exports: dict[str, dict[str, Path]],
    tiny_run: Path,
    tmp_path: Path,
    backbone: str,
    precision: str,
) -> None:
    """The files `export onnx` really writes (cast first, symmetric QDQ), not a stand-in."""
    pytest.importorskip("tensorrt", reason="needs TensorRT (the [tensorrt] extra)")
    pytest.importorskip("cuda.bindings", reason="needs cuda-python (the [tensorrt] extra)")
    from sketchsearch.data.imagefile import image_files
    from sketchsearch.export.verify import compare
    from sketchsearch.runtime.engines.tensorrt_engine import TensorRTEngine
    from sketchsearch.runtime.preprocess import preprocess_batch

    model = real_exports[backbone][precision]
    images = tiny_run.parent / "data"
    output, cache = tmp_path / "model.plan", tmp_path / "timing.cache"
    args = ["--onnx", str(model), "--output", str(output), "--images", str(images)]
    args += ["--min-batch", "1", "--opt-batch", "4", "--max-batch", "16"]
    assert run(tensorrt, [*args, "--timing-cache", str(cache)]) == 0  # built and verified
    assert cache.stat().st_size > 0 and read_sidecar(output).tensorrt is not None
    assert run(tensorrt, [*args, "--timing-cache", str(cache)]) == 0  # the cache is reused
    card = read_onnx_card(model)
    batch = preprocess_batch(image_files(images, "--images")[:40], card.preprocess)
    with TensorRTEngine(output) as engine:
        engine.warmup()
        got = engine.embed(batch)  # 40 > 16: three engine batches
    expected = OnnxRuntimeEngine(model).embed(batch)
    assert got.dtype == np.float32 and got.shape == expected.shape
    report = compare(expected, got, precision, str(images))
    assert report.passed, report.failures


# --- issue 13: without TensorRT, say so before asking for options ---


@pytest.mark.parametrize(
    "args",
    [
        [],  # --onnx and --output missing
        ["--onnx", "missing.onnx", "--output", "m.plan"],  # an --onnx that does not exist
        ["--output", "m.plan", "--workspace-gb", "nan"],
        ["--no-such-option"],
    ],
)
def test_options_that_do_not_parse_meet_the_missing_tensorrt_first(
    args: list[str], no_tensorrt: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from sketchsearch.cli.main import cli

    assert run(cli, ["export", "tensorrt", *args]) == int(BackendUnavailableError.exit_code)
    captured = capsys.readouterr()
    assert captured.err == f"error: TensorRT is not installed: {INSTALL_HINT}\n"
    assert captured.out == ""


def test_help_needs_no_tensorrt(no_tensorrt: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tensorrt, ["--help"]) == 0
    assert "--workspace-gb FLOAT" in capsys.readouterr().out


def test_with_tensorrt_options_that_do_not_parse_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sketchsearch.runtime.engines import tensorrt_engine

    monkeypatch.setattr(tensorrt_engine, "require_tensorrt", lambda: None)  # "installed"
    assert run(tensorrt, ["--output", "m.plan", "--workspace-gb", "inf"]) == 2
    err = capsys.readouterr().err
    assert "'--workspace-gb'" in err and "is not a finite number" in err
