"""The result grid as drawn: frame colours read back from the PNG, the legend, caption wrapping."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sketchsearch.runtime.output.grid import (
    GREEN,
    GREY,
    RED,
    TILE,
    query_category,
    render_grid,
    text_width,
    wrap_caption,
)
from sketchsearch.runtime.retriever import Answer, Match

GALLERY_LABELS = {"dog", "cat"}


def _picture(path: Path, value: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    cv2.imwrite(str(path), rng.integers(0, 255, (40, 30, 3), dtype=np.uint8))
    return str(path)


def _match(rank: int, file: str, label: str | None, confident: bool = True) -> Match:
    return Match(rank, rank, Path(file).name, file, label, 0.9 - rank / 10, confident)


@pytest.fixture
def answers(tmp_path: Path) -> list[Answer]:
    dog = _picture(tmp_path / "gallery" / "dog" / "d.png", 1)
    other = _picture(tmp_path / "gallery" / "dog" / "e.png", 2)
    return [  # a hit, a miss (cat is a gallery label no result has), an unknown category (cow)
        Answer(_picture(tmp_path / "q" / "dog" / "q1.png", 3), [_match(1, dog, "dog")]),
        Answer(_picture(tmp_path / "q" / "cat" / "q2.png", 4), [_match(1, other, "dog")]),
        Answer(_picture(tmp_path / "q" / "cow" / "q3.png", 5), [_match(1, dog, "dog", False)]),
    ]


def _runs(column: np.ndarray) -> list[tuple[int, int, int]]:
    """The colours down a pixel column, one entry per run of equal non-white pixels."""
    runs: list[tuple[int, int, int]] = []
    previous = None
    for pixel in map(tuple, column.tolist()):
        if pixel != previous and pixel != (255, 255, 255):
            runs.append(pixel)
        previous = pixel
    return runs


def _drawn(answers: list[Answer], out: Path, labels: set[str] | None) -> np.ndarray:
    render_grid(answers, out, gallery_labels=labels)
    return cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)


def test_query_frames_tell_hit_miss_and_unknown_apart(answers, tmp_path) -> None:
    image = _drawn(answers, tmp_path / "grid.png", GALLERY_LABELS)
    assert _runs(image[:, 2])[:3] == [GREEN, RED, GREY]  # left edge of each query frame
    result_edge = TILE + 2 * 6 + 2  # the first result's frame, next to the query tile
    assert _runs(image[:, result_edge])[:2] == [GREEN, RED]


def test_without_gallery_labels_the_drawn_results_stand_in(answers, tmp_path) -> None:
    """The caller's fallback: cat is in no result, so its query cannot be called a miss."""
    image = _drawn(answers, tmp_path / "grid.png", None)
    assert _runs(image[:, 2])[:3] == [GREEN, GREY, GREY]


def test_a_legend_under_the_rows_explains_every_colour(answers, tmp_path) -> None:
    image = _drawn(answers, tmp_path / "grid.png", GALLERY_LABELS)
    column = image[:, 2]
    last_frame = max(y for y in range(len(column)) if tuple(column[y]) == GREY)
    below = {tuple(p) for p in image[last_frame + 1 :].reshape(-1, 3).tolist()}
    assert {GREEN, RED, GREY} <= below  # the swatches; the rows above end with a grey frame
    ink = (image[last_frame + 1 :] < 100).all(axis=2).sum()
    assert ink > 500  # and the words beside them


def test_the_query_caption_names_a_known_category(answers) -> None:
    assert query_category(answers[1], GALLERY_LABELS) == "cat"  # a miss still has its category
    assert query_category(answers[2], GALLERY_LABELS) is None  # cow: not a gallery label


@pytest.mark.parametrize(
    "text",
    [
        "1. 0.873 a category with quite a few words in its name",
        "query: sketch_of_an_extremely_long_file_name_without_spaces_0001.png",
        "failed: cannot decode image file photos/airplane/n02691156_10151-3.jpg (truncated)",
        "WWWWW iiiiiiiiii MMMMM",
    ],
)
def test_captions_break_between_words_and_fit_the_cell(text: str) -> None:
    lines = wrap_caption(text, TILE)
    assert all(text_width(line) <= TILE for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")  # nothing lost or added
    for word in text.split():
        if text_width(word) <= TILE:  # a word that fits a line is never split
            assert any(word in line.split() for line in lines), word


def test_only_a_word_wider_than_the_cell_is_broken() -> None:
    name = "n02691156_10151-3_an_unusually_long_file_name.png"
    lines = wrap_caption(f"query: {name}", TILE)
    assert lines[0] == "query:"
    assert "".join(lines[1:]) == name and len(lines) > 2
    assert wrap_caption("1. 0.873 airplane", TILE) == ["1. 0.873 airplane"]
    assert wrap_caption("", TILE) == []
