"""Export of a really trained tiny model, in each precision, through the real exporters."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from sketchsearch.cli.export_commands import export
from sketchsearch.cli.main import run
from sketchsearch.data.errors import UsageError
from sketchsearch.export.pipeline import ExportOptions, export_onnx, verify_existing
from sketchsearch.export.verify import compare
from sketchsearch.runtime.model_card import ModelCard, ModelCardError, read_onnx_card
from sketchsearch.train.embedding_model import EmbeddingModel, ModelConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(real_exports: dict[str, dict[str, Path]]) -> dict[str, Path]:
    """The tiny trained resnet10t in each precision, exported with the default options."""
    return real_exports["resnet10t"]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_each_precision_verifies_and_carries_its_card(exported, tiny_run, precision) -> None:
    path = exported[precision]
    report = json.loads(path.with_name(path.name + ".verify.json").read_text())
    assert report["passed"] and report["images"] >= 8
    assert report["min_cosine"] >= {"fp32": 0.9999, "fp16": 0.999, "int8": 0.98}[precision]
    card = read_onnx_card(path)
    assert card.precision == precision and card.domain == "both"
    assert card.class_names and len(card.class_names) == 6
    assert card.split_fingerprint and card.training["model"] == "resnet10t"
    assert card.versions["torch"] and card.versions["onnx"]
    assert ModelCard.from_json(card.to_json(), "again") == card
    onnx.checker.check_model(str(path), full_check=True)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_dynamic_batch_uint8_nhwc_in_unit_embeddings_out(exported, precision) -> None:
    session = ort.InferenceSession(str(exported[precision]), providers=["CPUExecutionProvider"])
    (image_input,) = session.get_inputs()
    assert image_input.type == "tensor(uint8)" and image_input.shape[1:] == [32, 32, 3]
    rng = np.random.default_rng(0)
    for batch in (1, 3, 8):
        images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
        embedding, logits = session.run(None, {"images": images})
        assert embedding.shape == (batch, 16) and embedding.dtype == np.float32
        assert logits.shape == (batch, 6)
        np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-3)


def test_fp16_and_int8_files_are_smaller(exported) -> None:
    sizes = {name: path.stat().st_size for name, path in exported.items()}
    assert sizes["fp16"] < 0.6 * sizes["fp32"] and sizes["int8"] < 0.4 * sizes["fp32"]
    int8 = onnx.load(str(exported["int8"]))
    assert any(node.op_type == "QuantizeLinear" for node in int8.graph.node)  # explicit QDQ


def test_corrupted_weights_fail_verification(exported, tiny_run, tmp_path) -> None:
    model = onnx.load(str(exported["fp32"]))
    first_conv = next(node for node in model.graph.node if node.op_type == "Conv")
    weight = next(t for t in model.graph.initializer if t.name == first_conv.input[1])
    values = numpy_helper.to_array(weight).copy()
    values.flat[: values.size // 3] *= -1.0  # flip the sign of a third of the stem's weights
    weight.CopyFrom(numpy_helper.from_array(values, weight.name))
    corrupted = tmp_path / "corrupted.onnx"
    onnx.save(model, str(corrupted))

    report = verify_existing(tiny_run / "best.ckpt", corrupted)
    assert not report.passed and report.min_cosine < 0.9999
    code = run(
        export, ["verify", "--checkpoint", str(tiny_run / "best.ckpt"), "--onnx", str(corrupted)]
    )
    assert code == 4
    assert verify_existing(tiny_run / "best.ckpt", exported["fp32"]).passed  # the original


def test_compare_catches_nan_and_ranking_changes() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(20, 8)).astype(np.float32)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    assert compare(reference, reference.copy(), "int8", "t").passed
    with_nan = reference.copy()
    with_nan[3, 0] = np.nan
    failed = compare(reference, with_nan, "fp16", "t")
    assert not failed.passed and failed.has_nan
    shuffled = compare(reference, reference[::-1].copy(), "fp32", "t")
    assert not shuffled.passed


def test_calibration_refuses_too_few_images(tiny_run, tmp_path) -> None:
    few = tmp_path / "few"
    few.mkdir()
    source = sorted((Path(tiny_run).parent / "data").rglob("*.png"))[:5]
    for path in source:
        (few / path.name).write_bytes(path.read_bytes())
    options = ExportOptions(
        checkpoint=tiny_run / "best.ckpt",
        output=tmp_path / "m.onnx",
        precision="int8",
        calib_images=few,
    )
    with pytest.raises(UsageError, match="at least one batch"):
        export_onnx(options)
    assert not (tmp_path / "m.onnx").exists()


def test_a_checkpoint_without_images_asks_for_them(tiny_run, tmp_path) -> None:
    lone = tmp_path / "lone.ckpt"
    lone.write_bytes((tiny_run / "best.ckpt").read_bytes())
    options = ExportOptions(checkpoint=lone, output=tmp_path / "m.onnx")
    with pytest.raises(UsageError, match="--calib-images"):
        export_onnx(options)
    (result,) = export_onnx(replace(options, verify=False, dynamo=False))
    assert result.verification is None
    assert read_onnx_card(result.path).checkpoint_sha256 == read_onnx_card(result.path).family


def test_float_input_variant_and_legacy_exporter(tiny_run, tmp_path) -> None:
    options = ExportOptions(
        checkpoint=tiny_run / "best.ckpt",
        output=tmp_path / "float.onnx",
        input_dtype="float32",
        dynamo=False,
        with_logits=False,
    )
    (result,) = export_onnx(options)
    assert result.verification is not None and result.verification.passed
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"
    assert [o.name for o in session.get_outputs()] == ["embedding"]
    assert read_onnx_card(result.path).input_dtype == "float32"


def test_separate_encoders_export_one_file_per_domain(tmp_path) -> None:
    config = ModelConfig(
        backbone="resnet10t",
        embed_dim=8,
        num_classes=3,
        img_size=32,
        crop_pct=0.875,
        interpolation="bicubic",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        separate_encoders=True,
    )
    model = EmbeddingModel(config)
    checkpoint = tmp_path / "sep.ckpt"
    torch.save(
        {
            "hyper_parameters": {"model_config": config.to_dict()},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        checkpoint,
    )
    images = tmp_path / "images"
    images.mkdir()
    import cv2

    rng = np.random.default_rng(2)
    for index in range(10):
        cv2.imwrite(str(images / f"{index}.png"), rng.integers(0, 256, (40, 50, 3), np.uint8))
    results = export_onnx(
        ExportOptions(checkpoint=checkpoint, output=tmp_path / "m.onnx", calib_images=images)
    )
    assert [r.path.name for r in results] == ["m.query.onnx", "m.gallery.onnx"]
    cards = [read_onnx_card(r.path) for r in results]
    assert [c.domain for c in cards] == ["query", "gallery"]
    assert cards[0].embeds("query") and not cards[0].embeds("gallery")
    assert all(r.verification is not None and r.verification.passed for r in results)


def test_a_file_without_card_is_refused(tmp_path) -> None:
    bare = tmp_path / "bare.onnx"
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [value("x", onnx.TensorProto.FLOAT, [1])],
        [value("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph), str(bare))
    with pytest.raises(ModelCardError, match="no sketchsearch model card"):
        read_onnx_card(bare)


def test_the_script_runs_from_the_export_folder(tiny_run, tmp_path) -> None:
    """`python export/to_onnx.py` puts export/ first on sys.path; nothing there may shadow."""
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "export" / "to_onnx.py"),
            "--checkpoint",
            str(tiny_run / "best.ckpt"),
            "--output",
            str(tmp_path / "script.onnx"),
            "--no-verify",
            "--legacy",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (tmp_path / "script.onnx").is_file()
    bad = subprocess.run(
        [
            sys.executable,
            str(REPO / "export" / "to_onnx.py"),
            "--checkpoint",
            "nope.ckpt",
            "--output",
            str(tmp_path / "x.onnx"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 3 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("error: nope.ckpt")


def test_unreadable_images_and_files_are_clear_errors(tiny_run, tmp_path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for index in range(20):
        (bad / f"{index}.jpg").write_text("not an image")
    checkpoint = tiny_run / "best.ckpt"
    with pytest.raises(UsageError, match="no batch of 16 readable images among 20"):
        export_onnx(
            ExportOptions(checkpoint, tmp_path / "m.onnx", precision="int8", calib_images=bad)
        )
    assert (
        run(
            export,
            [
                "onnx",
                "--checkpoint",
                str(checkpoint),
                "--output",
                str(tmp_path / "m.onnx"),
                "--calib-images",
                str(bad),
            ],
        )
        == 4
    )
    assert not (tmp_path / "m.onnx").exists()
    text = tmp_path / "text.onnx"
    text.write_text("hello")
    with pytest.raises(ModelCardError, match="not an ONNX model") as caught:
        verify_existing(checkpoint, text)
    assert caught.value.exit_code == 3


def test_compare_requires_unit_length_and_enough_images_for_rankings() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(12, 8)).astype(np.float32)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    unnormalised = compare(reference, reference * 3.0, "fp32", "t")
    assert not unnormalised.passed and "unit length" in unnormalised.failures[-1]
    few = compare(reference[:3], reference[:3].copy(), "int8", "t")
    assert not few.passed and "at least 8" in few.failures[0]
    assert compare(reference[:3], reference[:3].copy(), "fp32", "t").passed
