"""`sketchsearch export triton`: every config is parsed with Triton's own schema and compared
with an onnxruntime session of the same file.

No Triton server runs here, and a TensorRT plan cannot be opened without TensorRT and a GPU:
the plan tests use a stand-in file with the sidecar card our TensorRT build writes, which is
where the profile comes from; the plan's bytes are only checked to be copied unchanged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sketchsearch.cli.main import cli, run
from sketchsearch.export.triton_config import (
    CARD_PARAMETER,
    TritonConfigError,
    card_from_config,
    check_config,
    request_inputs,
)
from sketchsearch.gallery.commit import CRASH_ENV
from sketchsearch.runtime.engines.onnx_engine import OnnxEngine
from sketchsearch.runtime.model_card import (
    ModelCard,
    ModelCardError,
    TensorRTInfo,
    read_onnx_card,
    read_sidecar,
    write_sidecar,
)
from sketchsearch.runtime.preprocess import preprocess_batch

# onnxruntime's type names → Triton's, written out here independently of the exporter's table.
ORT_TO_TRITON = {"tensor(uint8)": "TYPE_UINT8", "tensor(float)": "TYPE_FP32"}


CLI = "from sketchsearch.cli.main import main; main()"


def export_triton(*args: object) -> int:
    return run(cli, ["export", "triton", *map(str, args)])


def export_triton_process(
    *args: object, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The command as users run it, in its own process (which a crash point may kill)."""
    return subprocess.run(
        [sys.executable, "-c", CLI, "export", "triton", *map(str, args)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def parse_config(model_dir: Path) -> model_config_pb2.ModelConfig:
    config = model_config_pb2.ModelConfig()
    text_format.Parse((model_dir / "config.pbtxt").read_text(encoding="utf-8"), config)
    return config


def expected_tensors(tensors: list[ort.NodeArg]) -> list[tuple[str, str, list[int]]]:
    """(name, Triton type, dims without batch) from onnxruntime; dynamic axes are -1."""
    return [
        (t.name, ORT_TO_TRITON[t.type], [d if isinstance(d, int) else -1 for d in t.shape[1:]])
        for t in tensors
    ]


def config_tensors(tensors: object) -> list[tuple[str, str, list[int]]]:
    return [
        (t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims))
        for t in tensors  # type: ignore[attr-defined]
    ]


def plan_with_profile(tmp_path: Path, onnx_path: Path, min_batch: int, max_batch: int) -> Path:
    """A stand-in .plan (TensorRT is not installed here) with the sidecar card our build writes."""
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"stand-in for a serialized TensorRT engine")
    info = TensorRTInfo("10.8.0", "NVIDIA H200", "9.0", min_batch, 8, max_batch, "fp32")
    write_sidecar(plan, read_onnx_card(onnx_path).with_changes(tensorrt=info))
    return plan


def assert_loadable(repo: Path, sources: dict[str, Path]) -> None:
    """What Triton would load: only model folders (no hidden ones), each config parses and
    every version folder holds the whole model file its platform names."""
    for model_dir in repo.iterdir():
        assert not model_dir.name.startswith("."), f"Triton would try to load {model_dir}"
        config = parse_config(model_dir)
        suffix = {"onnxruntime_onnx": ".onnx", "tensorrt_plan": ".plan"}[config.platform]
        versions = [p for p in model_dir.iterdir() if p.is_dir()]
        assert versions, model_dir
        for version in versions:
            model = (version / f"model{suffix}").read_bytes()
            assert model == sources[suffix].read_bytes()


@pytest.mark.parametrize("variant", ["fp32", "fp16", "float32-input"])
def test_config_follows_the_graph(
    variant: str,
    triton_variants: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = triton_variants[variant]
    repo = tmp_path / "repo"
    code = export_triton(
        "--onnx", model, "--out", repo, "--name", "tiny", "--preferred-batch", "4,8",
        "--max-queue-delay-us", 500, "--instances", 2,
    )  # fmt: skip
    assert code == 0
    assert (
        "\n-[✓] config parsed by Triton's ModelConfig (tritonclient 2." in capsys.readouterr().out
    )
    config = parse_config(repo / "tiny")
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert config_tensors(config.input) == expected_tensors(session.get_inputs())
    assert config_tensors(config.output) == expected_tensors(session.get_outputs())
    assert (config.name, config.platform, config.max_batch_size) == (
        "tiny",
        "onnxruntime_onnx",
        64,
    )
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    (group,) = config.instance_group
    assert (group.count, group.kind) == (2, model_config_pb2.ModelInstanceGroup.KIND_AUTO)
    card = ModelCard.from_json(config.parameters[CARD_PARAMETER].string_value, "config")
    assert card == read_onnx_card(model)
    assert (repo / "tiny" / "1" / "model.onnx").read_bytes() == model.read_bytes()
    assert sorted(p.name for p in repo.iterdir()) == ["tiny"]  # no staging folder left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # nor beside it
    umask = os.umask(0)
    os.umask(umask)
    assert (repo / "tiny").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0o700


def test_the_variants_really_differ_in_types(triton_variants: dict[str, Path]) -> None:
    """Otherwise the test above could not tell a config copied from the graph from a fixed one."""
    sessions = {k: ort.InferenceSession(str(p)) for k, p in triton_variants.items()}
    assert sessions["fp32"].get_inputs()[0].type == "tensor(uint8)"
    assert sessions["fp16"].get_outputs()[0].type == "tensor(float)"  # fp32 I/O kept
    assert sessions["float32-input"].get_inputs()[0].type == "tensor(float)"
    assert [o.name for o in sessions["float32-input"].get_outputs()] == ["embedding"]


def test_a_static_batch_axis_is_refused(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = onnx.load(str(tiny_onnx))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    static = tmp_path / "static.onnx"
    onnx.save(model, str(static))
    assert export_triton("--onnx", static, "--out", tmp_path / "repo") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "not a dynamic batch axis" in error
    assert not (tmp_path / "repo" / "sketchsearch").exists()


def test_an_existing_version_needs_overwrite(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    assert export_triton("--onnx", tiny_onnx, "--out", repo) == 0
    assert export_triton("--onnx", tiny_onnx, "--out", repo, "--max-batch", 16) == 2
    assert "pass --overwrite to replace it, or --model-version 2" in capsys.readouterr().err
    assert parse_config(repo / "sketchsearch").max_batch_size == 64  # untouched
    assert export_triton("--onnx", tiny_onnx, "--out", repo, "--max-batch", 16, "--overwrite") == 0
    assert parse_config(repo / "sketchsearch").max_batch_size == 16
    assert (
        export_triton("--onnx", tiny_onnx, "--out", repo, "--model-version", 2, "--max-batch", 16)
        == 0
    )
    assert sorted(p.name for p in (repo / "sketchsearch").iterdir()) == ["1", "2", "config.pbtxt"]
    assert sorted(p.name for p in repo.iterdir()) == ["sketchsearch"]


def test_a_new_version_may_not_change_the_config_all_versions_share(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    assert export_triton("--onnx", tiny_onnx, "--out", repo) == 0
    before = (repo / "sketchsearch" / "config.pbtxt").read_text(encoding="utf-8")
    assert (
        export_triton("--onnx", tiny_onnx, "--out", repo, "--model-version", 2, "--max-batch", 16)
        == 2
    )
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "all versions share it: pass --overwrite" in error
    assert sorted(p.name for p in (repo / "sketchsearch").iterdir()) == ["1", "config.pbtxt"]
    assert (repo / "sketchsearch" / "config.pbtxt").read_text(encoding="utf-8") == before
    args = ("--onnx", tiny_onnx, "--out", repo, "--model-version", 2, "--max-batch", 16)
    assert export_triton(*args, "--overwrite") == 0  # replaces the config for every version
    assert parse_config(repo / "sketchsearch").max_batch_size == 16
    assert sorted(p.name for p in (repo / "sketchsearch").iterdir()) == ["1", "2", "config.pbtxt"]


@pytest.mark.parametrize(
    ("point", "existing"),
    [("triton-staged", False), ("triton-staged", True), ("triton-model-moved", True)],
)
def test_a_killed_run_leaves_only_loadable_model_folders(
    tiny_onnx: Path, tmp_path: Path, point: str, existing: bool
) -> None:
    """Triton loads every folder of the repository, hidden ones too: a run killed between
    staging and commit, or halfway through the commit, must leave nothing else there."""
    plan = plan_with_profile(tmp_path, tiny_onnx, 1, 64)
    repo = tmp_path / "repo"
    sources = {".onnx": tiny_onnx, ".plan": plan}
    if existing:
        assert export_triton("--onnx", tiny_onnx, "--out", repo) == 0
    args = ("--onnx", tiny_onnx, "--plan", plan, "--out", repo, "--overwrite")
    killed = export_triton_process(*args, env={CRASH_ENV: point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if existing:
        assert_loadable(repo, sources)
    else:
        assert list(repo.iterdir()) == []
    (leftover,) = tmp_path.glob(".repo.sketchsearch.staging-*")  # beside the repository
    live = tmp_path / f".repo.sketchsearch.staging-{os.getpid()}-live"  # a run still going
    other = tmp_path / ".repo.other.staging-1-x"  # another model's
    live.mkdir()
    other.mkdir()
    done = export_triton_process(*args)
    assert done.returncode == 0, done.stderr
    assert_loadable(repo, sources)
    assert parse_config(repo / "sketchsearch").platform == "tensorrt_plan"
    assert [p.name for p in (repo / "sketchsearch" / "1").iterdir()] == ["model.plan"]
    assert not leftover.exists() and live.is_dir() and other.is_dir()


def test_preferred_batches_above_the_max_are_refused(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--onnx", tiny_onnx, "--out", tmp_path, "--max-batch", 8, "--preferred-batch", "4,16")
    assert export_triton(*args) == 2
    assert "from 1 to the max batch 8" in capsys.readouterr().err


def test_a_plan_takes_its_max_batch_from_the_profile(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = plan_with_profile(tmp_path, tiny_onnx, 1, 32)
    repo = tmp_path / "repo"
    assert export_triton("--onnx", tiny_onnx, "--plan", plan, "--out", repo) == 0
    assert "plan built with TensorRT 10.8.0 on NVIDIA H200" in capsys.readouterr().out
    config = parse_config(repo / "sketchsearch")
    assert (config.platform, config.max_batch_size) == ("tensorrt_plan", 32)
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    session = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    assert config_tensors(config.input) == expected_tensors(session.get_inputs())
    card = ModelCard.from_json(config.parameters[CARD_PARAMETER].string_value, "config")
    assert card.tensorrt is not None and card.tensorrt.max_batch == 32
    assert (repo / "sketchsearch" / "1" / "model.plan").read_bytes() == plan.read_bytes()


def test_a_plan_replaces_an_onnx_version_without_leaving_both(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    plan = plan_with_profile(tmp_path, tiny_onnx, 1, 64)
    repo = tmp_path / "repo"
    assert export_triton("--onnx", tiny_onnx, "--out", repo) == 0
    assert export_triton("--onnx", tiny_onnx, "--plan", plan, "--out", repo, "--overwrite") == 0
    assert [p.name for p in (repo / "sketchsearch" / "1").iterdir()] == ["model.plan"]
    assert parse_config(repo / "sketchsearch").platform == "tensorrt_plan"


@pytest.mark.parametrize(
    ("min_batch", "max_batch", "args", "message"),
    [
        (1, 32, ("--max-batch", 64), "profile allows batches up to 32"),
        (2, 64, (), "min batch is 2"),
        (1, 64, ("--kind", "cpu"), "GPUs only"),
    ],
)
def test_a_plan_triton_would_reject_is_refused(
    tiny_onnx: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    min_batch: int,
    max_batch: int,
    args: tuple[object, ...],
    message: str,
) -> None:
    plan = plan_with_profile(tmp_path, tiny_onnx, min_batch, max_batch)
    repo = tmp_path / "repo"
    assert export_triton("--onnx", tiny_onnx, "--plan", plan, "--out", repo, *args) == 2
    assert message in capsys.readouterr().err
    assert not (repo / "sketchsearch").exists()


def test_a_plan_without_its_card_or_from_another_model_is_refused(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare" / "model.plan"
    bare.parent.mkdir()
    bare.write_bytes(b"engine")
    assert export_triton("--onnx", tiny_onnx, "--plan", bare, "--out", tmp_path / "repo") == 3
    assert "model card is missing" in capsys.readouterr().err
    plan = plan_with_profile(tmp_path, tiny_onnx, 1, 64)
    write_sidecar(plan, read_sidecar(plan).with_changes(family="0" * 64))  # another model
    assert export_triton("--onnx", tiny_onnx, "--plan", plan, "--out", tmp_path / "repo") == 4
    assert "built from another model" in capsys.readouterr().err


def test_the_schema_check_catches_misspelled_and_ill_typed_fields(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    assert export_triton("--onnx", tiny_onnx, "--out", tmp_path) == 0
    text = (tmp_path / "sketchsearch" / "config.pbtxt").read_text(encoding="utf-8")
    assert check_config(text, "good") is not None  # the real text passes
    broken = {
        "misspelled": text.replace("max_batch_size:", "max_batch_sise:"),
        "ill-typed": text.replace("max_batch_size: 64", 'max_batch_size: "64"'),
        "unknown enum": text.replace("KIND_AUTO", "KIND_TPU"),
    }
    for case, bad in broken.items():
        assert bad != text, case
        with pytest.raises(text_format.ParseError):
            text_format.Parse(bad, model_config_pb2.ModelConfig())
        with pytest.raises(TritonConfigError, match="schema rejects"):
            check_config(bad, case)


@pytest.mark.parametrize("variant", ["fp32", "float32-input"])
def test_a_client_request_from_the_served_config_embeds_as_the_runtime_does(
    variant: str, triton_variants: dict[str, Path], tmp_path: Path
) -> None:
    """The README's client path without a server: card from the config, request from the card,
    and onnxruntime on the repository's model file standing in for Triton."""
    model = triton_variants[variant]
    assert export_triton("--onnx", model, "--out", tmp_path) == 0
    config = parse_config(tmp_path / "sketchsearch")
    card = card_from_config(config, "config.pbtxt")
    rng = np.random.default_rng(15)
    images = [rng.integers(0, 256, (40 + 9 * i, 56, 3), dtype=np.uint8) for i in range(3)]
    (request,) = request_inputs(images, card)
    assert request.name() == config.input[0].name
    assert "TYPE_" + request.datatype() == model_config_pb2.DataType.Name(config.input[0].data_type)
    assert request.shape()[1:] == list(config.input[0].dims)
    dtype = np.float32 if card.input_dtype == "float32" else np.uint8
    # InferInput has no public accessor for its data; _get_content() is what the client's
    # own request builder (tritonclient.grpc._utils._get_inference_request) sends.
    sent = np.frombuffer(request._get_content(), dtype=dtype).reshape(request.shape())
    served = ort.InferenceSession(str(tmp_path / "sketchsearch" / "1" / "model.onnx"))
    (embedding,) = served.run(["embedding"], {request.name(): sent})
    with OnnxEngine(model) as engine:
        local = engine.embed(preprocess_batch(images, engine.card.preprocess))
    np.testing.assert_allclose(embedding, local, atol=1e-5)


def test_a_config_without_the_card_is_refused() -> None:
    with pytest.raises(ModelCardError, match=r"no 'sketchsearch\.model_card' parameter"):
        card_from_config(model_config_pb2.ModelConfig(name="other"), "other/config.pbtxt")


def test_the_client_half_needs_neither_onnx_nor_torch() -> None:
    """A client installs sketchsearch with [triton] only: no [export], no [train]."""
    code = (
        "import sys; from sketchsearch.export.triton_config import request_inputs; "
        "assert not {'onnx', 'torch'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_tritonclient_the_config_is_written_and_said_unchecked(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    """The [triton] extra is optional: a process where `import tritonclient` fails."""
    code = f"import sys; sys.modules['tritonclient'] = None; {CLI}"
    args = ["export", "triton", "--onnx", str(tiny_onnx), "--out", str(tmp_path)]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()[-1]
    assert (
        last
        == "-[ ] config not checked against Triton's schema: pip install 'sketchsearch[triton]'"
    )
    assert parse_config(tmp_path / "sketchsearch").name == "sketchsearch"  # still valid


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--max-batch", 2**31),
        ("--instances", 2**31),
        ("--instances", 0),
        ("--max-queue-delay-us", 2**64),
        ("--max-queue-delay-us", -1),
        ("--model-version", 2**63),
    ],
)
def test_numbers_out_of_the_configs_range_are_usage_errors(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: int
) -> None:
    assert export_triton("--onnx", tiny_onnx, "--out", tmp_path / "repo", flag, value) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"error: {flag} must be from ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["..", "a/b", "a\\b", ".x", "", "graphs", "my model?"])
def test_a_name_that_is_not_a_plain_model_folder_is_refused(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    assert export_triton("--onnx", tiny_onnx, "--out", parent / "repo", "--name", name) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"error: --name {name!r}: ")
    assert list(tmp_path.iterdir()) == [parent] and list(parent.iterdir()) == []


def test_a_tensor_with_only_the_batch_axis_is_refused(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = onnx.load(str(tiny_onnx))
    del model.graph.output[0].type.tensor_type.shape.dim[1:]
    rank1 = tmp_path / "rank1.onnx"
    onnx.save(model, str(rank1))
    assert export_triton("--onnx", rank1, "--out", tmp_path / "repo") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "has only the batch axis" in error
    assert not (tmp_path / "repo").exists()


def test_files_where_folders_go_are_named(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "repo.txt"
    a_file.write_text("not a folder")
    assert export_triton("--onnx", tiny_onnx, "--out", a_file) == 2
    assert (
        capsys.readouterr().err
        == f"error: --out {a_file}: {a_file} is a file: give a folder for the repository\n"
    )
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "sketchsearch").write_text("not a folder")
    assert export_triton("--onnx", tiny_onnx, "--out", tmp_path / "repo") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{tmp_path / 'repo' / 'sketchsearch'}: a file where" in error
    assert export_triton("--onnx", tiny_onnx, "--out", a_file / "repo") == 2
    error = capsys.readouterr().err
    assert (
        error
        == f"error: --out {a_file / 'repo'}: {a_file} is a file: give a folder for the repository\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "repo.txt"]
