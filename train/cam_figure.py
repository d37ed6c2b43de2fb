"""The Grad-CAM figure: per matched pair one row of query | query heat-map | match heat-map |
match, with the cosine printed on it. One drawing path for single pairs and retrieve runs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pytorch_grad_cam.utils.image import show_cam_on_image

MIN_TILE = 224  # small model inputs (64-96 px) are enlarged so the heat-map can be read
CAPTION = 24
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class PairExplanation:
    query_image: np.ndarray  # uint8 S×S×3: the preprocessed image the model saw
    match_image: np.ndarray
    query_cam: np.ndarray  # float32 S×S in [0, 1]: the query explained by the match
    match_cam: np.ndarray  # the match explained by the query
    score: float  # cosine of the two embeddings
    method: str
    match_caption: str = "match"


def render_rows(rows: Sequence[PairExplanation], title: str) -> np.ndarray:
    """RGB uint8 image: a title bar, then one row per pair."""
    tile = max(MIN_TILE, rows[0].query_image.shape[0])
    body = [_row(row, tile) for row in rows]
    width = body[0].shape[1]
    return np.concatenate([_caption(title, width, scale=0.55), *body], axis=0)


def save_png(image: np.ndarray, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{target}: OpenCV could not encode the figure")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(encoded.tobytes())
    return target


def overlay_cam(image: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """The heat-map over the image the model saw (uint8 RGB), as the library draws it."""
    return np.asarray(show_cam_on_image(image.astype(np.float32) / 255.0, cam, use_rgb=True))


def _row(row: PairExplanation, tile: int) -> np.ndarray:
    cos = f"cos {row.score:.3f}"
    tiles = [
        _tile(row.query_image, None, tile, "query"),
        _tile(row.query_image, row.query_cam, tile, f"query, by match: {cos}"),
        _tile(row.match_image, row.match_cam, tile, f"match, by query: {cos}"),
        _tile(row.match_image, None, tile, row.match_caption),
    ]
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2], gap, tiles[3]], axis=1)


def _tile(image: np.ndarray, cam: np.ndarray | None, size: int, text: str) -> np.ndarray:
    picture = image if cam is None else overlay_cam(image, cam)
    picture = cv2.resize(picture, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.concatenate([_caption(text, size), picture], axis=0)


def _caption(text: str, width: int, scale: float = 0.45) -> np.ndarray:
    bar = np.full((CAPTION, width, 3), 255, np.uint8)
    line = text.encode("ascii", "replace").decode()
    while line and cv2.getTextSize(line, FONT, scale, 1)[0][0] > width - 8:
        line = line[:-2] + "~"  # shorten from the end until it fits
    cv2.putText(bar, line, (4, CAPTION - 8), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return bar
