"""Grad-CAM overlays for `retrieve --grid … --explain CKPT`: each result explained by its query.

The runtime draws the grid (``runtime/output/grid.py``); this module only supplies the tiles that
carry a heat-map, so the drawing code exists once. Each match tile shows the match explained
by the query; the query tile shows the query explained by its top-1 match.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sketchsearch.data.errors import UsageError
from sketchsearch.runtime.retriever import Answer
from sketchsearch.train.cam_explainer import Explainer
from sketchsearch.train.cam_figure import overlay_cam
from sketchsearch.train.checkpoint import load_checkpoint, read_checkpoint

Overlays = dict[tuple[int, int], np.ndarray]  # (row, column) → RGB tile; column 0 = query


def explain_answers(
    checkpoint: str | os.PathLike[str],
    answers: Sequence[Answer],
    family: str,
    method: str = "gradcam",
) -> Overlays:
    """Overlays for every answered query and match; the checkpoint must be the engine's."""

    def check(sha256: str) -> None:  # before the file is loaded, as it always was
        if sha256 != family:
            raise UsageError(
                f"--explain {checkpoint}: not the checkpoint this model was exported from "
                f"(family {family[:12]}); pass that checkpoint"
            )

    file = read_checkpoint(checkpoint, check)  # hashed and loaded from one read
    explainer = Explainer(load_checkpoint(file), method)
    overlays: Overlays = {}
    for row, answer in enumerate(answers):
        for column, match in enumerate(answer.matches, start=1):
            image = Path(match.file) if match.file else None
            if image is None or not image.is_file():
                continue
            explained = explainer.explain_files(answer.query, image)
            overlays[(row, column)] = overlay_cam(explained.match_image, explained.match_cam)
            if column == 1:
                overlays[(row, 0)] = overlay_cam(explained.query_image, explained.query_cam)
    return overlays
