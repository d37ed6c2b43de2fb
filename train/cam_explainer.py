"""Grad-CAM for retrieval: which regions made a query and a match similar.

Each side is explained by the other: the query's map is the gradient of cos(query, match)
with the match's embedding held fixed, and the match's map the same with the query's held
fixed (``similarity_target.py``). Images are preprocessed exactly as for serving.

The command is ``sketchsearch analyze gradcam`` (or the entry script ``python train/gradcam.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytorch_grad_cam
import torch

from sketchsearch.runtime.output.retrieve_json import read_retrieve_results
from sketchsearch.runtime.preprocess import preprocess_file
from sketchsearch.train.cam_figure import PairExplanation, render_rows, save_png
from sketchsearch.train.cam_layers import CamLayer, find_cam_layer
from sketchsearch.train.cam_methods import METHODS, check_method
from sketchsearch.train.embedding_model import EmbeddingModel
from sketchsearch.train.similarity_target import EmbeddingBranch, SimilarityTarget, image_tensor


class Explainer:
    """A model, a CAM method and the target layer of each domain's encoder, found once."""

    def __init__(
        self,
        model: EmbeddingModel,
        method: str = "gradcam",
        device: str = "cpu",
        layer: str | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.method = check_method(method)
        self.device = device
        size = model.config.img_size
        self.layers = {
            domain: find_cam_layer(self._encoder(domain), size, layer)
            for domain in ("query", "gallery")
        }

    def explain(self, query_image: np.ndarray, match_image: np.ndarray) -> PairExplanation:
        """Both maps for preprocessed uint8 S×S×3 images (query domain, gallery domain)."""
        query = image_tensor(query_image).to(self.device)
        match = image_tensor(match_image).to(self.device)
        with torch.no_grad():
            query_vector = self.model.embed(query, "query")[0]
            match_vector = self.model.embed(match, "gallery")[0]
        return PairExplanation(
            query_image=query_image,
            match_image=match_image,
            query_cam=self.cam(query, "query", SimilarityTarget(match_vector)),
            match_cam=self.cam(match, "gallery", SimilarityTarget(query_vector)),
            score=float(torch.dot(query_vector, match_vector)),
            method=self.method,
        )

    def cam(self, images: torch.Tensor, domain: str, target: SimilarityTarget) -> np.ndarray:
        """float32 S×S map in [0, 1] of one float image batch [1, 3, S, S]."""
        layer: CamLayer = self.layers[domain]
        method: Callable[..., pytorch_grad_cam.GradCAM] = getattr(
            pytorch_grad_cam, METHODS[self.method]
        )
        cam = method(
            model=EmbeddingBranch(self.model, domain),
            target_layers=[layer.module],
            reshape_transform=layer.reshape_transform,
        )
        try:  # not `with cam`: its __exit__ prints and swallows IndexErrors
            maps = cam(input_tensor=images, targets=[target])
        finally:
            cam.activations_and_grads.release()
        return np.asarray(maps[0], dtype=np.float32)

    def _encoder(self, domain: str) -> torch.nn.Module:
        key = domain if self.model.config.separate_encoders else "query"
        encoder: torch.nn.Module = self.model.encoders[key]
        return encoder

    def explain_files(
        self, query: str | os.PathLike[str], match: str | os.PathLike[str], caption: str = "match"
    ) -> PairExplanation:
        """Read and preprocess both images as serving does, then explain them."""
        config = self.model.config.preprocess()
        explained = self.explain(preprocess_file(query, config), preprocess_file(match, config))
        return replace(explained, match_caption=caption)


def explain_pair(
    explainer: Explainer,
    query: str | os.PathLike[str],
    match: str | os.PathLike[str],
    out: str | os.PathLike[str],
) -> tuple[Path, PairExplanation]:
    """Write the figure of one pair; returns its path and the explanation."""
    explained = explainer.explain_files(query, match, Path(match).name)
    title = f"Grad-CAM ({explainer.method}): {Path(query).name} vs {Path(match).name}"
    return save_png(render_rows([explained], title), out), explained


def explain_retrieve_run(
    explainer: Explainer,
    results: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    top_k: int = 3,
    gallery_root: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """One figure per query of a ``retrieve --json`` file, with a row per top-k match."""
    written = []
    records = read_retrieve_results(results, gallery_root)
    for number, record in enumerate(records, 1):
        rows = [
            explainer.explain_files(
                record.query,
                str(match.file),
                f"#{match.rank} {match.label or Path(match.path).name}",
            )
            for match in record.matches[:top_k]
        ]
        if not rows:
            continue
        query = Path(record.query)
        title = f"Grad-CAM ({explainer.method}): top {len(rows)} for {query.name}"
        name = f"{number:03d}-{query.stem}.png"
        written.append(save_png(render_rows(rows, title), Path(out_dir) / name))
    return written
