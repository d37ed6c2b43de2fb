"""The backend table: one entry per backend, read by open_engine, help, errors and benchmarks.

The lifecycle tests run the real engines: an ONNX exported from the tiny trained model, and
that model's checkpoint in the torch reference engine.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from colour_engine import ColourEngine

from sketchsearch.data.errors import ExitCode, UsageError
from sketchsearch.runtime.engines import table
from sketchsearch.runtime.engines.backend import Backend, Offer
from sketchsearch.runtime.engines.protocol import BackendUnavailableError, EngineError
from sketchsearch.runtime.engines.table import (
    BUILTIN_BACKENDS,
    ENTRY_POINT_GROUP,
    all_backends,
    backend_for,
    known_suffixes,
    load_plugins,
    open_engine,
    plugin_backends,
)

SUFFIXES = {
    ".onnx": "onnxruntime",
    ".plan": "tensorrt",
    ".engine": "tensorrt",
    ".ckpt": "torch",
    ".pt": "torch",
    ".pth": "torch",
    ".xml": "openvino",
}


@pytest.fixture(scope="module")
def onnx_model(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sketchsearch.export.pipeline import ExportOptions, export_onnx

    folder = tmp_path_factory.mktemp("backend-table")
    options = ExportOptions(checkpoint=tiny_run / "best.ckpt", output=folder / "model.onnx")
    (result,) = export_onnx(options)
    return result.path


def images(size: int, count: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


# --- the table itself ---


@pytest.mark.parametrize("backend", all_backends(), ids=lambda b: b.name)
def test_every_backend_has_a_module_suffixes_and_offers(backend: Backend) -> None:
    assert importlib.util.find_spec(backend.module) is not None, backend.module
    for reference in (backend.opener, backend.probe, backend.card_reader):
        if reference is not None:
            module, _, name = reference.partition(":")
            assert callable(getattr(importlib.import_module(module), name)), reference
    assert backend.suffixes and all(s.startswith(".") for s in backend.suffixes)
    assert backend.offers


def test_names_suffixes_and_rows_are_each_claimed_once() -> None:
    backends = all_backends()
    suffixes = [s for b in backends for s in b.suffixes]
    rows = [offer.key for b in backends for offer in b.offers]
    assert len(set(suffixes)) == len(suffixes) and len(set(rows)) == len(rows)
    assert {b.name for b in backends} == {"onnxruntime", "tensorrt", "torch", "openvino"}
    assert dict.fromkeys(suffixes) == dict.fromkeys(SUFFIXES)


def test_the_torch_backend_is_declared_through_the_entry_point() -> None:
    (point,) = [p for p in entry_points(group=ENTRY_POINT_GROUP) if p.name == "torch"]
    assert point.value == "sketchsearch.train.torch_backend:BACKEND"
    assert "torch" in {b.name for b in plugin_backends()}
    assert "torch" not in {b.name for b in BUILTIN_BACKENDS}  # the runtime does not declare it


def test_a_built_in_suffix_neither_reads_entry_points_nor_imports_train() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sketchsearch.runtime.engines.table import backend_for, plugin_backends\n"
        "assert backend_for(Path('m.onnx')).name == 'onnxruntime'\n"
        "assert backend_for(Path('m.plan')).name == 'tensorrt'\n"
        "assert plugin_backends.cache_info().misses == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith(('sketchsearch.train', 'torch'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("suffix", "name"), [*SUFFIXES.items(), (".ONNX", "onnxruntime")])
def test_a_model_file_is_given_to_the_backend_of_its_suffix(suffix: str, name: str) -> None:
    assert backend_for(Path(f"models/model{suffix}")).name == name


def test_an_unknown_suffix_lists_the_table_suffixes(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"")
    with pytest.raises(UsageError) as raised:
        open_engine(model)
    message = str(raised.value)
    assert "\n" not in message and raised.value.exit_code == ExitCode.USAGE
    assert f"--engine {model}: unknown model type '.bin'; use one of" in message
    assert all(suffix in message for suffix in known_suffixes())
    assert set(SUFFIXES) <= set(known_suffixes())
    assert "no plugin backends" not in message  # the torch backend is registered


def test_an_unknown_suffix_without_any_plugin_says_to_reinstall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(table, "plugin_backends", lambda: ())  # stale install metadata
    with pytest.raises(UsageError) as raised:
        backend_for(Path("run/best.ckpt"))
    assert str(raised.value) == (
        "--engine run/best.ckpt: unknown model type '.ckpt'; use one of .onnx, .plan, .engine, "
        ".xml (no plugin backends registered: reinstall with `pip install -e .`)"
    )


def test_retrieve_help_lists_the_backends_of_the_table() -> None:
    from sketchsearch.cli.retrieve_command import retrieve

    result = CliRunner().invoke(retrieve, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())  # the list wraps over lines
    for backend in all_backends():
        assert backend.describe() in words


def test_the_benchmark_rows_are_the_table_offers() -> None:
    from sketchsearch.benchmarks import targets

    models = [Path("m.ckpt"), Path("m.onnx"), Path("m.plan")]
    listed = targets.list_targets(models, ("cpu", "cuda", "tensorrt"))
    offers = [offer.key for backend in all_backends() for offer in backend.offers]
    assert sorted(t.backend for t in listed) == sorted(offers)
    assert set(targets.backend_labels()) == set(offers)
    cpu_only = targets.list_targets(models, ("cpu",))
    assert [t.key for t in cpu_only] == [
        "m.ckpt:torch-cpu",
        "m.onnx:ort-cpu",
        "m.onnx:openvino-cpu",  # OpenVINO also opens an .onnx: its row follows the default's
        "m.plan:tensorrt",
    ]


def test_benchmark_rows_follow_the_providers_order() -> None:
    from sketchsearch.benchmarks import targets

    models = [Path("m.ckpt"), Path("m.onnx"), Path("m.plan")]
    listed = targets.list_targets(models, ("tensorrt", "cuda", "cpu"))
    assert [t.backend for t in listed] == [
        "torch-cpu",  # the reference row first, as before the backend table
        "torch-cuda",
        "torch-cuda-fp16",
        "ort-tensorrt",  # onnxruntime: in the order --providers names them
        "ort-cuda",
        "ort-cpu",
        "openvino-cpu",  # the backends that also open .onnx, after its default
        "tensorrt",
    ]


def test_an_unknown_benchmark_model_names_the_file_types() -> None:
    from sketchsearch.benchmarks import targets

    with pytest.raises(UsageError) as raised:
        targets.list_targets([Path("m.bin")], ("cpu",))
    message = "--model m.bin: not a .onnx, .plan, .engine, .xml, .ckpt, .pt or .pth file"
    assert str(raised.value) == message


def test_the_benchmark_help_lists_the_backends_of_the_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sketchsearch.benchmarks import accuracy, latency, rerank

    for main in (latency.parse_args, accuracy.parse_args, rerank.main):
        with pytest.raises(SystemExit):
            main(["--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(backend.describe() in text for backend in all_backends()), main


# --- declarations that are wrong, or plugins that do not load ---


def test_a_plugin_that_fails_to_load_is_one_line() -> None:
    broken = EntryPoint("broken", "sketchsearch.no_such_module:BACKEND", ENTRY_POINT_GROUP)
    with pytest.raises(BackendUnavailableError) as raised:
        load_plugins([broken])
    message = str(raised.value)
    assert "\n" not in message and raised.value.exit_code == ExitCode.USAGE
    assert "engine backend 'broken' (sketchsearch.no_such_module:BACKEND" in message
    assert "ModuleNotFoundError" in message and "reinstall" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("torch", "sketchsearch.train.torch_backend:_ENGINE"),  # not a Backend
        ("pytorch", "sketchsearch.train.torch_backend:BACKEND"),  # another name
    ],
)
def test_a_plugin_that_declares_something_else_is_refused(name: str, value: str) -> None:
    with pytest.raises(BackendUnavailableError, match="not a Backend named"):
        load_plugins([EntryPoint(name, value, ENTRY_POINT_GROUP)])


def test_help_still_lists_the_built_ins_when_a_plugin_is_broken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> tuple[Backend, ...]:
        raise BackendUnavailableError("engine backend 'x' failed to load")

    monkeypatch.setattr(table, "plugin_backends", broken)
    text = table.describe_backends()
    assert ".onnx (onnxruntime)" in text and "engine backend 'x' failed to load" in text
    assert backend_for(Path("m.onnx")).name == "onnxruntime"  # built-ins need no plugin


def test_backend_help_still_names_the_built_ins_when_a_plugin_is_broken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sketchsearch.cli.retrieve_command import retrieve

    def broken() -> tuple[Backend, ...]:
        raise BackendUnavailableError("engine backend 'x' failed to load")

    monkeypatch.setattr(table, "plugin_backends", broken)
    result = CliRunner().invoke(retrieve, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())
    assert "Engine backend by name (onnxruntime, tensorrt, openvino)" in words


def test_a_suffix_claimed_twice_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    rival = Backend("rival", "rival", (".onnx",), "rival:open", (Offer("rival", "rival"),))
    monkeypatch.setattr(table, "plugin_backends", lambda: (rival,))
    with pytest.raises(BackendUnavailableError, match=r"both claim '\.onnx'"):
        all_backends()


def test_a_backend_without_its_extra_names_the_install_command(tmp_path: Path) -> None:
    missing = Backend("x", "X", (".x",), "no_such_package.engine:open_x", (Offer("x", "X"),), "x")
    with pytest.raises(BackendUnavailableError) as raised:
        missing.open(tmp_path / "m.x")
    assert str(raised.value) == (
        "the X backend cannot be imported (no_such_package is not installed): "
        "pip install 'sketchsearch[x]'"
    )


def test_an_import_bug_in_our_own_modules_is_not_a_missing_extra(tmp_path: Path) -> None:
    broken = Backend(
        "x", "X", (".x",), "sketchsearch.no_such_module:open_x", (Offer("x", "X"),), extra="x"
    )
    with pytest.raises(ModuleNotFoundError, match=r"sketchsearch\.no_such_module"):
        broken.open(tmp_path / "m.x")


@pytest.mark.parametrize("suffixes", [(), ("onnx",), (".ONNX",)])
def test_a_declaration_with_bad_suffixes_is_refused(suffixes: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="suffixes"):
        Backend("x", "X", suffixes, "m:f", ())


# --- the engine lifecycle: with, close, synchronize ---


def test_the_onnx_engine_is_a_context_manager(onnx_model: Path) -> None:
    with open_engine(onnx_model, threads=1) as engine:
        assert engine.backend == "onnxruntime"
        vectors = engine.embed(images(engine.card.input_size))
        engine.synchronize()  # a no-op on the CPU
        assert vectors.shape == (2, engine.card.embed_dim)
    with pytest.raises(EngineError) as raised:
        engine.embed(images(engine.card.input_size))
    assert str(raised.value) == f"{onnx_model}: the engine is closed; open the model file again"
    engine.close()  # idempotent


def test_the_onnx_engine_closes_when_the_block_fails(onnx_model: Path) -> None:
    with pytest.raises(RuntimeError), open_engine(onnx_model, threads=1) as engine:
        raise RuntimeError("inside the block")
    with pytest.raises(EngineError, match="closed"):
        engine.embed(images(engine.card.input_size))


def test_the_torch_engine_is_a_context_manager(tiny_run: Path, onnx_model: Path) -> None:
    torch = pytest.importorskip("torch")
    checkpoint = tiny_run / "best.ckpt"
    with open_engine(checkpoint, threads=1) as engine:
        assert engine.backend == "torch"
        if not torch.cuda.is_available():
            assert engine.device == "cpu"
        engine.synchronize()
        batch = images(engine.card.input_size)
        vectors = engine.embed(batch)
    with open_engine(onnx_model, threads=1) as reference:
        np.testing.assert_array_less(0.9999, (vectors * reference.embed(batch)).sum(axis=1))
    with pytest.raises(EngineError, match="the engine is closed"):
        engine.embed(batch)
    engine.close()


@pytest.mark.parametrize("provider", ["tensorrt", "cpu", "CUDAExecutionProvider"])
def test_a_command_provider_is_ignored_for_a_checkpoint(tiny_run: Path, provider: str) -> None:
    """``--provider`` is onnxruntime's option: a checkpoint runs where torch chooses."""
    torch = pytest.importorskip("torch")
    with open_engine(tiny_run / "best.ckpt", provider=provider, threads=1) as engine:
        assert engine.backend == "torch"
        if not torch.cuda.is_available():
            assert engine.device == "cpu"


def test_the_torch_benchmark_rows_open_on_their_device(tiny_run: Path) -> None:
    pytest.importorskip("torch")
    from sketchsearch.benchmarks import targets

    listed = targets.list_targets([tiny_run / "best.ckpt"], ("cpu",))
    assert [t.backend for t in listed] == ["torch-cpu"]
    row = targets.measure_row(listed[0], 1, lambda engine: {})
    assert (row["status"], row["device"]) == ("ok", "cpu")


def test_without_torch_the_torch_cpu_row_is_unavailable_naming_the_file(tiny_run: Path) -> None:
    from blockers import BLOCK_TORCH

    checkpoint = tiny_run / "best.ckpt"
    code = BLOCK_TORCH + (
        "from pathlib import Path\n"
        "from sketchsearch.benchmarks import targets\n"
        f"(target,) = targets.list_targets([Path({str(checkpoint)!r})], ('cpu',))\n"
        "row = targets.measure_row(target, 1, lambda engine: {})\n"
        "print(row['status']); print(row['reason'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    status, reason = done.stdout.strip().splitlines()
    assert status == "unavailable"
    assert reason.startswith(f"{checkpoint}: the torch reference engine needs the [train] extra (")
    assert reason.endswith("is not installed); serve an exported .onnx instead")


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_a_provider_that_falls_back_is_a_command_s_choice_but_no_benchmark_row(
    onnx_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime starts the CPU where CUDA fails: commands go on, a benchmark row refuses."""
    import onnxruntime

    from sketchsearch.benchmarks import targets

    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]  # listed, but cannot start
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: available)
    with open_engine(onnx_model, provider="cuda", threads=1) as engine:
        assert engine.device == "CPUExecutionProvider"
        assert engine.embed(images(engine.card.input_size)).shape[0] == 2
    (target,) = [t for t in targets.list_targets([onnx_model], ("cuda",))]
    row = targets.measure_row(target, 1, lambda engine: {})
    assert (row["backend"], row["status"]) == ("ort-cuda", "unavailable")
    assert row["reason"] == (
        "onnxruntime could not start CUDAExecutionProvider here (it fell back to "
        "CPUExecutionProvider); check the GPU, CUDA and cuDNN libraries"
    )


def test_only_the_torch_engine_waits_in_synchronize() -> None:
    """The latency timings: ``embed`` of onnxruntime and TensorRT waits for its own work, so
    their ``synchronize`` is the lifecycle's no-op and adds nothing to a timed call."""
    from sketchsearch.runtime.engines.lifecycle import EngineLifecycle
    from sketchsearch.runtime.engines.onnx_engine import OnnxEngine
    from sketchsearch.runtime.engines.tensorrt_engine import TensorRTEngine

    for engine in (OnnxEngine, TensorRTEngine):
        assert engine.synchronize is EngineLifecycle.synchronize, engine


def test_the_engines_package_exports_open_engine_without_loading_the_table() -> None:
    from sketchsearch.runtime import engines

    assert engines.open_engine is open_engine
    assert engines.BackendUnavailableError is BackendUnavailableError
    assert engines.EngineError is EngineError and "Engine" in dir(engines)
    code = (
        "import sys\n"
        "import sketchsearch.runtime.engines, sketchsearch.runtime.engines.protocol\n"
        "print(sorted(m for m in ('sketchsearch.runtime.engines.table', 'onnxruntime', 'torch')"
        " if m in sys.modules))\n"
        "from sketchsearch.runtime.engines import open_engine\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_test_engine_has_the_same_lifecycle() -> None:
    with ColourEngine() as engine:
        engine.synchronize()
        assert engine.embed(images(8)).shape == (2, 3)
    with pytest.raises(EngineError, match="closed"):
        engine.embed(images(8))
    engine.close()
