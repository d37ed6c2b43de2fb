"""The TensorRT parser lint passes every real export and fails each graph built to break a rule.

The bad graphs are made from real exports, the way they really arise: a model that transposes
the uint8 image before casting it (what every export did before), and onnxruntime's
``quantize_static`` with the options TensorRT refuses (asymmetric activations, quantized bias,
a quantized stem). Smaller breaks (an unsupported operator, a dynamic image axis, a non-constant
``axes``) are edits of a real export's graph.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from sketchsearch.cli.export_commands import export
from sketchsearch.cli.main import run
from sketchsearch.export.precision import TENSORRT_QDQ_OPTIONS, _Calibration, stem_convolutions
from sketchsearch.export.tensorrt_lint import (
    TensorRTCompatibilityError,
    lint_file,
    lint_model,
    require_compatible,
)
from sketchsearch.runtime.model_card import read_onnx_card
from sketchsearch.train.checkpoint_card import load_with_card


def rules(model: onnx.ModelProto) -> set[str]:
    return {finding.rule for finding in lint_model(model).errors}


# --- every real export passes ---


@pytest.mark.parametrize("backbone", ["resnet10t", "test_efficientnet"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_every_real_export_passes_and_says_so_in_its_report(
    real_exports: dict[str, dict[str, Path]], backbone: str, precision: str
) -> None:
    path = real_exports[backbone][precision]
    report = lint_file(path)
    assert report.passed, report.lines()
    assert report.findings == [] and report.nodes > 20
    written = json.loads(path.with_name(path.name + ".verify.json").read_text())
    assert written["tensorrt_lint"]["passed"] is True
    assert written["tensorrt_lint"]["tensorrt"] == "10.13"
    graph = onnx.load(str(path)).graph
    readers = [node.op_type for node in graph.node if "images" in node.input]
    assert readers == ["Cast"]  # the uint8 image is cast before anything else reads it


def test_int8_exports_are_symmetric_with_float_bias_and_a_float_stem(
    real_exports: dict[str, dict[str, Path]],
) -> None:
    for models in real_exports.values():
        model = onnx.load(str(models["int8"]))
        constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
        assert len(qdq) > 10
        zero_points = [constants[n.input[2]] for n in qdq if len(n.input) > 2]
        assert zero_points and all(not z.any() for z in zero_points)
        dequantized = {n.input[0] for n in qdq if n.op_type == "DequantizeLinear"}
        assert all(constants[name].dtype == np.int8 for name in dequantized if name in constants)
        report = json.loads(models["int8"].with_name("model.int8.onnx.verify.json").read_text())
        assert report["calibration"]["requested"] == "auto"
        assert {t["method"] for t in report["calibration"]["trials"]} == {"minmax", "percentile"}
        assert report["calibration"]["method"] in ("minmax", "percentile")


def test_the_lint_command_and_its_exit_codes(
    real_exports: dict[str, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = real_exports["resnet10t"]["int8"]
    assert run(export, ["lint", str(good)]) == 0
    assert "no problem found" in capsys.readouterr().out
    assert run(export, ["lint", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model")
    assert run(export, ["lint", str(junk)]) == 3
    assert "not an ONNX model" in capsys.readouterr().err
    assert run(export, ["lint", str(tmp_path / "missing.onnx")]) == 2


# --- graphs built to break each rule ---


class PermuteFirst(nn.Module):
    """The serving graph as every export had it: transpose the uint8 image, then cast."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.model(images.permute(0, 3, 1, 2), "query")[0]
        return embedding


@pytest.fixture(scope="module")
def permute_first(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    loaded = load_with_card(tiny_run / "best.ckpt", "fp32")
    path = tmp_path_factory.mktemp("permute-first") / "model.onnx"
    example = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    torch.onnx.export(
        PermuteFirst(loaded.model).eval(),
        (example,),
        str(path),
        input_names=["images"],
        output_names=["embedding"],
        dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=64)}},
        dynamo=True,
        external_data=False,
    )
    return path


def test_a_transpose_on_the_uint8_image_is_caught(permute_first: Path) -> None:
    report = lint_file(permute_first)
    assert not report.passed
    uint8 = [f for f in report.errors if f.rule == "uint8-intermediate"]
    assert len(uint8) == 1 and uint8[0].where.startswith("Transpose")
    assert "cast the uint8 image to float" in uint8[0].message


def test_export_tensorrt_refuses_it_before_tensorrt_is_needed(
    permute_first: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sketchsearch.cli.tensorrt_commands import tensorrt

    output = tmp_path / "model.plan"
    args = ["--onnx", str(permute_first), "--output", str(output), "--no-verify"]
    assert run(tensorrt, args) == 3
    err = capsys.readouterr().err
    assert "[uint8-intermediate] Transpose" in err and len(err.strip().splitlines()) == 1
    assert not output.exists()
    # --no-lint leaves it to the parser: here, that means to the missing TensorRT
    assert run(tensorrt, [*args, "--no-lint"]) == 2
    assert "TensorRT" in capsys.readouterr().err


@pytest.fixture(scope="module")
def prepared(real_exports: dict[str, dict[str, Path]], tmp_path_factory: pytest.TempPathFactory):
    """The fp32 resnet10t, pre-processed for quantization as the exporter does it."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = real_exports["resnet10t"]["fp32"]
    path = tmp_path_factory.mktemp("quantize") / "prepared.onnx"
    quant_pre_process(str(source), str(path), skip_symbolic_shape=True)
    return source, path


def quantize(prepared, tmp_path: Path, tiny_run: Path, options: dict, exclude_stem: bool) -> Path:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    source, path = prepared
    card = read_onnx_card(source)
    images = sorted((tiny_run.parent / "data").rglob("*.png"))[:32]
    output = tmp_path / "quantized.onnx"
    quantize_static(
        str(path),
        str(output),
        _Calibration(images, card.preprocess, card.input_name, card.input_dtype),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=stem_convolutions(onnx.load(str(path))) if exclude_stem else [],
        extra_options=options,
    )
    return output


@pytest.mark.parametrize(
    ("change", "exclude_stem", "rule", "message"),
    [
        ({}, True, None, None),  # the exporter's own options: clean
        ({"ActivationSymmetric": False}, True, "qdq-zero-point", "non-zero value"),
        ({"QuantizeBias": True}, True, "qdq-input-type", "of type INT32"),
        ({}, False, "int8-stem", "over 3 input channels"),
    ],
)
def test_each_quantization_option_tensorrt_refuses_is_caught(
    prepared, tmp_path: Path, tiny_run: Path, change, exclude_stem, rule, message
) -> None:
    options = {**TENSORRT_QDQ_OPTIONS, **change}
    report = lint_file(quantize(prepared, tmp_path, tiny_run, options, exclude_stem))
    if rule is None:
        assert report.passed, report.lines()
        return
    assert {f.rule for f in report.errors} == {rule}
    assert message in report.errors[0].message
    with pytest.raises(TensorRTCompatibilityError, match=rule):
        require_compatible(report, tmp_path / "quantized.onnx")


@pytest.fixture
def fp32(real_exports: dict[str, dict[str, Path]]) -> onnx.ModelProto:
    return onnx.load(str(real_exports["resnet10t"]["fp32"]))


def test_operators_without_an_importer_are_caught(fp32: onnx.ModelProto) -> None:
    graph = fp32.graph
    graph.node.append(helper.make_node("Unique", ["embedding"], ["unique"], name="dedupe"))
    graph.node.append(
        helper.make_node("Normalizer", ["embedding"], ["ml"], name="ml", domain="ai.onnx.ml")
    )
    findings = lint_model(fp32).errors
    assert [(f.rule, f.where) for f in findings] == [
        ("operator", "Unique dedupe"),
        ("operator", "Normalizer ml"),
    ]
    assert "listed as unsupported" in findings[0].message
    assert "plugin" in findings[1].message


def test_a_dynamic_image_axis_is_caught(fp32: onnx.ModelProto) -> None:
    assert rules(fp32) == set()
    fp32.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "height"
    findings = lint_model(fp32).errors
    assert [f.rule for f in findings] == ["dynamic-shape"]
    assert "axis 1 is dynamic (height)" in findings[0].message


def test_an_opset_beyond_the_table_is_caught(fp32: onnx.ModelProto) -> None:
    fp32.opset_import[0].version = 23
    assert rules(fp32) == {"operator"}


def test_operator_and_tensor_types_resize_and_maxpool_indices(fp32: onnx.ModelProto) -> None:
    graph = fp32.graph
    graph.node.append(helper.make_node("Cast", ["embedding"], ["ints"], to=TensorProto.INT32))
    graph.node.append(helper.make_node("Sigmoid", ["ints"], ["sig"], name="sigmoid_of_ints"))
    graph.node.append(helper.make_node("Cast", ["embedding"], ["u16"], to=TensorProto.UINT16))
    report = lint_model(fp32)
    assert {(f.rule, f.where) for f in report.errors} == {
        ("operator-type", "Sigmoid sigmoid_of_ints"),
        ("tensor-type", "Cast (unnamed)"),
    }
    pool = next(node for node in graph.node if node.op_type == "MaxPool")
    pool.output.append("indices")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    graph.initializer.append(scales)
    resize = helper.make_node("Resize", [pool.output[0], "", "scales"], ["big"], mode="cubic")
    graph.node.append(resize)
    messages = [f.message for f in lint_model(fp32).errors if f.rule == "attribute"]
    assert messages == [
        "MaxPool's Indices output is unsupported",
        "Resize mode 'cubic' is unsupported",
    ]


def test_constant_inputs_pool_attributes_and_types(fp32: onnx.ModelProto) -> None:
    graph = fp32.graph
    graph.input.append(helper.make_tensor_value_info("axes", TensorProto.INT64, [1]))
    graph.node.append(helper.make_node("ReduceMean", ["embedding", "axes"], ["mean"], name="rm"))
    graph.node.append(helper.make_node("Cast", ["embedding"], ["wide"], to=TensorProto.DOUBLE))
    pool = next(node for node in graph.node if node.op_type == "MaxPool")
    pool.attribute.append(helper.make_attribute("dilations", [2, 2]))
    report = lint_model(fp32)
    assert {(f.rule, f.severity) for f in report.findings} == {
        ("constant-input", "error"),
        ("attribute", "error"),
        ("tensor-type", "warning"),
    }


def test_a_quantize_scale_that_is_not_a_constant_or_not_positive_is_caught(
    real_exports: dict[str, dict[str, Path]],
) -> None:
    model = onnx.load(str(real_exports["resnet10t"]["int8"]))
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    scale = next(t for t in model.graph.initializer if t.name == node.input[1])
    scale.CopyFrom(numpy_helper.from_array(np.array(-0.5, np.float32), scale.name))
    assert rules(model) == {"qdq-scale"}
    model = onnx.load(str(real_exports["resnet10t"]["int8"]))
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    model.graph.input.append(helper.make_tensor_value_info("scale", TensorProto.FLOAT, []))
    node.input[1] = "scale"
    assert [f.message for f in lint_model(model).errors] == ["scale 'scale' is not a constant"]


def q_dq_graph(weight_channels: int, zero_point: bool) -> onnx.ModelProto:
    """x → Q → DQ → Conv, the weights float → Q → DQ: the other way QDQ files store weights."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Constant", [], ["s"], value_float=0.05),
        helper.make_node("QuantizeLinear", ["x", "s", *(["z"] if zero_point else [])], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", *(["z"] if zero_point else [])], ["xd"]),
        helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd"], ["y"], name="stem"),
    ]
    initializers = [
        numpy_helper.from_array(
            rng.normal(size=(4, weight_channels, 3, 3)).astype(np.float32), "w"
        ),
        numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
        numpy_helper.from_array(np.array(0, np.int8), "wz"),
        numpy_helper.from_array(np.array(0, np.int8), "z"),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", weight_channels, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_qdq_without_zero_points_or_with_constant_node_scales_is_fine() -> None:
    model = q_dq_graph(8, zero_point=False)  # the scale from a Constant's value_float
    assert lint_model(model).findings == []
    scale = numpy_helper.from_array(np.array(0.05, np.float32))
    model.graph.node[0].CopyFrom(helper.make_node("Constant", [], ["s"], value=scale))
    assert lint_model(model).findings == []


def test_a_quantized_stem_is_caught_with_float_weights_behind_q_and_dq_too() -> None:
    assert rules(q_dq_graph(8, zero_point=True)) == set()
    assert rules(q_dq_graph(3, zero_point=True)) == {"int8-stem"}


def test_export_onnx_warns_but_writes_a_file_tensorrt_cannot_take(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "model.onnx"
    args = ["onnx", "--checkpoint", str(tiny_run / "best.ckpt"), "--output", str(output)]
    assert run(export, [*args, "--opset", "21", "--no-verify"]) == 0  # for onnxruntime: fine
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "no TensorRT engine can be built from it" in warning[0]
    assert "-[x] TensorRT 10.13 parser rules: 1 error(s)" in captured.out
    written = json.loads(output.with_name("model.onnx.verify.json").read_text())
    assert written["verified"] is False and written["tensorrt_lint"]["passed"] is False
    assert written["tensorrt_lint"]["findings"][0]["rule"] == "operator"
