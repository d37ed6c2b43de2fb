"""Query-time re-ranking of a search's top-K shortlist, in numpy only.

The index answers with cosine similarity to the query alone. Both methods here also look at
how the shortlisted gallery items relate to each other, which is where a query's true
neighbours stand out: they are close to one another, while a lone look-alike is not. Only the
shortlist is used (no gallery-to-gallery distances from outside it), so the cost is a few
small matrix products per query, independent of the gallery's size.

* ``aqe``: alpha query expansion (Radenović, Tolias, Chum, TPAMI 2018). The new query is
  ``unit(q + Σ_i max(s_i, 0)^α · g_i)`` over the query's ``n`` best shortlist items, and the
  shortlist is re-scored by cosine with it.
* ``kreciprocal``: k-reciprocal encoding (Zhong, Zheng, Cao, Li, CVPR 2017) over the set
  {query} ∪ shortlist: k1-reciprocal sets with the ½·k1 expansion, Gaussian-weighted vectors
  V, local query expansion over k2 neighbours, Jaccard distance, and
  ``(1 − λ)·Jaccard + λ·original``. The original distance is the squared Euclidean distance
  of the unit vectors (``2 − 2·cos``) divided by the largest in its row, as in the authors'
  code, so that λ mixes two distances on [0, 1].

Items outside the shortlist are not re-ranked: they follow it in their original order.
Everything works on a batch of queries with shortlists of equal length.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from sketchsearch.data.errors import UsageError

RERANK_METHODS = ("none", "aqe", "kreciprocal")
DEFAULT_SHORTLIST = 100
_BLOCK = 64  # queries re-ranked at once by rerank_scores: bounds the [B, K+1, K+1] arrays


@dataclass(frozen=True)
class RerankConfig:
    """Which re-ranking runs over how many of the best search results, and its parameters.

    ``k1``, ``k2`` and ``lambda_value`` are the paper's defaults; they were tuned on galleries
    of thousands, so on a shortlist of K items ``k1`` is clamped to K (beyond it every item is
    in every list), and ``k2`` to K + 1, the size of the set.
    """

    method: str = "none"
    shortlist: int = DEFAULT_SHORTLIST  # K: the best K search results are re-ranked
    aqe_neighbours: int = 3  # n: shortlist items added into the expanded query
    aqe_alpha: float = 3.0  # α: how sharply the weights favour the most similar items
    k1: int = 20  # size of the k-reciprocal neighbourhoods
    k2: int = 6  # neighbours averaged by the local query expansion (1: none)
    lambda_value: float = 0.3  # weight of the original distance in the final one

    def __post_init__(self) -> None:
        if self.method not in RERANK_METHODS:
            raise UsageError(f"re-ranking {self.method!r}: use one of {', '.join(RERANK_METHODS)}")
        for name in ("shortlist", "aqe_neighbours", "k1", "k2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"re-ranking {name}={value!r}: use an integer of at least 1")
        if not 0.0 <= self.aqe_alpha <= 100.0:
            raise UsageError(f"re-ranking aqe_alpha={self.aqe_alpha}: use a value in [0, 100]")
        if not 0.0 <= self.lambda_value <= 1.0:
            raise UsageError(f"re-ranking lambda_value={self.lambda_value}: use a value in [0, 1]")

    @property
    def active(self) -> bool:
        return self.method != "none"

    def describe(self) -> str:
        """One line for a report header, e.g. ``aqe (top 100, n=3, α=3)``."""
        if self.method == "aqe":
            return f"aqe (top {self.shortlist}, n={self.aqe_neighbours}, α={self.aqe_alpha:g})"
        if self.method == "kreciprocal":
            return (
                f"kreciprocal (top {self.shortlist}, k1={self.k1}, k2={self.k2}, "
                f"λ={self.lambda_value:g})"
            )
        return "none"

    def to_dict(self) -> dict[str, str | int | float]:
        """The method and only the parameters it uses."""
        if self.method == "aqe":
            names: Iterable[str] = ("shortlist", "aqe_neighbours", "aqe_alpha")
        elif self.method == "kreciprocal":
            names = ("shortlist", "k1", "k2", "lambda_value")
        else:
            names = ()
        return {"method": self.method, **{name: getattr(self, name) for name in names}}


def rerank_config(method: str, shortlist: int | None) -> RerankConfig:
    """The config of the ``--rerank`` and ``--rerank-k`` options; the latter alone is refused."""
    if shortlist is not None and method == "none":
        raise UsageError(
            "--rerank-k sets what --rerank re-orders: also pass --rerank aqe or kreciprocal"
        )
    return RerankConfig(
        method=method, shortlist=DEFAULT_SHORTLIST if shortlist is None else shortlist
    )


@dataclass(frozen=True)
class Reranked:
    """A re-ranked batch of shortlists.

    ``order`` [B, K]: shortlist positions, best first (ties keep the shortlist's order).
    ``scores`` [B, K]: the re-ranking's own score of each shortlist position, in the
    shortlist's order, higher = closer: for ``aqe`` the cosine with the expanded query, for
    ``kreciprocal`` 1 − the final distance, for ``none`` the cosine with the query.
    """

    order: np.ndarray
    scores: np.ndarray


def rerank(config: RerankConfig, queries: np.ndarray, shortlists: np.ndarray) -> Reranked:
    """Re-rank each query's shortlist: ``queries`` [B, D], ``shortlists`` [B, K, D].

    The shortlist is the search's best K items, best first; vectors need not be unit length.
    """
    q, g = _unit(np.asarray(queries, np.float64)), _unit(np.asarray(shortlists, np.float64))
    if q.ndim != 2 or g.ndim != 3 or g.shape[0] != q.shape[0] or g.shape[2] != q.shape[1]:
        raise ValueError(f"queries {q.shape} and shortlists {g.shape}: expected [B, D], [B, K, D]")
    if g.shape[1] == 0:
        empty = np.zeros((len(q), 0))
        return Reranked(empty.astype(np.intp), empty)
    if config.method == "aqe":
        scores = alpha_query_expansion(q, g, config.aqe_neighbours, config.aqe_alpha)
    elif config.method == "kreciprocal":
        distances = k_reciprocal_distances(q, g, config.k1, config.k2, config.lambda_value)
        scores = 1.0 - distances
    else:
        scores = np.einsum("bkd,bd->bk", g, q)
    return Reranked(np.argsort(-scores, axis=1, kind="stable"), scores)


def alpha_query_expansion(q: np.ndarray, g: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """Cosine of each shortlist item with ``unit(q + Σ max(s_i, 0)^α g_i)`` over the n best.

    A query that is a poor view of its object (a rough sketch) is pulled towards the shared
    direction of its best matches; weighting by s^α lets a clear best match dominate and a
    marginal one barely count. Clipping at 0 keeps dissimilar items from pushing it away.
    """
    cosine = np.einsum("bkd,bd->bk", g, q)
    n = min(n, g.shape[1])
    best = np.argsort(-cosine, axis=1, kind="stable")[:, :n]
    weights = np.maximum(np.take_along_axis(cosine, best, axis=1), 0.0) ** alpha
    neighbours = np.take_along_axis(g, best[:, :, None], axis=1)
    expanded = _unit(q + np.einsum("bn,bnd->bd", weights, neighbours))
    scores: np.ndarray = np.einsum("bkd,bd->bk", g, expanded)
    return scores


def k_reciprocal_distances(
    q: np.ndarray, g: np.ndarray, k1: int, k2: int, lambda_value: float
) -> np.ndarray:
    """The final k-reciprocal distance [B, K] of each shortlist item to its query.

    An item that is among the query's nearest but does not count the query among its own
    nearest (a hub, or an item of a tight cluster the query is not part of) shares few
    reciprocal neighbours with it: its Jaccard distance grows and it drops in the ranking.
    """
    points = np.concatenate([q[:, None, :], g], axis=1)  # [B, N]: the query is point 0
    size = points.shape[1]
    k1, k2 = min(k1, size - 1), min(k2, size)
    original = np.maximum(2.0 - 2.0 * points @ points.transpose(0, 2, 1), 0.0)
    original /= np.maximum(original.max(axis=2, keepdims=True), 1e-12)
    position = _positions(original)
    reciprocal = _reciprocal(position, k1)
    half = _reciprocal(position, round(k1 / 2))  # round half to even, as numpy.around
    # Candidate j of R(i, k1) adds R(j, ½k1) when more than 2/3 of R(j, ½k1) lies in R(i, k1).
    overlap = reciprocal.astype(np.int32) @ half.transpose(0, 2, 1).astype(np.int32)
    grows = reciprocal & (3 * overlap > 2 * half.sum(axis=2)[:, None, :])
    expanded = reciprocal | (grows.astype(np.int32) @ half.astype(np.int32) > 0)
    weights = np.where(expanded, np.exp(-original), 0.0)
    v = weights / weights.sum(axis=2, keepdims=True)
    if k2 > 1:  # local query expansion: each V becomes the mean of its k2 nearest points' V
        v = (position < k2).astype(np.float64) @ v / k2
    query_v = v[:, :1, :]
    jaccard = 1.0 - np.minimum(query_v, v).sum(axis=2) / np.maximum(query_v, v).sum(axis=2)
    final: np.ndarray = (1.0 - lambda_value) * jaccard[:, 1:] + lambda_value * original[:, 0, 1:]
    return final


def rerank_scores(
    config: RerankConfig, queries: np.ndarray, gallery: np.ndarray, scores: np.ndarray
) -> np.ndarray:
    """A [Q, G] score matrix whose ranking is the re-ranked one, for the metrics code.

    ``scores`` [Q, G] ranks the whole gallery (descending, ties by index); each query's best
    ``config.shortlist`` items are re-ranked with ``gallery`` [G, D] and placed first, the rest
    follow in their original order. The values are rank-based, distinct, and carry no meaning
    beyond the order.
    """
    count = scores.shape[1]
    ranking = np.argsort(-scores, axis=1, kind="stable")
    if config.active:
        top = min(config.shortlist, count)
        for start in range(0, len(scores), _BLOCK):
            rows = slice(start, start + _BLOCK)
            head = ranking[rows, :top]
            reranked = rerank(config, queries[rows], gallery[head])
            ranking[rows, :top] = np.take_along_axis(head, reranked.order, axis=1)
    out = np.empty(scores.shape, np.float64)
    np.put_along_axis(out, ranking, np.arange(count, 0, -1, dtype=np.float64)[None, :], axis=1)
    return out


def _positions(distances: np.ndarray) -> np.ndarray:
    """``position[b, i, j]``: the rank of point j in point i's list, nearest first, ties by
    index (the point itself is normally rank 0)."""
    order = np.argsort(distances, axis=2, kind="stable")
    position = np.empty_like(order)
    ranks = np.broadcast_to(np.arange(order.shape[2]), order.shape)
    np.put_along_axis(position, order, ranks, axis=2)
    return position


def _reciprocal(position: np.ndarray, k: int) -> np.ndarray:
    """``R(i, k)`` as a mask: j is among i's k + 1 nearest (itself included) and i among j's."""
    near = position <= k
    mutual: np.ndarray = near & near.transpose(0, 2, 1)
    return mutual


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return unit
