"""The torch reference engine embeds each side with its own encoder, as the ONNX files do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from sketchsearch.export.pipeline import ExportOptions, export_onnx
from sketchsearch.train.embedding_model import EmbeddingModel, ModelConfig
from sketchsearch.train.torch_engine import TorchEngine


@pytest.fixture(scope="module")
def separate_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
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
    torch.manual_seed(0)
    model = EmbeddingModel(config)
    checkpoint = tmp_path_factory.mktemp("separate") / "sep.ckpt"
    torch.save(
        {
            "hyper_parameters": {"model_config": config.to_dict()},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        checkpoint,
    )
    return checkpoint


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_gallery_side_uses_the_gallery_encoder(separate_checkpoint: Path) -> None:
    results = export_onnx(
        ExportOptions(
            checkpoint=separate_checkpoint,
            output=separate_checkpoint.with_name("m.onnx"),
            verify=False,
            simplify=False,
            with_logits=False,
        )
    )
    onnx_gallery = next(r.path for r in results if r.card.domain == "gallery")
    images = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), np.uint8)
    session = ort.InferenceSession(str(onnx_gallery), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: images})[0]

    with TorchEngine(separate_checkpoint, device="cpu", threads=1, domain="gallery") as gallery:
        assert gallery.card.domain == "gallery"
        assert gallery.card.embeds("gallery") and not gallery.card.embeds("query")
        got = gallery.embed(images)
    with TorchEngine(separate_checkpoint, device="cpu", threads=1) as query:
        assert query.card.domain == "query" and not query.card.embeds("gallery")
        query_side = query.embed(images)

    assert _cosines(got, expected).min() >= 0.999
    assert _cosines(got, query_side).max() < 0.99


def test_an_unknown_domain_is_refused(separate_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="domain must be one of"):
        TorchEngine(separate_checkpoint, device="cpu", domain="sketch")


def test_gallery_building_opens_the_checkpoint_on_its_gallery_side(
    separate_checkpoint: Path,
) -> None:
    """`gallery build`/`add` open with domain="gallery" through the backend table."""
    from sketchsearch.runtime.engines.table import open_engine

    with open_engine(separate_checkpoint, threads=1, domain="gallery") as engine:
        assert engine.card.embeds("gallery") and not engine.card.embeds("query")
    with open_engine(separate_checkpoint, threads=1) as engine:
        assert engine.card.embeds("query") and not engine.card.embeds("gallery")
