"""`sketchsearch evaluate`: retrieval quality of a model and its gallery on a split part.

The gallery is searched twice: through its HNSW index (what serving does) and exhaustively
over the same stored vectors (exact cosine). Metrics from both, and the HNSW-vs-exact recall,
keep index error and model error apart. Metric definitions: ``runtime/evaluation/metrics.py``.

With a re-ranking (``runtime/rerank.py``), both rankings have each query's best ``shortlist``
items re-ranked before the metrics are taken; the HNSW-vs-exact recall stays that of the
searches themselves, since it measures the index, not the ranking.

Before any query is embedded, the gallery's recorded source is checked against the direction's
gallery domain, and queries that are themselves gallery items are refused or left out
(``runtime/evaluation/gallery_check.py``): a gallery of the wrong kind must not print a score.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sketchsearch.data.errors import UsageError
from sketchsearch.data.evaluation import EvaluationSet, evaluation_set
from sketchsearch.data.layouts import Item
from sketchsearch.data.split_spec import SplitPart
from sketchsearch.gallery.store import GalleryStore
from sketchsearch.runtime.engines.protocol import Engine
from sketchsearch.runtime.evaluation.gallery_check import (
    GalleryCheck,
    check_source,
    screen_queries,
)
from sketchsearch.runtime.evaluation.metrics import evaluate_retrieval
from sketchsearch.runtime.pipeline import EmbedResult, Failure, embed_paths
from sketchsearch.runtime.rerank import RerankConfig, rerank_scores

PRECISION_KS = (1, 100, 200)
RECALL_KS = (1, 5, 10)

# What embed_part_queries returns: the evaluation set, the queries read, their embeddings.
PartQueries = tuple[EvaluationSet, list[Item], EmbedResult]


@dataclass
class Evaluation:
    queries: int
    gallery_items: int
    direction: str
    match: str
    hnsw: dict[str, float]
    exact: dict[str, float] | None
    hnsw_recall_at_10: float | None  # of the exact top-10, the share HNSW also returned
    failures: list[Failure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    reranking: RerankConfig = field(default_factory=RerankConfig)
    gallery: GalleryCheck | None = None  # what the gallery holds, and what was left out
    # The kind of store searched ("hnswlib", "qdrant", …): ``hnsw_recall_at_10`` is its index's
    # recall whatever the kind (the JSON's "ann_recall@10"; "hnsw_recall@10" kept for readers).
    store: str = "hnswlib"

    def to_dict(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "gallery_items": self.gallery_items,
            "direction": self.direction,
            "match": self.match,
            "rerank": self.reranking.to_dict(),
            "hnsw": self.hnsw,
            "exact": self.exact,
            "hnsw_recall@10": self.hnsw_recall_at_10,
            "store": self.store,
            "ann_recall@10": self.hnsw_recall_at_10,
            "failures": [str(f) for f in self.failures],
            "seconds": self.seconds,
            "gallery": self.gallery.to_dict() if self.gallery else None,
            "conventions": {
                "mAP@200": "(1/min(200, R)) * sum_{i<=200} P@i * rel_i (SAKE / ZSE-SBIR)",
                "P@k": "relevant in top k / min(k, gallery size)",
                "recall@k": "share of queries with a relevant item in the top k (hit rate)",
            },
        }


def evaluate(
    engine: Engine,
    gallery: GalleryStore,
    part: SplitPart,
    direction: tuple[str, str] | None = None,
    instance: bool = False,
    exact: bool = True,
    batch_size: int = 32,
    ef: int | None = None,
    reranking: RerankConfig | None = None,
    drop_gallery_queries: bool = False,
) -> Evaluation:
    """Refuses (UsageError) a gallery of the wrong domain, and queries that are gallery items
    unless ``drop_gallery_queries``; see ``gallery_check``."""
    start = time.perf_counter()
    sets = evaluation_set(part.split, part.part, direction)
    source = gallery.manifest.source
    check = check_source(source, gallery.ref, part, sets.gallery_domain, engine.path)
    queries = embed_part_queries(engine, part, direction, batch_size)
    result = score_queries(
        gallery, queries, instance, exact, ef, reranking, check, drop_gallery_queries
    )
    result.seconds["total"] = round(time.perf_counter() - start, 3)
    return result


def score_queries(
    gallery: GalleryStore,
    queries: PartQueries,
    instance: bool = False,
    exact: bool = True,
    ef: int | None = None,
    reranking: RerankConfig | None = None,
    check: GalleryCheck | None = None,
    drop_gallery_queries: bool = False,
) -> Evaluation:
    """Search and score queries embedded once, so that several settings can be compared.

    Queries that are gallery items are refused, or left out with ``drop_gallery_queries``.
    """
    start = time.perf_counter()
    sets, items, embedded = queries
    reranking = reranking or RerankConfig()
    stored = gallery.export_vectors()
    if len(stored.ids) == 0:
        raise UsageError(f"{gallery.ref}: the gallery is empty")
    check = check or unchecked(gallery)
    check, items, embedded = screen_queries(
        check, gallery.ref, items, embedded, stored.items, drop_gallery_queries
    )
    relevant = _relevance(items, stored.items, instance)
    searching = time.perf_counter()
    hnsw_scores, hnsw_ids = _hnsw_scores(gallery, embedded.vectors, stored.ids, ef)
    searched = time.perf_counter()
    ranked = _reranked(reranking, embedded.vectors, stored.vectors, hnsw_scores)
    reranked = time.perf_counter()
    kwargs = {"precision_ks": PRECISION_KS, "recall_ks": RECALL_KS}
    hnsw = _metrics(evaluate_retrieval(ranked, relevant, **kwargs).to_dict())
    exact_metrics, recall = None, None
    if exact:
        exact_scores = embedded.vectors @ stored.vectors.T
        ranked = _reranked(reranking, embedded.vectors, stored.vectors, exact_scores)
        exact_metrics = _metrics(evaluate_retrieval(ranked, relevant, **kwargs).to_dict())
        recall = _index_recall(exact_scores, hnsw_ids, stored.ids, 10)
    seconds = {"embed": round(embedded.wall_seconds, 3), "search": round(searched - searching, 3)}
    if reranking.active:
        seconds["rerank"] = round(reranked - searched, 3)
    seconds["total"] = round(embedded.wall_seconds + time.perf_counter() - start, 3)
    return Evaluation(
        queries=len(items),
        gallery_items=len(stored.ids),
        direction=f"{sets.query_domain}2{sets.gallery_domain}",
        match="instance" if instance else "category",
        hnsw=hnsw,
        exact=exact_metrics,
        hnsw_recall_at_10=recall,
        failures=embedded.failures,
        seconds=seconds,
        reranking=reranking,
        gallery=check,
        store=store_name(gallery.ref),
    )


def unchecked(gallery: GalleryStore) -> GalleryCheck:
    """The recorded source in words, for callers that did not run ``check_source``."""
    source = gallery.manifest.source
    if source is None:
        return GalleryCheck("not recorded: domain unknown", None)
    return GalleryCheck(source.describe(), source.domain)


def _reranked(
    reranking: RerankConfig, queries: np.ndarray, gallery: np.ndarray, scores: np.ndarray
) -> np.ndarray:
    """``scores``, or with a re-ranking a matrix that ranks as the re-ranked order does."""
    return rerank_scores(reranking, queries, gallery, scores) if reranking.active else scores


def embed_part_queries(
    engine: Engine, part: SplitPart, direction: tuple[str, str] | None, batch_size: int
) -> tuple[EvaluationSet, list[Item], EmbedResult]:
    """The part's query-domain images, embedded; those that could not be read are left out."""
    if not engine.card.embeds("query"):
        raise UsageError(
            f"{engine.path}: this file holds the gallery encoder of a model with separate "
            "encoders; embed queries with its .query.onnx"
        )
    sets = evaluation_set(part.split, part.part, direction)
    if not sets.queries:
        raise UsageError(f"{part.source}:{part.part} has no {sets.query_domain} images")
    embedded = embed_paths(
        engine, [part.path(q) for q in sets.queries], batch_size=batch_size, description="queries"
    )
    queries = [sets.queries[i] for i in embedded.done]
    if not queries:
        raise UsageError(f"{part.source}:{part.part}: no query image could be read")
    return sets, queries, embedded


def _metrics(report: dict[str, float | int]) -> dict[str, float]:
    return {k: float(v) for k, v in report.items() if "@" in k}


def _relevance(queries: list[Any], items: list[Any], instance: bool) -> np.ndarray:
    if instance:
        keys = [q.instance for q in queries]
        gallery_keys = [row.instance for row in items]
        if not any(keys):
            raise UsageError("--instance: the queries have no instance (paired photo) labels")
    else:
        keys = [q.category for q in queries]
        gallery_keys = [row.label for row in items]
    if not any(gallery_keys):
        raise UsageError("the gallery's items have no labels to judge relevance by")
    left, right = np.asarray(keys, dtype=object), np.asarray(gallery_keys, dtype=object)
    known = np.array([k is not None for k in keys])[:, None]
    known = known & np.array([k is not None for k in gallery_keys])[None, :]
    relevant: np.ndarray = np.asarray(left[:, None] == right[None, :], dtype=bool) & known
    return relevant


def _hnsw_scores(
    gallery: GalleryStore, vectors: np.ndarray, ids: np.ndarray, ef: int | None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The full ranking through the index: every item is asked for, so ef ≥ gallery size."""
    column = {int(item_id): position for position, item_id in enumerate(ids)}
    scores = np.full((len(vectors), len(ids)), -np.inf, dtype=np.float64)
    found = []
    for row, result in enumerate(gallery.search(vectors, len(ids), ef=ef)):
        columns = [column[int(i)] for i in result.ids]
        scores[row, columns] = result.scores
        found.append(result.ids)
    # Items HNSW did not return rank last, in gallery order (finite for the metric code).
    floor = scores[np.isfinite(scores)].min(initial=0.0) - 1.0
    scores[~np.isfinite(scores)] = floor
    return scores, found


def store_name(ref: str) -> str:
    """What kind of store ``ref`` is, for reports: its scheme, or "hnswlib" for a folder."""
    from sketchsearch.gallery.store_table import find_store_kind

    return find_store_kind(ref)[0].scheme or "hnswlib"


def _index_recall(
    exact_scores: np.ndarray, hnsw_ids: list[np.ndarray], ids: np.ndarray, k: int
) -> float:
    k = min(k, exact_scores.shape[1])
    top = np.argsort(-exact_scores, axis=1, kind="stable")[:, :k]
    hits = [
        len(set(ids[row].tolist()) & set(found[:k].tolist())) / k
        for row, found in zip(top, hnsw_ids, strict=True)
    ]
    return float(np.mean(hits))
