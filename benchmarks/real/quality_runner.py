"""Retrieval quality on a real held-out benchmark: trained models beside no-learning baselines.

Every row, whether a trained model or a baseline, goes through the same code: embed the test
part's queries (line drawings) and its whole gallery (colour images), score all pairs exactly,
and compute the runtime's own metrics (``runtime.evaluation.metrics.evaluate_retrieval``)
under two protocols:

- **category** (zero-shot): relevant = same category (OpenMoji subgroup); mAP@all;
- **instance**: relevant = the drawing's own colour image (same instance); recall@1, recall@10
  and mAP@all.

The baselines say what a model must beat to have learnt anything:

- ``pixels``: the grey image at 32×32, mean-centred (cosine = pixel correlation);
- ``edges``: Canny edges of the grey image, blurred, at 32×32, mean-centred;
- ``untrained``: the same architecture as the model with random weights (seed 0).

A model is any file the runtime opens (``.onnx``, or a ``.ckpt`` through the torch reference
engine). The split must be the benchmark's zero-shot split: its test categories are the ones no
model saw in training, so the figures are zero-shot.

    python -m sketchsearch.benchmarks.real.quality --split openmoji/split.json \\
        --data openmoji/data --model run/best.ckpt --json quality.json
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.data.errors import UsageError
from sketchsearch.data.layouts import Item

BASELINE_SIZE = 32
Features = Callable[[np.ndarray], np.ndarray]  # RGB uint8 image → 1-D float feature


@dataclass(frozen=True)
class Row:
    """One method's figures on both protocols."""

    name: str
    kind: str  # "baseline" or "model"
    category_map: float
    instance_recall_at_1: float
    instance_recall_at_10: float
    instance_map: float
    queries: int
    gallery: int
    seconds: float
    rerank: str = "none"
    notes: dict[str, Any] = field(default_factory=dict)


def pixel_features(image: np.ndarray, size: int = BASELINE_SIZE) -> np.ndarray:
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()


def edge_features(image: np.ndarray, size: int = BASELINE_SIZE) -> np.ndarray:
    """Blurred Canny edges: the classic hand-made sketch-to-photo descriptor."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(grey, 50, 150).astype(np.float32)
    sigma = image.shape[0] / 64  # 2 px at 128 px: tolerance for strokes that miss by a little
    blurred = cv2.GaussianBlur(edges, (0, 0), sigma)
    return cv2.resize(blurred, (size, size), interpolation=cv2.INTER_AREA).ravel()


BASELINES: dict[str, Features] = {"pixels": pixel_features, "edges": edge_features}


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Mean-centred, unit-length rows, so that a dot product is a correlation."""
    centred = features - features.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return (centred / np.maximum(norms, 1e-12)).astype(np.float32)


def embed_baseline(features: Features, paths: Sequence[Path]) -> np.ndarray:
    from sketchsearch.data.imagefile import read_image

    return unit_rows(np.stack([features(read_image(path)) for path in paths]))


def embed_model(model: Path, paths: Sequence[Path], threads: int | None = None) -> np.ndarray:
    from sketchsearch.runtime.engines.table import open_engine
    from sketchsearch.runtime.pipeline import embed_paths

    with open_engine(model, threads=threads) as engine:
        result = embed_paths(engine, paths, batch_size=64, progress=False)
    if result.failures:
        shown = "; ".join(str(f) for f in result.failures[:3])
        raise UsageError(f"{len(result.failures)} benchmark images failed to embed: {shown}")
    return result.vectors


def untrained_checkpoint(like: Path, folder: Path) -> Path:
    """A randomly initialised copy of ``like``'s architecture (seed 0), as a checkpoint."""
    from sketchsearch.benchmarks.make_checkpoint import make_checkpoint
    from sketchsearch.train.checkpoint import load_checkpoint

    if like.suffix != ".ckpt":
        raise UsageError(f"{like}: the untrained baseline copies a checkpoint's architecture")
    config = load_checkpoint(like).config
    return make_checkpoint(
        folder / "untrained.ckpt",
        backbone=config.backbone,
        img_size=config.img_size,
        embed_dim=config.embed_dim,
        num_classes=config.num_classes,
        seed=0,
    )


def score(
    name: str,
    kind: str,
    queries: np.ndarray,
    gallery: np.ndarray,
    query_items: Sequence[Item],
    gallery_items: Sequence[Item],
    seconds: float,
    rerank: str = "none",
) -> Row:
    """Both protocols from one pair of embedding matrices, by the runtime's metric code."""
    from sketchsearch.data.evaluation import Match, relevance_matrix
    from sketchsearch.runtime.evaluation.metrics import evaluate_retrieval

    scores = queries @ gallery.T
    if rerank != "none":
        from sketchsearch.runtime.rerank import RerankConfig, rerank_scores

        scores = rerank_scores(RerankConfig(method=rerank), queries, gallery, scores)
    category = evaluate_retrieval(
        scores, relevance_matrix(query_items, gallery_items, Match.CATEGORY)
    )
    instance = evaluate_retrieval(
        scores,
        relevance_matrix(query_items, gallery_items, Match.INSTANCE),
        recall_ks=(1, 10),
    )
    return Row(
        name=name,
        kind=kind,
        category_map=round(category.map_all, 4),
        instance_recall_at_1=round(instance.recall[1], 4),
        instance_recall_at_10=round(instance.recall[10], 4),
        instance_map=round(instance.map_all, 4),
        queries=len(query_items),
        gallery=len(gallery_items),
        seconds=round(seconds, 2),
        rerank=rerank,
    )


def held_out_part(split_path: Path, data: Path) -> tuple[list[Item], list[Item]]:
    """(queries, gallery) of the split's test part, refusing a split without held-out classes."""
    from sketchsearch.data.evaluation import evaluation_set
    from sketchsearch.data.split_file import load_split

    split, _ = load_split(split_path, data)  # refuses a data root that changed since the split
    if split.policy != "hard":
        raise UsageError(
            f"{split_path}: a {split.policy} split shares categories between train and test; "
            "the zero-shot protocol needs a hard split (sketchsearch data split --policy hard)"
        )
    sets = evaluation_set(split, "test")
    if not sets.queries or not sets.gallery:
        raise UsageError(f"{split_path}: the test part has no queries or no gallery")
    return list(sets.queries), list(sets.gallery)


def run_quality(
    split: Path,
    data: Path,
    models: Sequence[Path] = (),
    baselines: Sequence[str] = ("pixels", "edges", "untrained"),
    rerank: Sequence[str] = ("none",),
    threads: int | None = None,
) -> list[Row]:
    queries, gallery = held_out_part(split, data)
    query_paths = [data / item.path for item in queries]
    gallery_paths = [data / item.path for item in gallery]
    rows: list[Row] = []
    for name in baselines:
        if name == "untrained":
            continue
        if name not in BASELINES:
            raise UsageError(f"--baseline {name!r}: use {', '.join([*BASELINES, 'untrained'])}")
        start = time.perf_counter()
        embedded = [embed_baseline(BASELINES[name], p) for p in (query_paths, gallery_paths)]
        seconds = time.perf_counter() - start
        rows.append(score(name, "baseline", *embedded, queries, gallery, seconds))
    with tempfile.TemporaryDirectory() as scratch:
        entries: list[tuple[str, str, Path]] = []
        if "untrained" in baselines:
            if not models:
                raise UsageError(
                    "the untrained baseline copies a model's architecture: give --model"
                )
            entries.append(
                ("untrained", "baseline", untrained_checkpoint(models[0], Path(scratch)))
            )
        entries += [(str(model), "model", model) for model in models]
        for name, kind, path in entries:
            start = time.perf_counter()
            embedded = [embed_model(path, p, threads) for p in (query_paths, gallery_paths)]
            seconds = time.perf_counter() - start
            for method in rerank:
                rows.append(score(name, kind, *embedded, queries, gallery, seconds, method))
    return rows


def table(rows: Sequence[Row]) -> str:
    best = max((r.category_map for r in rows if r.kind == "baseline"), default=0.0)
    lines = [
        f"{'method':<34} {'rerank':<11} {'cat mAP':>8} {'× best base':>11} {'inst R@1':>8} "
        f"{'inst R@10':>9} {'inst mAP':>8}"
    ]
    for row in rows:
        ratio = f"{row.category_map / best:.2f}×" if best > 0 else "-"
        lines.append(
            f"{_short(row.name):<34} {row.rerank:<11} {row.category_map:>8.4f} {ratio:>11} "
            f"{row.instance_recall_at_1:>8.4f} {row.instance_recall_at_10:>9.4f} "
            f"{row.instance_map:>8.4f}"
        )
    return "\n".join(lines)


def _short(name: str) -> str:
    return name if len(name) <= 34 else "…" + name[-33:]
