"""Result grids: each query, then its top-k with scores; green/red frames mark right/wrong.

A query's label is its parent folder's name when that is one of its results' labels (the
Sketchy and generic layouts keep images in category folders). Results below the match
threshold are dimmed. Drawn with OpenCV, so the runtime needs no plotting library.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from sketchsearch.data.errors import ImageDecodeError
from sketchsearch.data.imagefile import read_image
from sketchsearch.runtime.retriever import Answer

TILE = 128
CAPTION = 34
PAD = 6
GREEN, RED, GREY, BLUE = (40, 170, 40), (210, 40, 40), (150, 150, 150), (40, 90, 200)  # RGB


def query_label(answer: Answer) -> str | None:
    parent = Path(answer.query).parent.name
    return parent if any(m.label == parent for m in answer.matches) else None


def render_grid(
    answers: Sequence[Answer],
    out: str | os.PathLike[str],
    tile: int = TILE,
    overlays: Mapping[tuple[int, int], np.ndarray] | None = None,
) -> Path:
    """``overlays`` replace tile pictures by (row, column), column 0 being the query: the
    Grad-CAM views of `retrieve --explain`."""
    rows = [_row(answer, tile, row, overlays or {}) for row, answer in enumerate(answers)]
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = np.concatenate(rows, axis=0)
    target = Path(out)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {target}")
    target.write_bytes(encoded.tobytes())
    return target


def _row(
    answer: Answer, tile: int, row: int, overlays: Mapping[tuple[int, int], np.ndarray]
) -> np.ndarray:
    label = query_label(answer)
    caption = f"query: {label or Path(answer.query).name}"
    tiles = [_tile(answer.query, caption, BLUE, tile, overlays.get((row, 0)))]
    if answer.error:
        tiles.append(_blank(f"failed: {answer.error}"[:40], RED, tile))
    for match in answer.matches:
        if label is None or match.label is None:
            colour = GREY
        else:
            colour = GREEN if match.label == label else RED
        caption = f"{match.rank}. {match.score:.3f} {match.label or ''}"
        picture = overlays.get((row, match.rank))
        image = _tile(match.file or match.path, caption, colour, tile, picture)
        if not match.confident:
            image = (image.astype(np.float32) * 0.45 + 255 * 0.55).astype(np.uint8)
        tiles.append(image)
    return np.concatenate(tiles, axis=1)


def _tile(
    path: str,
    caption: str,
    colour: tuple[int, int, int],
    tile: int,
    picture: np.ndarray | None = None,
) -> np.ndarray:
    try:
        image = picture if picture is not None else read_image(path)
    except (ImageDecodeError, OSError):
        return _blank(caption, colour, tile)
    scale = tile / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    canvas = _blank(caption, colour, tile)
    top = PAD + (tile - small.shape[0]) // 2
    left = PAD + (tile - small.shape[1]) // 2
    canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    return canvas


def _blank(caption: str, colour: tuple[int, int, int], tile: int) -> np.ndarray:
    canvas = np.full((tile + 2 * PAD + CAPTION, tile + 2 * PAD, 3), 255, np.uint8)
    cv2.rectangle(canvas, (1, 1), (tile + 2 * PAD - 2, tile + 2 * PAD - 2), colour, 4)
    for line, text in enumerate(_wrap(caption, tile)):
        cv2.putText(
            canvas,
            text,
            (PAD, tile + 2 * PAD + 13 + 15 * line),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (20, 20, 20),
            1,
            cv2.LINE_AA,
        )
    return canvas


def _wrap(text: str, tile: int) -> list[str]:
    per_line = max(8, tile // 7)
    return [text[i : i + per_line] for i in range(0, min(len(text), 2 * per_line), per_line)]
