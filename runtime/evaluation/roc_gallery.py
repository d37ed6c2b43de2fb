"""The ROC of a model and its gallery, measured with the queries of a split part.

Kept apart from the pair sampling so that the sampling stays a pure function of vectors and
labels (testable without an engine), and this module is only the wiring: embed the queries,
read the gallery's stored vectors and labels, sample, score.
"""

from __future__ import annotations

import os

from sketchsearch.data.errors import UsageError
from sketchsearch.data.split_spec import SplitPart
from sketchsearch.gallery.manifest import MatchThreshold, now
from sketchsearch.gallery.store import GalleryStore
from sketchsearch.gallery.store_table import open_gallery
from sketchsearch.runtime.engines.protocol import Engine
from sketchsearch.runtime.evaluation.evaluate import embed_part_queries
from sketchsearch.runtime.evaluation.roc import DEFAULT_TARGET_FPR, RocReport
from sketchsearch.runtime.evaluation.roc_pairs import (
    DEFAULT_SAMPLING,
    PairSampling,
    roc_from_embeddings,
)


def roc_for_gallery(
    engine: Engine,
    gallery: GalleryStore,
    part: SplitPart,
    *,
    instance: bool = False,
    sampling: PairSampling = DEFAULT_SAMPLING,
    target_fpr: float = DEFAULT_TARGET_FPR,
    batch_size: int = 32,
) -> RocReport:
    """Queries: the part's query-domain images; gallery: every live item, with its label."""
    _, queries, embedded = embed_part_queries(engine, part, None, batch_size)
    stored = gallery.export_vectors()
    labels = [row.label for row in stored.items]
    if not stored.items or any(label is None for label in labels):
        raise UsageError(
            f"{gallery.ref}: every gallery item needs a label (category) for a ROC; "
            "build the gallery from a split or from labelled folders"
        )
    query_instances = [q.instance or "" for q in queries] if instance else None
    gallery_instances = [row.instance or "" for row in stored.items] if instance else None
    if instance and ("" in (query_instances or []) or "" in (gallery_instances or [])):
        raise UsageError(
            "--instance: queries and gallery items need instance (paired photo) labels; "
            "the generic layout has none"
        )
    return roc_from_embeddings(
        embedded.vectors,
        [q.category for q in queries],
        stored.vectors,
        [str(label) for label in labels],
        query_instances=query_instances,
        gallery_instances=gallery_instances,
        sampling=sampling,
        target_fpr=target_fpr,
        source=(
            f"{engine.path.name} on {gallery.ref}, queries {part.source}:{part.part} "
            f"({len(queries)} read, {len(embedded.failures)} unreadable)"
        ),
    )


def write_threshold(index: str | os.PathLike[str], report: RocReport) -> MatchThreshold:
    """Record the report's threshold at its target FPR in the gallery (a crash-safe commit)."""
    threshold = MatchThreshold(
        value=report.at_target.threshold,
        target_fpr=report.target_fpr,
        tpr=report.at_target.tpr,
        auc=report.auc,
        source=f"analyze roc: {report.source}",
        created_at=now(),
    )
    with open_gallery(index, mode="rw") as gallery:
        gallery.set_threshold(threshold)
    return threshold
