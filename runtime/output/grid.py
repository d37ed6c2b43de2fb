"""Result grids: each query, then its top-k with scores; frame colours say hit, miss or unknown.

A query's category is its parent folder's name (the Sketchy and generic layouts keep images in
category folders), and it counts only when the gallery holds that label. Then the query is a
hit (green frame) when one of its results carries the label and a miss (red) when none does;
a result is green when it has the query's category and red when it has another. Everything
else is unknown (grey): a query whose folder is not a gallery label, a result without a label.
A legend under the grid says so; results below the match threshold are faded. Drawn with
OpenCV, so the runtime needs no plotting library.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sketchsearch.data.errors import ImageDecodeError
from sketchsearch.data.imagefile import read_image
from sketchsearch.runtime.retriever import Answer, Match

TILE = 128
PAD = 6
LINE = 15  # caption line height, pixels
MIN_LINES, MAX_LINES = 2, 4  # caption lines per row: rows stay even, long names stay readable
FONT, SCALE, INK = cv2.FONT_HERSHEY_SIMPLEX, 0.4, (20, 20, 20)
GREEN, RED, GREY = (40, 170, 40), (210, 40, 40), (150, 150, 150)  # RGB
FADE = 0.55  # how far a below-threshold tile is washed towards white


class Outcome(enum.Enum):
    """What a frame colour says; the value is the colour (RGB)."""

    HIT = GREEN
    MISS = RED
    UNKNOWN = GREY


LEGEND = (  # what each frame colour means, for a query tile and for a result tile
    (Outcome.HIT, "green: a query whose category is among its results; a result of that category"),
    (
        Outcome.MISS,
        "red: a miss, the gallery holds the query's category but no result has it; "
        "a result of another category",
    ),
    (
        Outcome.UNKNOWN,
        "grey: category unknown, the query's folder is not a gallery label or the result has none",
    ),
)


def query_category(answer: Answer, gallery_labels: Collection[str]) -> str | None:
    """The query's parent folder when the gallery holds that label, else None (unknown)."""
    parent = Path(answer.query).parent.name
    return parent if parent in gallery_labels else None


def query_outcome(answer: Answer, gallery_labels: Collection[str]) -> Outcome:
    category = query_category(answer, gallery_labels)
    if category is None or answer.error:
        return Outcome.UNKNOWN
    hit = any(match.label == category for match in answer.matches)
    return Outcome.HIT if hit else Outcome.MISS


def match_outcome(match: Match, category: str | None) -> Outcome:
    if category is None or match.label is None:
        return Outcome.UNKNOWN
    return Outcome.HIT if match.label == category else Outcome.MISS


def render_grid(
    answers: Sequence[Answer],
    out: str | os.PathLike[str],
    tile: int = TILE,
    overlays: Mapping[tuple[int, int], np.ndarray] | None = None,
    gallery_labels: Collection[str] | None = None,
) -> Path:
    """Write the grid as a PNG. ``gallery_labels``: every label the gallery holds, which is
    what tells a miss from an unknown category; None falls back to the labels of the results
    drawn, so a category that no query found is taken for unknown. ``overlays`` replace tile
    pictures by (row, column), column 0 being the query: the Grad-CAM views of `retrieve
    --explain`."""
    if gallery_labels is None:
        gallery_labels = {m.label for a in answers for m in a.matches if m.label is not None}
    rows = [
        _row(answer, tile, row, overlays or {}, gallery_labels)
        for row, answer in enumerate(answers)
    ]
    width = max([tile + 2 * PAD, *(row.shape[1] for row in rows)])
    rows.append(legend(width))
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = np.concatenate(rows, axis=0)
    target = Path(out)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {target}")
    target.write_bytes(encoded.tobytes())
    return target


def legend(width: int) -> np.ndarray:
    """A strip explaining the frame colours, one swatch and wrapped sentence per outcome."""
    swatch = 3 * PAD
    blocks = [_legend_block("frame colours:", None, width, swatch)]
    blocks += [_legend_block(text, outcome.value, width, swatch) for outcome, text in LEGEND]
    faded = _legend_block("faded: below the match threshold", GREY, width, swatch)
    blocks.append(_fade(faded))
    return np.concatenate(blocks, axis=0)


def _legend_block(
    text: str, colour: tuple[int, int, int] | None, width: int, swatch: int
) -> np.ndarray:
    lines = wrap_caption(text, width - swatch - 3 * PAD)
    block = np.full((LINE * len(lines) + PAD, width, 3), 255, np.uint8)
    if colour is not None:
        cv2.rectangle(block, (PAD, PAD), (PAD + swatch, LINE), colour, 3)
    _write(block, lines, swatch + 2 * PAD, LINE)
    return block


@dataclass(frozen=True)
class _Cell:
    """One tile of a row before drawing: rows are drawn once their captions' height is known."""

    path: str | None
    caption: list[str]
    outcome: Outcome
    picture: np.ndarray | None = None
    faded: bool = False


def _row(
    answer: Answer,
    tile: int,
    row: int,
    overlays: Mapping[tuple[int, int], np.ndarray],
    gallery_labels: Collection[str],
) -> np.ndarray:
    category = query_category(answer, gallery_labels)
    caption = f"query: {category or Path(answer.query).name}"
    outcome = query_outcome(answer, gallery_labels)
    cells = [_Cell(answer.query, wrap_caption(caption, tile), outcome, overlays.get((row, 0)))]
    if answer.error:
        cells.append(_Cell(None, wrap_caption(f"failed: {answer.error}", tile), Outcome.MISS))
    for match in answer.matches:
        caption = f"{match.rank}. {match.score:.3f} {match.label or ''}"
        cells.append(
            _Cell(
                match.file or match.path,
                wrap_caption(caption, tile),
                match_outcome(match, category),
                overlays.get((row, match.rank)),
                faded=not match.confident,
            )
        )
    lines = min(MAX_LINES, max(MIN_LINES, *(len(cell.caption) for cell in cells)))
    tiles = [_tile(cell, tile, lines) for cell in cells]
    return np.concatenate(tiles, axis=1)


def _tile(cell: _Cell, tile: int, lines: int) -> np.ndarray:
    canvas = np.full((tile + 2 * PAD + LINE * lines + 4, tile + 2 * PAD, 3), 255, np.uint8)
    edge = tile + 2 * PAD - 2
    cv2.rectangle(canvas, (1, 1), (edge, edge), cell.outcome.value, 4)
    _write(canvas, _clip(cell.caption, lines, tile), PAD, tile + 2 * PAD + 13)
    image = cell.picture if cell.picture is not None else _read(cell.path)
    if image is not None:
        scale = tile / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        top = PAD + (tile - small.shape[0]) // 2
        left = PAD + (tile - small.shape[1]) // 2
        canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    return _fade(canvas) if cell.faded else canvas


def _read(path: str | None) -> np.ndarray | None:
    """The picture, or None for a blank tile: a grid is drawn even when a file went missing."""
    try:
        return read_image(path) if path else None
    except (ImageDecodeError, OSError):
        return None


def _write(canvas: np.ndarray, lines: list[str], left: int, baseline: int) -> None:
    for n, text in enumerate(lines):
        position = (left, baseline + LINE * n)
        cv2.putText(canvas, text, position, FONT, SCALE, INK, 1, cv2.LINE_AA)


def _fade(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) * (1 - FADE) + 255 * FADE).astype(np.uint8)


def text_width(text: str) -> int:
    """Pixels ``text`` takes in the caption font."""
    (width, _), _ = cv2.getTextSize(text, FONT, SCALE, 1)
    return int(width)


def wrap_caption(text: str, width: int) -> list[str]:
    """Lines no wider than ``width`` pixels, broken between words; a word is broken only when
    it alone is wider than a line. Measured in pixels rather than with ``textwrap``, which
    counts characters: in this proportional font "WWW" is wider than "iiiiii"."""
    lines: list[str] = []
    for word in text.split():
        joined = f"{lines[-1]} {word}" if lines else word
        if lines and text_width(joined) <= width:
            lines[-1] = joined
        else:
            lines += _split_word(word, width)
    return lines


def _split_word(word: str, width: int) -> list[str]:
    pieces = [""]
    for char in word:
        if pieces[-1] and text_width(pieces[-1] + char) > width:
            pieces.append(char)
        else:
            pieces[-1] += char
    return pieces


def _clip(lines: list[str], most: int, width: int) -> list[str]:
    """At most ``most`` lines; the last one kept ends in "..." when some were left out."""
    if len(lines) <= most:
        return lines
    last = lines[most - 1]
    while last and text_width(last + "...") > width:
        last = last[:-1]
    return [*lines[: most - 1], last + "..."]
