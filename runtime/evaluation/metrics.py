"""Retrieval metrics, in numpy only: shared by validation, ``sketchsearch evaluate`` and benchmarks.

Inputs are ``scores`` [n_queries, n_gallery] (higher = more similar) and ``relevant``
[n_queries, n_gallery] (bool, or 0/1). Definitions, for one query with R relevant items:

* Ranking: gallery sorted by score descending, ties broken by gallery index ascending, i.e.
  ``np.argsort(-scores, kind="stable")`` (computed faster, with the same result; NaN is refused,
  -0.0 ties with 0.0). ``rel_i`` is 1 when the item at (1-based) rank i is relevant, and
  ``P@i = (rel_1 + ... + rel_i) / i``.
* AP = (1/R) * sum over the full ranking of P@i * rel_i: the mean precision at the ranks of the
  relevant items. Without tied scores this equals ``sklearn.metrics.average_precision_score``;
  with ties sklearn pools the tied block, while here the tie rule above decides.
* mAP@all: mean AP over the queries with R > 0.
* mAP@k: mean over the queries with R > 0 of (1/min(k, R)) * sum over i <= k of P@i * rel_i
  (the SAKE / ZSE-SBIR convention, so a perfect ranking scores 1 even when R > k).
* P@k: mean over all queries of (relevant items in the top k) / min(k, n_gallery); when k exceeds
  the gallery, the whole gallery is the top k and it is divided by its size.
* recall@k: the fraction of all queries with at least one relevant item in the top k: the SBIR
  "top-k accuracy" / hit rate (the original research's top1/top3 at category level), NOT the
  fraction of a query's relevant items retrieved.

Queries with R = 0 have no defined AP (NaN from ``average_precision``) and are left out of both
mAPs; P@k and recall@k are defined for them (0: nothing relevant was found) and count them.
``RetrievalReport.queries_without_relevant`` says how many there were. With no query having R > 0
the mAPs are NaN.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAP_K = 200  # the k of RetrievalReport.map_200, the usual SBIR cut-off
_CHUNK_ELEMENTS = 1 << 22  # rows are ranked in blocks of about this many scores to bound memory

FloatArray = npt.NDArray[np.floating]
BoolArray = npt.NDArray[np.bool_]


def _check_scores(scores: npt.ArrayLike) -> FloatArray:
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D [n_queries, n_gallery], got shape {s.shape}")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores needs at least one query and one gallery item, got {s.shape}")
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)  # ints and bools: negating them would wrap or fail
    if np.isnan(s).any():
        raise ValueError("scores contain NaN, which has no place in a ranking")
    return s


def _check(scores: npt.ArrayLike, relevant: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
    s = _check_scores(scores)
    r = np.asarray(relevant)
    if r.shape != s.shape:
        raise ValueError(f"relevant shape {r.shape} must match scores shape {s.shape}")
    if r.dtype != np.bool_:
        if not np.isin(r, (0, 1)).all():
            raise ValueError("relevant must be boolean (or only 0 and 1)")
        r = r.astype(np.bool_)
    return s, r


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _rank_block(block: FloatArray) -> npt.NDArray[np.intp]:
    """Sort rows by a unique uint64 key, (score rank << 32) | gallery index, so that numpy's fast
    unstable sort gives exactly the stable order (numpy's stable argsort is much slower)."""
    with np.errstate(over="ignore"):
        single = block.astype(np.float32)
    if np.array_equal(single, block):  # float32, or values float32 holds exactly
        u = (single + np.float32(0.0)).view(np.uint32)  # + 0.0 makes -0.0 into 0.0: they tie
        # u ^ 0x7FFFFFFF for positive scores, u for negative ones: rises as the score falls
        score_key = (u ^ (((u >> np.uint32(31)) - np.uint32(1)) >> np.uint32(1))).astype(np.uint64)
        index = np.broadcast_to(np.arange(block.shape[1], dtype=np.uint64), block.shape)
    else:  # float64: argsort, then the count of distinct better scores is the score key
        order = np.argsort(-block, axis=1)
        ordered = np.take_along_axis(block, order, axis=1)
        score_key = np.zeros(block.shape, dtype=np.uint64)
        np.cumsum(ordered[:, 1:] != ordered[:, :-1], axis=1, out=score_key[:, 1:])
        if (score_key[:, -1] == block.shape[1] - 1).all():
            return order  # no ties: this is the only correct order
        index = order.astype(np.uint64)
    key = (score_key << np.uint64(32)) | index
    key.sort(axis=1)
    return (key & np.uint64(0xFFFFFFFF)).astype(np.intp)


def _row_blocks(n_rows: int, n_cols: int) -> Iterable[slice]:
    step = max(1, _CHUNK_ELEMENTS // n_cols)
    return (slice(start, start + step) for start in range(0, n_rows, step))


def rank(scores: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Gallery indices best first per query, by the module's tie rule (score desc, index asc)."""
    s = _check_scores(scores)
    order = np.empty(s.shape, dtype=np.intp)
    for rows in _row_blocks(*s.shape):
        order[rows] = _rank_block(s[rows])
    return order


def _ranked_relevance(scores: npt.ArrayLike, relevant: npt.ArrayLike) -> BoolArray:
    """``relevant`` reordered by the ranking: ``hits[q, i]`` is rel_(i+1) of query q."""
    s, r = _check(scores, relevant)
    hits = np.empty(r.shape, dtype=np.bool_)
    for rows in _row_blocks(*s.shape):
        hits[rows] = np.take_along_axis(r[rows], _rank_block(s[rows]), axis=1)
    return hits


def _precision_sums(hits: BoolArray) -> npt.NDArray[np.float64]:
    """Per query, sum of P@i * rel_i over the columns given: the n-th hit at rank i adds n / i."""
    rows, cols = np.nonzero(hits)  # row-major, so each row's hits come in rank order
    per_row = np.bincount(rows, minlength=hits.shape[0])
    nth = np.arange(1, rows.size + 1) - (np.cumsum(per_row) - per_row)[rows]
    sums = np.bincount(rows, weights=nth / (cols + 1.0), minlength=hits.shape[0])
    return sums.astype(np.float64, copy=False)


def _map_at_k(hits: BoolArray, k: int | None = None) -> float:
    """Mean of sum(P@i * rel_i, i <= k) / min(k, R) over queries with R > 0; k=None: all ranks."""
    norm = hits.sum(axis=1) if k is None else np.minimum(k, hits.sum(axis=1))
    has = norm > 0
    sums = _precision_sums(hits if k is None else hits[:, :k])
    return float(np.mean(sums[has] / norm[has])) if has.any() else float("nan")


def _precision_at_k(hits: BoolArray, k: int) -> float:
    return float(np.mean(hits[:, :k].sum(axis=1) / min(k, hits.shape[1])))


def _recall_at_k(hits: BoolArray, k: int) -> float:
    return float(np.mean(hits[:, :k].any(axis=1)))


def average_precision(scores: npt.ArrayLike, relevant: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Per-query AP over the full ranking (see module docstring); NaN where nothing is relevant."""
    hits = _ranked_relevance(scores, relevant)
    n_rel = hits.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap: npt.NDArray[np.float64] = np.where(n_rel > 0, _precision_sums(hits) / n_rel, np.nan)
    return ap


def map_at_all(scores: npt.ArrayLike, relevant: npt.ArrayLike) -> float:
    """Mean AP over the queries that have a relevant item; queries without one are excluded."""
    return _map_at_k(_ranked_relevance(scores, relevant))


def map_at_k(scores: npt.ArrayLike, relevant: npt.ArrayLike, k: int) -> float:
    """mAP@k normalised by min(k, R) (SAKE / ZSE-SBIR); queries with R = 0 are excluded."""
    return _map_at_k(_ranked_relevance(scores, relevant), _check_k(k))


def precision_at_k(scores: npt.ArrayLike, relevant: npt.ArrayLike, k: int) -> float:
    """Mean over all queries of relevant-in-top-k / min(k, n_gallery)."""
    return _precision_at_k(_ranked_relevance(scores, relevant), _check_k(k))


def recall_at_k(scores: npt.ArrayLike, relevant: npt.ArrayLike, k: int) -> float:
    """SBIR hit rate: the fraction of queries with any relevant item in the top k."""
    return _recall_at_k(_ranked_relevance(scores, relevant), _check_k(k))


@dataclass(frozen=True)
class RetrievalReport:
    """One evaluation's numbers, with the query counts needed to read them."""

    queries: int
    gallery: int
    map_all: float
    map_200: float
    precision: dict[int, float]  # k -> P@k
    recall: dict[int, float]  # k -> recall@k (hit rate)
    queries_without_relevant: int

    def to_dict(self) -> dict[str, float | int]:
        """Flat names ("mAP@all", "P@10", "recall@1", ...) for loggers and JSON."""
        out: dict[str, float | int] = {
            "queries": self.queries,
            "gallery": self.gallery,
            "queries_without_relevant": self.queries_without_relevant,
            "mAP@all": self.map_all,
            f"mAP@{MAP_K}": self.map_200,
        }
        out.update({f"P@{k}": v for k, v in self.precision.items()})
        out.update({f"recall@{k}": v for k, v in self.recall.items()})
        return out


def evaluate_retrieval(
    scores: npt.ArrayLike,
    relevant: npt.ArrayLike,
    precision_ks: Iterable[int] = (1, 10, 100, 200),
    recall_ks: Iterable[int] = (1, 3, 5, 10),
) -> RetrievalReport:
    """All the metrics from one ranking: the sort dominates the cost, so it is done once."""
    p_ks, r_ks = [_check_k(k) for k in precision_ks], [_check_k(k) for k in recall_ks]
    hits = _ranked_relevance(scores, relevant)
    return RetrievalReport(
        queries=hits.shape[0],
        gallery=hits.shape[1],
        map_all=_map_at_k(hits),
        map_200=_map_at_k(hits, MAP_K),
        precision={k: _precision_at_k(hits, k) for k in p_ks},
        recall={k: _recall_at_k(hits, k) for k in r_ks},
        queries_without_relevant=int((~hits.any(axis=1)).sum()),
    )


def mean_pair_cosine(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Mean cosine of row-aligned pairs (the original's cos_sim / cos_unsim).

    Rows are meant to be L2-normalised already; they are normalised again (in float64) so that
    fp16 engine outputs or unnormalised inputs still give a true cosine. A zero row gives 0.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"need two non-empty 2-D arrays of one shape, got {x.shape} and {y.shape}")
    norms = np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-12)
    return float(np.mean(np.einsum("ij,ij->i", x, y) / norms))
