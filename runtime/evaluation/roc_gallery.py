"""The ROC of a model and its gallery, measured with the queries of a split part.

Kept apart from the pair sampling so that the sampling stays a pure function of vectors and
labels (testable without an engine), and this module is only the wiring: embed the queries,
read the gallery's stored vectors and labels, sample, score. The gallery is checked as
`evaluate` checks it (``gallery_check``): a threshold measured on queries that find themselves
would be meaningless.

A threshold is measured on a validation gallery but used by the serving one: ``write_threshold``
and ``copy_threshold`` record it in any gallery bound to the same model family (exit 4 else).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from sketchsearch.data.errors import UsageError
from sketchsearch.data.evaluation import evaluation_set
from sketchsearch.data.split_spec import SplitPart
from sketchsearch.gallery.manifest import MatchThreshold, ModelRef, now
from sketchsearch.gallery.store import GalleryStore, check_model
from sketchsearch.gallery.store_table import open_gallery
from sketchsearch.runtime.engines.protocol import Engine
from sketchsearch.runtime.evaluation.evaluate import embed_part_queries
from sketchsearch.runtime.evaluation.gallery_check import check_source, screen_queries
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
    drop_gallery_queries: bool = False,
) -> RocReport:
    """Queries: the part's query-domain images; gallery: every live item, with its label.

    Refuses (UsageError) a gallery of the wrong domain, and queries that are gallery items
    unless ``drop_gallery_queries``.
    """
    sets = evaluation_set(part.split, part.part)
    source = gallery.manifest.source
    check = check_source(source, gallery.ref, part, sets.gallery_domain, engine.path)
    _, queries, embedded = embed_part_queries(engine, part, None, batch_size)
    stored = gallery.export_vectors()
    check, queries, embedded = screen_queries(
        check, gallery.ref, queries, embedded, stored.items, drop_gallery_queries
    )
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
    report = roc_from_embeddings(
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
    return replace(report, gallery=check)


def write_threshold(
    index: str | os.PathLike[str], report: RocReport, model: ModelRef | None = None
) -> MatchThreshold:
    """Record the report's threshold at its target FPR in the gallery (a crash-safe commit).

    With ``model`` (the model that scored the pairs), a gallery bound to another model family
    is refused (GalleryMismatchError, exit 4): its scores are not on the same scale.
    """
    threshold = threshold_of(report)
    set_threshold(index, threshold, model)
    return threshold


def threshold_of(report: RocReport) -> MatchThreshold:
    """The report's threshold at its target FPR, as a gallery records it."""
    return MatchThreshold(
        value=report.at_target.threshold,
        target_fpr=report.target_fpr,
        tpr=report.at_target.tpr,
        auc=report.auc,
        source=f"analyze roc: {report.source}",
        created_at=now(),
    )


def set_threshold(
    index: str | os.PathLike[str], threshold: MatchThreshold | None, model: ModelRef | None
) -> str | None:
    """Record (or with None clear) ``threshold`` in the gallery ``index``, after checking it is
    bound to ``model``'s family; returns the precision note of ``check_model``, if any."""
    with open_gallery(index, mode="rw") as gallery:
        note = None
        if model is not None:
            note = check_model(gallery.ref, gallery.manifest.model, model)
        gallery.set_threshold(threshold)
    return note


def record_threshold(
    targets: Sequence[str | os.PathLike[str]], threshold: MatchThreshold, model: ModelRef | None
) -> list[str | None]:
    """``set_threshold`` in every target, after checking them all: a refused one leaves the
    others unchanged too."""
    if model is not None:
        for target in targets:
            with open_gallery(target) as gallery:
                check_model(gallery.ref, gallery.manifest.model, model)
    return [set_threshold(target, threshold, model) for target in targets]


def copy_threshold(
    source: str | os.PathLike[str], target: str | os.PathLike[str]
) -> tuple[MatchThreshold, str | None]:
    """Copy the threshold ``analyze roc`` recorded in ``source`` (a validation gallery) into
    ``target`` (the serving gallery), which must be bound to the same model family."""
    with open_gallery(source) as measured:
        threshold = measured.manifest.threshold
        model = measured.manifest.model
    if threshold is None:
        raise UsageError(
            f"{source}: the gallery has no threshold to copy; "
            "`sketchsearch analyze roc --write-threshold` records one"
        )
    copied = replace(threshold, source=f"copied from {source}: {threshold.source}")
    return copied, set_threshold(target, copied, model)
