"""A contact sheet: one PNG that shows what a data root holds, photo by photo with its sketches.

It is the quickest way to eyeball a data set (the demo's, or a real Sketchy copy) and to check
that photos and sketches are paired as the layout parser thinks they are.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from sketchsearch.data.errors import UsageError
from sketchsearch.data.imagefile import read_image
from sketchsearch.data.layouts import Collection, Item, scan

MAX_SKETCHES = 2  # sketches shown after each photo
GAP = 3  # pixels between cells; separators are drawn in the gaps
_WHITE = (255, 255, 255)
_RULE = (190, 190, 190)
_FONT = cv2.FONT_HERSHEY_SIMPLEX

Row = list[tuple[Item, list[Item]]]


def write_contact_sheet(
    root: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    *,
    categories: int = 6,
    photos_per_category: int = 3,
    cell: int = 96,
) -> Path:
    """Write the sheet and return its path.

    One row per category: a label cell, then each photo followed by up to two of its sketches.
    The sheet is ``columns * cell + (columns + 1) * GAP`` wide, with ``columns = 1 +
    photos_per_category * (1 + k)`` where k is the most sketches (at most 2) shown for any photo,
    and ``rows * cell + (rows + 1) * GAP`` high.
    """
    for flag, value, least in (
        ("categories", categories, 1),
        ("photos_per_category", photos_per_category, 1),
        ("cell", cell, 16),
    ):
        if value < least:
            raise UsageError(f"contact sheet: {flag} {value}: must be at least {least}")
    collection = scan(root)
    rows = _rows(collection, categories, photos_per_category)
    if not rows:
        raise UsageError(f"{collection.root}: no photos to show in a contact sheet")
    sheet = _compose(collection.root, rows, photos_per_category, cell)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok, buffer = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError("OpenCV cannot encode PNG images")
    out.write_bytes(buffer.tobytes())
    return out


def _rows(collection: Collection, categories: int, photos: int) -> dict[str, Row]:
    """The first photos of the first categories that have any, each with its sketches."""
    query, gallery = collection.domains
    by_category: dict[str, list[Item]] = defaultdict(list)
    sketches: dict[str | None, list[Item]] = defaultdict(list)
    unpaired: dict[str, list[Item]] = defaultdict(list)
    for item in collection.items:
        if item.domain == gallery:
            by_category[item.category].append(item)
        elif item.domain == query and item.instance is not None:
            sketches[item.instance].append(item)
        elif item.domain == query:
            unpaired[item.category].append(item)
    rows: dict[str, Row] = {}
    for category in sorted(by_category)[:categories]:
        chosen = sorted(by_category[category], key=lambda it: it.path)[:photos]
        spare = sorted(unpaired[category], key=lambda it: it.path)
        rows[category] = [
            (photo, _sketches_of(photo, j, sketches, spare)) for j, photo in enumerate(chosen)
        ]
    return rows


def _sketches_of(
    photo: Item, j: int, paired: dict[str | None, list[Item]], spare: list[Item]
) -> list[Item]:
    """Paired sketches when the layout knows instances; otherwise the category's next ones."""
    if photo.instance is not None:
        return sorted(paired.get(photo.instance, []), key=lambda it: it.path)[:MAX_SKETCHES]
    return spare[j * MAX_SKETCHES : (j + 1) * MAX_SKETCHES]


def _compose(root: Path, rows: dict[str, Row], photos: int, cell: int) -> NDArray[np.uint8]:
    shown = max((len(s) for row in rows.values() for _, s in row), default=0)
    group = 1 + shown
    columns = 1 + photos * group
    width = columns * cell + (columns + 1) * GAP
    height = len(rows) * cell + (len(rows) + 1) * GAP
    sheet = np.full((height, width, 3), 255, np.uint8)
    for r, (category, row) in enumerate(rows.items()):
        top = GAP + r * (cell + GAP)
        _label(sheet, category, GAP, top, cell)
        for j, (photo, sketches) in enumerate(row):
            for k, item in enumerate([photo, *sketches]):
                left = GAP + (1 + j * group + k) * (cell + GAP)
                sheet[top : top + cell, left : left + cell] = _thumbnail(root / item.path, cell)
    _separators(sheet, len(rows), photos, group, cell)
    return sheet


def _thumbnail(path: Path, cell: int) -> NDArray[np.uint8]:
    """The image fitted into a square cell, letterboxed on white, as BGR."""
    image = cv2.cvtColor(read_image(path), cv2.COLOR_RGB2BGR)
    h, w = image.shape[:2]
    scale = cell / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image, size, interpolation=interpolation)
    out = np.full((cell, cell, 3), 255, np.uint8)
    y, x = (cell - size[1]) // 2, (cell - size[0]) // 2
    out[y : y + size[1], x : x + size[0]] = small
    return out


def _separators(sheet: NDArray[np.uint8], rows: int, photos: int, group: int, cell: int) -> None:
    """Thin rules between rows, after the label column and between photo groups."""
    height, width = sheet.shape[:2]
    middle = GAP // 2
    for r in range(1, rows):
        y = r * (cell + GAP) + middle
        cv2.line(sheet, (0, y), (width - 1, y), _RULE, 1)
    for j in range(photos):
        x = (1 + j * group) * (cell + GAP) + middle
        cv2.line(sheet, (x, 0), (x, height - 1), _RULE, 1)


def _label(sheet: NDArray[np.uint8], text: str, left: int, top: int, cell: int) -> None:
    """The category name, wrapped at underscores and shrunk until it fits its cell."""
    scale = max(0.3, cell / 240)
    lines = _wrap(text, scale, cell - 6)
    while scale > 0.25 and any(_text_width(line, scale) > cell - 6 for line in lines):
        scale -= 0.05
        lines = _wrap(text, scale, cell - 6)
    line_height = int(cv2.getTextSize("Hg", _FONT, scale, 1)[0][1] * 1.8) + 1
    y = top + max(line_height, (cell - line_height * len(lines)) // 2 + line_height)
    for line in lines:
        cv2.putText(sheet, line, (left + 3, y), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
        y += line_height


def _text_width(text: str, scale: float) -> int:
    return int(cv2.getTextSize(text, _FONT, scale, 1)[0][0])


def _wrap(text: str, scale: float, width: int) -> list[str]:
    words = text.replace("_", "_ ").split(" ")
    lines: list[str] = []
    for word in words:
        if lines and _text_width(lines[-1] + word, scale) <= width:
            lines[-1] += word
        else:
            lines.append(word)
    return [line.rstrip(" ") for line in lines]
