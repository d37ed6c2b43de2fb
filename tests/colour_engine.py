"""A hand-made engine: an image's embedding is its unit-length mean RGB colour.

Every score, ranking and metric computed with it can be worked out by hand, so tests of the
pipeline, evaluation and ROC use it where a real model's output would be unknowable.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from sketchsearch.data.layouts import scan
from sketchsearch.data.split_file import build_split_file, save_split
from sketchsearch.data.split_spec import SplitPart, parse_split_spec
from sketchsearch.data.splits import SplitConfig, make_split
from sketchsearch.runtime.engines.lifecycle import EngineLifecycle
from sketchsearch.runtime.engines.protocol import check_batch
from sketchsearch.runtime.model_card import ModelCard
from sketchsearch.runtime.preprocess import PreprocessConfig


class ColourEngine(EngineLifecycle):
    """The Engine protocol in full: ``with``, ``close()`` and a no-op ``synchronize()``."""

    backend = "colour"
    device = "cpu"

    def __init__(self) -> None:
        self.path = Path("colour.engine")
        self.card = ModelCard(
            backbone="mean-colour",
            embed_dim=3,
            preprocess=PreprocessConfig(input_size=8, crop_pct=1.0, interpolation="bilinear"),
            class_names=("red", "green", "blue"),
            family="c" * 64,
            checkpoint_sha256="c" * 64,
        )
        self.batches: list[int] = []

    def embed(self, images: np.ndarray) -> np.ndarray:
        self._require_open()
        check_batch(images, self.card, self.path)
        self.batches.append(len(images))
        mean = images.reshape(len(images), -1, 3).mean(axis=1).astype(np.float32)
        return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-6)

    def warmup(self, iterations: int = 2) -> None:
        pass


def solid(path: Path, rgb: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), rgb[::-1], np.uint8))
    return path


def solid_16px(path: Path, rgb: tuple[int, int, int]) -> Path:
    """``solid``'s colour in other bytes (16 px), so that a query is not a gallery item."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((16, 16, 3), rgb[::-1], np.uint8))
    return path


def colour_split(
    tmp_path: Path, red_query_is_a_photo: bool = False, name: str = "split.json"
) -> SplitPart:
    """Two sketch queries and four photos whose scores under ColourEngine are worked out by
    hand; the train part of a split of them (saved as ``tmp_path / name``).

    The red sketch has photo/red/r1.png's colour; with ``red_query_is_a_photo`` also its bytes
    (the same SHA-256: a query that is a gallery item, which evaluation refuses).
    """
    root = tmp_path / "data"
    red = root / "sketch" / "red" / "q.png"
    (solid if red_query_is_a_photo else solid_16px)(red, (255, 0, 0))
    solid(root / "sketch" / "green" / "q.png", (0, 255, 0))
    solid(root / "photo" / "red" / "r1.png", (255, 0, 0))  # red q 1.0, green q 0
    solid(root / "photo" / "green" / "g1.png", (200, 150, 0))  # red q 0.8, green q 0.6
    solid(root / "photo" / "red" / "r2.png", (150, 200, 0))  # red q 0.6, green q 0.8
    solid(root / "photo" / "blue" / "b1.png", (0, 0, 255))  # 0 for both
    collection = scan(root, "generic", domains=("sketch", "photo"))
    config = SplitConfig(fractions=(1.0, 0.0, 0.0), small_categories="train")
    split = build_split_file(collection, config, make_split(collection, config))
    return parse_split_spec(f"{save_split(split, tmp_path / name)}:train", root)


def colour_onnx(path: Path) -> Path:
    """The colour engine as a real ONNX file (unit-length mean RGB of a uint8 NHWC batch), for
    tests that drive the command line, which opens engines from files."""
    import dataclasses

    import onnx
    from onnx import TensorProto, helper

    from sketchsearch.runtime.model_card import CARD_KEY

    card = dataclasses.replace(ColourEngine().card, output_names=("embedding",))
    nodes = [
        helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("LpNormalization", ["mean"], ["embedding"], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes,
        "colour",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["n", 8, 8, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, {CARD_KEY: card.to_json()})
    onnx.save(model, str(path))
    return path
