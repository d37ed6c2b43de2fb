"""The TensorRT engine's checks, which run before TensorRT is needed, and its batch planning.

Nothing here needs TensorRT or a GPU: the missing-TensorRT cases make ``import tensorrt`` fail
(``sys.modules["tensorrt"] = None``), which is what happens on this project's CPU machines.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sketchsearch.data.errors import ExitCode
from sketchsearch.runtime.engines.protocol import BackendUnavailableError, EngineError
from sketchsearch.runtime.engines.table import backend_named
from sketchsearch.runtime.engines.tensorrt_engine import (
    INSTALL_HINT,
    Chunk,
    TensorRTEngine,
    TensorRTTarget,
    TensorSpec,
    check_engine_target,
    check_io,
    plan_chunks,
    target_mismatches,
)
from sketchsearch.runtime.model_card import (
    ModelCard,
    ModelCardError,
    TensorRTInfo,
    sidecar_path,
    write_sidecar,
)
from sketchsearch.runtime.preprocess import PreprocessConfig

H200 = TensorRTTarget("10.13.0.35", "NVIDIA H200", "9.0")


def card(**changes: object) -> ModelCard:
    base = ModelCard(
        backbone="tiny",
        embed_dim=4,
        preprocess=PreprocessConfig(input_size=8, crop_pct=1.0),
        class_names=("a", "b"),
        family="f" * 64,
        checkpoint_sha256="0" * 64,
    )
    return base.with_changes(**changes)


def engine_info(target: TensorRTTarget = H200) -> TensorRTInfo:
    return TensorRTInfo(
        target.version, target.gpu_name, target.compute_capability, 1, 8, 64, "fp32"
    )


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError


# --- the engine's TensorRT version and GPU against this machine's ---


def test_the_same_target_passes() -> None:
    assert target_mismatches(H200, TensorRTTarget(**vars(H200))) == []
    check_engine_target(Path("model.plan"), H200, H200)


@pytest.mark.parametrize(
    ("here", "differs"),
    [
        (TensorRTTarget("10.14.1.48", "NVIDIA H200", "9.0"), ["TensorRT version"]),
        (TensorRTTarget("10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0"), ["GPU"]),
        (
            TensorRTTarget("10.13.0.35", "NVIDIA A100-SXM4-80GB", "8.0"),
            ["GPU", "compute capability"],
        ),
        (
            TensorRTTarget("11.0.0.1", "NVIDIA L4", "8.9"),
            ["TensorRT version", "GPU", "compute capability"],
        ),
    ],
)
def test_a_different_tensorrt_or_gpu_is_refused_with_the_fix(
    here: TensorRTTarget, differs: list[str]
) -> None:
    assert target_mismatches(H200, here) == differs
    with pytest.raises(EngineError) as raised:
        check_engine_target(Path("models/model.plan"), H200, here)
    message = str(raised.value)
    assert "\n" not in message and raised.value.exit_code == ExitCode.USAGE
    assert "TensorRT 10.13.0.35 on NVIDIA H200 (compute capability 9.0)" in message
    assert f"TensorRT {here.version} on {here.gpu_name}" in message
    assert f"({', '.join(differs)} differ)" in message
    assert "sketchsearch export tensorrt --onnx MODEL.onnx --output models/model.plan" in message


# --- batches the optimization profile accepts ---


@pytest.mark.parametrize(
    ("count", "low", "high", "chunks"),
    [
        (0, 1, 64, []),
        (5, 1, 64, [Chunk(0, 5, 5)]),
        (64, 1, 64, [Chunk(0, 64, 64)]),
        (150, 1, 64, [Chunk(0, 64, 64), Chunk(64, 128, 64), Chunk(128, 150, 22)]),
        (3, 4, 8, [Chunk(0, 3, 4)]),  # padded up to the profile's minimum
        (10, 4, 8, [Chunk(0, 8, 8), Chunk(8, 10, 4)]),
    ],
)
def test_calls_are_split_and_padded_to_fit_the_profile(
    count: int, low: int, high: int, chunks: list[Chunk]
) -> None:
    planned = plan_chunks(count, low, high)
    assert planned == chunks
    assert sum(c.stop - c.start for c in planned) == count
    assert all(low <= c.size <= high for c in planned)


@pytest.mark.parametrize(("low", "high"), [(0, 4), (5, 4)])
def test_an_impossible_profile_is_an_error(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="min_batch"):
        plan_chunks(3, low, high)


# --- the engine's I/O tensors against its card ---


def io(**changes: object) -> list[TensorSpec]:
    tensors = {
        "images": TensorSpec("images", True, np.dtype("uint8"), (-1, 8, 8, 3)),
        "embedding": TensorSpec("embedding", False, np.dtype("float32"), (-1, 4)),
        "logits": TensorSpec("logits", False, np.dtype("float32"), (-1, 2)),
    }
    for name, spec in changes.items():
        if spec is None:
            del tensors[name]
        else:
            assert isinstance(spec, TensorSpec)
            tensors[name] = spec
    return list(tensors.values())


def test_an_engine_that_matches_its_card_passes() -> None:
    check_io(io(), card(), Path("m.plan"))
    check_io(io(logits=None), card(), Path("m.plan"))
    float_input = TensorSpec("images", True, np.dtype("float32"), (-1, 8, 8, 3))
    check_io(io(images=float_input), card(input_dtype="float32"), Path("m.plan"))


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"images": None}, "inputs [], the card says ['images']"),
        ({"images": TensorSpec("x", True, np.dtype("uint8"), (-1, 8, 8, 3))}, "inputs ['x']"),
        ({"images": TensorSpec("images", True, np.dtype("float32"), (-1, 8, 8, 3))}, "dtype"),
        ({"images": TensorSpec("images", True, np.dtype("uint8"), (-1, 3, 8, 8))}, "[N, 8, 8, 3]"),
        ({"embedding": None}, "lack 'embedding'"),
        ({"embedding": TensorSpec("embedding", False, np.dtype("float32"), (-1, 5))}, "[N, 4]"),
        ({"logits": TensorSpec("logits", False, np.dtype("float32"), (-1, -1))}, "dynamic axis"),
    ],
)
def test_an_engine_that_does_not_match_its_card_is_refused(
    changes: dict[str, object], problem: str
) -> None:
    with pytest.raises(ModelCardError, match="does not match its card") as raised:
        check_io(io(**changes), card(), Path("m.plan"))
    assert problem in str(raised.value) and raised.value.exit_code == ExitCode.BAD_INPUT


# --- opening an engine: the sidecar first, TensorRT only then ---


def test_a_missing_engine_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelCardError, match="engine file not found"):
        TensorRTEngine(tmp_path / "model.plan")


def test_an_engine_without_its_sidecar_is_refused(tmp_path: Path) -> None:
    engine = tmp_path / "model.plan"
    engine.write_bytes(b"serialized engine")
    with pytest.raises(ModelCardError) as raised:
        TensorRTEngine(engine)
    assert raised.value.exit_code == ExitCode.BAD_INPUT
    assert str(sidecar_path(engine)) in str(raised.value)
    assert "sketchsearch export tensorrt" in str(raised.value)


def test_a_sidecar_without_tensorrt_facts_is_refused(tmp_path: Path) -> None:
    engine = tmp_path / "model.plan"
    engine.write_bytes(b"serialized engine")
    write_sidecar(engine, card())  # an ONNX card copied beside the engine
    with pytest.raises(ModelCardError, match="without a 'tensorrt' section"):
        TensorRTEngine(engine)


def test_a_corrupt_sidecar_is_refused(tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized engine")
    sidecar_path(engine).write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelCardError, match="not valid JSON"):
        TensorRTEngine(engine)


def test_without_tensorrt_an_engine_stops_with_the_install_command(
    tmp_path: Path, no_tensorrt: None
) -> None:
    engine = tmp_path / "model.plan"
    engine.write_bytes(b"serialized engine")
    write_sidecar(engine, card(tensorrt=engine_info()))
    with pytest.raises(BackendUnavailableError) as raised:
        TensorRTEngine(engine)
    assert raised.value.exit_code == ExitCode.USAGE == 2
    assert str(raised.value) == f"TensorRT is not installed: {INSTALL_HINT}"


def test_the_backend_table_probe_says_unavailable_before_the_file_is_read(
    no_tensorrt: None,
) -> None:
    backend = backend_named("tensorrt")
    assert backend.suffixes == (".plan", ".engine") and backend.extra == "tensorrt"
    with pytest.raises(BackendUnavailableError) as raised:
        backend.check_available()
    assert str(raised.value) == f"TensorRT is not installed: {INSTALL_HINT}"


def test_a_closed_engine_frees_once_and_refuses_to_embed() -> None:
    engine = object.__new__(TensorRTEngine)  # what close() leaves, without a GPU to load on
    engine.path, engine.card = Path("m.plan"), card(tensorrt=engine_info())
    engine._buffers, engine._stream = {}, None
    with engine:
        pass
    engine.close()  # idempotent: nothing left to free, no CUDA call
    with pytest.raises(EngineError, match=r"^m\.plan: the engine is closed"):
        engine.embed(np.zeros((1, 8, 8, 3), np.uint8))
    engine.synchronize()  # embed() waits for its stream: nothing left to wait for


def test_the_module_imports_neither_tensorrt_nor_torch() -> None:
    code = (
        "import sys, sketchsearch.runtime.engines.tensorrt_engine\n"
        "print(sorted(m for m in ('tensorrt', 'torch', 'cuda') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
