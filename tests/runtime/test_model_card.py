"""The model card: strict reading, so a runtime never guesses from a half-understood card."""

from __future__ import annotations

import json

import pytest

from sketchsearch.runtime.model_card import (
    CARD_FORMAT_VERSION,
    ModelCard,
    ModelCardError,
    TensorRTInfo,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from sketchsearch.runtime.preprocess import PreprocessConfig


def card(**changes) -> ModelCard:
    base = ModelCard(
        backbone="resnet10t",
        embed_dim=16,
        preprocess=PreprocessConfig(input_size=32, crop_pct=0.9, interpolation="bilinear"),
        class_names=("a", "b"),
        family="f" * 64,
        checkpoint_sha256="f" * 64,
    )
    return base.with_changes(**changes)


def test_round_trip_with_and_without_tensorrt_info(tmp_path) -> None:
    plain = card(precision="int8", domain="query", training={"epochs": 3})
    assert ModelCard.from_json(plain.to_json(), "t") == plain
    info = TensorRTInfo("10.13.0", "NVIDIA H200", "9.0", 1, 8, 64, "int8")
    engine = plain.with_changes(tensorrt=info)
    write_sidecar(tmp_path / "m.plan", engine)
    assert sidecar_path(tmp_path / "m.plan").name == "m.plan.json"
    assert read_sidecar(tmp_path / "m.plan") == engine
    assert engine.embeds("query") and not engine.embeds("gallery")
    assert card().embeds("gallery") and card().num_classes == 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: raw.update(format="something-else"), "not a sketchsearch model card"),
        (lambda raw: raw.update(format_version=CARD_FORMAT_VERSION + 1), "re-export"),
        (lambda raw: raw.update(surprise=1), "unknown keys ['surprise']"),
        (lambda raw: raw.pop("family"), "lacks keys ['family']"),
        (lambda raw: raw.update(precision="int4"), "precision must be one of"),
        (lambda raw: raw["preprocess"].update(crop_pct=2.0), "crop_pct"),
    ],
)
def test_malformed_cards_are_refused_naming_the_source(edit, message) -> None:
    raw = json.loads(card().to_json())
    edit(raw)
    with pytest.raises(ModelCardError, match=r"model\.onnx") as caught:
        ModelCard.from_json(json.dumps(raw), "model.onnx")
    assert message in str(caught.value)


def test_a_missing_sidecar_says_how_to_make_one(tmp_path) -> None:
    with pytest.raises(ModelCardError, match="export tensorrt"):
        read_sidecar(tmp_path / "m.plan")
    (tmp_path / "m.plan.json").write_text("{not json")
    with pytest.raises(ModelCardError, match="not valid JSON"):
        read_sidecar(tmp_path / "m.plan")
