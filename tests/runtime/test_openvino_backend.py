"""The OpenVINO backend: its place in the backend table, parity with onnxruntime on real photos,
its IR with the card inside (written only once it passed), one engine called from several
threads, and the one-line errors of ``--backend`` and ``export parity``.

Every model is a real export (of the tiny trained model, or of an untrained 8-d one where
another embedding size is the point); the photos are scikit-image's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import ExitCode, UsageError
from sketchsearch.export.backend_parity import MIN_COSINE, check_parity, min_cosine, parity_images
from sketchsearch.export.pipeline import ExportOptions, export_onnx
from sketchsearch.export.to_openvino_ir import export_openvino
from sketchsearch.export.verify import THRESHOLDS
from sketchsearch.runtime.engines.backend import OpenOptions
from sketchsearch.runtime.engines.openvino_engine import read_openvino_card
from sketchsearch.runtime.engines.protocol import EngineError
from sketchsearch.runtime.engines.table import (
    backend_named,
    describe_backends,
    find_backend,
    open_engine,
)
from sketchsearch.runtime.model_card import CARD_KEY, ModelCardError, read_onnx_card


@pytest.fixture(scope="module")
def onnx_model(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copy(tiny_onnx, tmp_path_factory.mktemp("openvino") / "model.onnx"))


def edited(source: Path, target: Path, card_edit: Any = None, noise: float = 0.0) -> Path:
    """A copy of ``source`` with its card edited, or its first conv's weights perturbed."""
    model = onnx.load(str(source))
    if card_edit is not None:
        (prop,) = [prop for prop in model.metadata_props if prop.key == CARD_KEY]
        card = json.loads(prop.value)
        card_edit(card)
        prop.value = json.dumps(card)
    if noise:
        weights = next(i for i in model.graph.initializer if len(i.dims) == 4)
        values = numpy_helper.to_array(weights)
        rng = np.random.default_rng(0)
        changed = values + rng.normal(scale=noise * values.std(), size=values.shape)
        weights.CopyFrom(numpy_helper.from_array(changed.astype(values.dtype), weights.name))
    onnx.save(model, str(target))
    return target


# --- the table ---


def test_openvino_claims_its_ir_and_also_opens_onnx_without_claiming_it() -> None:
    backend = backend_named("openvino")
    assert backend.suffixes == (".xml",) and backend.also_opens == (".onnx",)
    assert backend.extra == "openvino"
    assert [offer.key for offer in backend.offers] == ["openvino-cpu"]
    assert find_backend(Path("model.xml")) is backend
    assert find_backend(Path("model.onnx")).name == "onnxruntime"  # the default stays
    assert ".xml (OpenVINO, also .onnx by --backend, needs [openvino])" in describe_backends()


def test_an_onnx_opens_on_openvino_by_name(onnx_model: Path) -> None:
    photos, _ = parity_images(read_onnx_card(onnx_model))
    with open_engine(onnx_model, threads=2, backend="openvino") as engine:
        assert (engine.backend, engine.device) == ("openvino", "OpenVINO CPU")
        embeddings = engine.embed(photos)
        assert engine.embed(photos[:0]).shape == (0, engine.card.embed_dim)
    assert embeddings.shape == (len(photos), engine.card.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    with pytest.raises(EngineError, match="closed"):
        engine.embed(photos)
    # The lead's way in: the table's entry with plain options.
    with backend_named("openvino").open(onnx_model, OpenOptions(threads=2)) as engine:
        assert engine.card == read_onnx_card(onnx_model)


def test_openvino_embeds_real_photos_as_onnxruntime_does(onnx_model: Path) -> None:
    report = check_parity(onnx_model, onnx_model, "openvino", threads=2)
    assert report.passed and report.min_cosine >= MIN_COSINE, report
    assert report.images == 6 and "scikit-image" in report.images_source


def test_the_parity_check_fails_on_another_model(onnx_model: Path, tmp_path: Path) -> None:
    other = edited(onnx_model, tmp_path / "other.onnx", noise=0.5)
    report = check_parity(onnx_model, other, "openvino", threads=2)
    assert not report.passed and report.min_cosine < MIN_COSINE
    code = run(
        cli, ["export", "parity", "--onnx", str(onnx_model), "--backend", "openvino",
              "--model", str(other)]
    )  # fmt: skip
    assert code == ExitCode.MISMATCH


def test_an_int8_file_is_held_to_its_export_bar_not_to_float_parity() -> None:
    """Each backend runs a quantized graph with its own int8 kernels: measured 0.998 apart."""
    assert min_cosine("fp32") == min_cosine("fp16") == MIN_COSINE == 0.9999
    assert min_cosine("int8") == THRESHOLDS["int8"][0] == 0.98


def test_a_card_that_disagrees_with_the_graph_is_refused(onnx_model: Path, tmp_path: Path) -> None:
    def size(card: dict) -> None:
        card["preprocess"]["input_size"] = 48  # the graph takes 32

    bad = edited(onnx_model, tmp_path / "bad.onnx", card_edit=size)
    with pytest.raises(ModelCardError, match="input size: card 48, graph 32x32"):
        open_engine(bad, backend="openvino")


# --- the IR ---


def test_the_ir_keeps_the_card_and_embeds_as_the_onnx(onnx_model: Path, tmp_path: Path) -> None:
    result = export_openvino(onnx_model, tmp_path / "ir" / "model.xml")
    assert result.path.is_file() and result.path.with_suffix(".bin").is_file()
    assert result.parity.passed and result.parity.min_cosine >= MIN_COSINE
    assert read_openvino_card(result.path) == read_onnx_card(onnx_model)
    with open_engine(result.path, threads=2) as engine:  # by suffix: no --backend needed
        assert engine.backend == "openvino"
    assert check_parity(onnx_model, result.path, "openvino").passed


def test_export_openvino_command(onnx_model: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "cli.xml"
    code = run(cli, ["export", "openvino", "--onnx", str(onnx_model), "--output", str(target)])
    out = capsys.readouterr().out
    assert code == 0 and target.is_file(), out
    assert "-[✓] openvino vs onnxruntime: cosine min" in out
    code = run(cli, ["export", "openvino", "--onnx", str(onnx_model), "--output", "x.onnx"])
    assert code == ExitCode.USAGE
    assert "an OpenVINO IR is a .xml file" in capsys.readouterr().err


# --- --backend errors, one line each ---


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("openvin", "--backend openvin: no such engine backend (did you mean 'openvino'?)"),
        ("tensorrt", "--backend tensorrt: it runs .plan/.engine files, not model.onnx"),
    ],
)
def test_a_backend_that_cannot_run_the_file_is_one_line(
    onnx_model: Path, name: str, message: str, capsys
) -> None:
    with pytest.raises(UsageError, match="--backend"):
        open_engine(onnx_model, backend=name)
    code = run(
        cli,
        ["retrieve", "--engine", str(onnx_model), "--query", str(onnx_model), "--backend", name],
    )
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_openvino_not_installed_names_the_extra(onnx_model: Path) -> None:
    script = (
        "import sys; sys.modules['openvino'] = None\n"
        "from sketchsearch.runtime.engines.table import open_engine\n"
        "from sketchsearch.runtime.engines.protocol import BackendUnavailableError\n"
        "try:\n"
        f"    open_engine({str(onnx_model)!r}, backend='openvino')\n"
        "except BackendUnavailableError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "pip install 'sketchsearch[openvino]'" in done.stdout, done.stderr


# --- one engine, several threads ---


def test_embed_from_four_threads_gives_each_call_its_own_result(onnx_model: Path) -> None:
    """The service calls one engine from several threads; OpenVINO's one request is shared."""
    photos, _ = parity_images(read_onnx_card(onnx_model))
    batches = [photos[i : i + 1 + i % 3] for i in range(4)]  # 4 inputs, 1-3 images each
    barrier = threading.Barrier(4)
    with open_engine(onnx_model, threads=1, backend="openvino") as engine:
        expected = [engine.embed(batch) for batch in batches]

        def embed_together(batch: np.ndarray) -> list[np.ndarray]:
            found = []
            for _ in range(20):
                barrier.wait()  # all four call embed at once, 20 times over
                found.append(engine.embed(batch))
            return found

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(embed_together, batches))
    for wanted, found in zip(expected, results, strict=True):
        for embeddings in found:
            np.testing.assert_allclose(embeddings, wanted, rtol=0, atol=1e-6)


# --- export openvino: crash-safe, and a failed check writes nothing ---


def with_random_noise(source: Path, target: Path) -> Path:
    """A copy of ``source`` that adds RandomUniformLike noise (±100) to its embedding before
    normalising: each backend draws its own numbers, so the two surely embed differently."""
    model = onnx.load(str(source))
    graph = model.graph
    (head,) = [i for i, node in enumerate(graph.node) if "linear" in node.output]
    for node in graph.node:
        if node.op_type in ("ReduceL2", "Div") and "linear" in node.input:
            node.input[list(node.input).index("linear")] = "noisy"
    make = onnx.helper.make_node
    graph.node.insert(head + 1, make("Add", ["linear", "noise"], ["noisy"]))
    graph.node.insert(
        head + 1, make("RandomUniformLike", ["linear"], ["noise"], low=-100.0, high=100.0)
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


def test_a_failed_check_keeps_the_earlier_good_ir(onnx_model: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "ir" / "model.xml"
    command = ["export", "openvino", "--output", str(target)]
    assert run(cli, [*command, "--onnx", str(onnx_model)]) == 0
    good = (target.read_bytes(), target.with_suffix(".bin").read_bytes())
    capsys.readouterr()
    noisy = with_random_noise(onnx_model, tmp_path / "noisy.onnx")
    code = run(cli, [*command, "--onnx", str(noisy)])
    err = capsys.readouterr().err
    assert code == ExitCode.MISMATCH, err
    assert f"{target}: openvino does not embed as onnxruntime does" in err
    assert (target.read_bytes(), target.with_suffix(".bin").read_bytes()) == good
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.bin", "model.xml"]
    assert check_parity(onnx_model, target, "openvino", threads=1).passed  # still loads, alike


# --- export parity: files that are not a pair ---


@pytest.fixture(scope="module")
def other_dim_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real export of another model: 8-d embeddings (the tiny run's are 16-d), also 32 px."""
    from sketchsearch.benchmarks.make_checkpoint import make_checkpoint

    folder = tmp_path_factory.mktemp("other-dim")
    checkpoint = make_checkpoint(folder / "other.ckpt", "resnet10t", 32, embed_dim=8, num_classes=3)
    options = ExportOptions(checkpoint=checkpoint, output=folder / "other.onnx", verify=False)
    (result,) = export_onnx(options)
    return result.path


def test_parity_refuses_a_model_of_another_embedding_size(
    onnx_model: Path, other_dim_model: Path, capsys
) -> None:
    command = ["export", "parity", "--onnx", str(onnx_model), "--backend", "openvino"]
    code = run(cli, [*command, "--model", str(other_dim_model)])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE, err
    assert (
        f"{other_dim_model} is not a conversion of {onnx_model}: it takes 32 px images and " in err
    )
    assert "gives 8-d embeddings, model.onnx 32 px and 16-d" in err
    assert len(err.strip().splitlines()) == 1


def test_parity_wants_an_onnx_reference_and_names_the_option_used(
    onnx_model: Path, tmp_path: Path, capsys
) -> None:
    ir = export_openvino(onnx_model, tmp_path / "model.xml").path
    code = run(cli, ["export", "parity", "--onnx", str(ir), "--backend", "openvino"])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert f"--onnx {ir}: the reference is the .onnx file that onnxruntime runs" in err
    assert "--backend" not in err and len(err.strip().splitlines()) == 1
