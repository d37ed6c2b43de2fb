"""runtime/evaluation/metrics.py against independent implementations.

The oracles: sklearn and pytorch-metric-learning.

pytorch-metric-learning's AccuracyCalculator with ``k=None`` ranks the whole reference set, so
its mean_average_precision is our mAP@all; it leaves out queries whose label is not in the
reference set ("lone" queries) from precision_at_1 as well, where we count them as misses.
Ties: our rule is score descending, then gallery index ascending; sklearn pools a tied block
instead, so sklearn is compared on tie-free scores and the tie rule is tested on its own.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import torch
from pytorch_metric_learning.distances import DotProductSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from sklearn.metrics import average_precision_score

from sketchsearch.runtime.evaluation.metrics import average_precision, map_at_all, precision_at_k

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
INCLUDE = ("precision_at_1", "mean_average_precision")


def unit_rows(rng: np.random.Generator, n: int, dim: int = 8) -> Floats:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def stable_knn(
    query: torch.Tensor, k: int, reference: torch.Tensor, ref_includes_query: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dot-product kNN ranking ties by reference index (torch.topk leaves their order open)."""
    sims = query @ reference.T
    order = torch.sort(-sims, dim=1, stable=True).indices[:, :k]
    return torch.gather(sims, 1, order), order


def pml(
    query: Floats, query_labels: Ints, reference: Floats, reference_labels: Ints, knn: object
) -> dict[str, float]:
    calculator = AccuracyCalculator(
        include=INCLUDE, k=None, device=torch.device("cpu"), knn_func=knn
    )
    result: dict[str, float] = calculator.get_accuracy(
        query=query,
        query_labels=query_labels,
        reference=reference,
        reference_labels=reference_labels,
        ref_includes_query=False,
        include=INCLUDE,
    )
    return result


def ours(
    query: Floats, query_labels: Ints, reference: Floats, reference_labels: Ints
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    scores = query.astype(np.float64) @ reference.astype(np.float64).T
    return scores, query_labels[:, None] == reference_labels[None, :]


def library_knn() -> CustomKNN:
    return CustomKNN(DotProductSimilarity(normalize_embeddings=False))


@pytest.mark.parametrize("seed", range(5))
def test_random_cases_match_sklearn_and_pytorch_metric_learning(seed: int) -> None:
    rng = np.random.default_rng(seed)
    query, reference = unit_rows(rng, 20), unit_rows(rng, 60)
    q_labels, r_labels = rng.integers(0, 5, 20), np.arange(60) % 5  # every label in reference
    scores, relevant = ours(query, q_labels, reference, r_labels)
    expected = pml(query, q_labels, reference, r_labels, library_knn())
    assert map_at_all(scores, relevant) == pytest.approx(expected["mean_average_precision"])
    assert precision_at_k(scores, relevant, 1) == pytest.approx(expected["precision_at_1"])
    per_query = [average_precision_score(relevant[q], scores[q]) for q in range(len(scores))]
    np.testing.assert_allclose(average_precision(scores, relevant), per_query, rtol=1e-12)


def test_a_single_relevant_item_scores_one_over_its_rank() -> None:
    rng = np.random.default_rng(11)
    query, reference = unit_rows(rng, 15), unit_rows(rng, 40)
    q_labels, r_labels = rng.integers(0, 40, 15), np.arange(40)  # each label exactly once
    scores, relevant = ours(query, q_labels, reference, r_labels)
    rank_of_relevant = (scores > scores[relevant][:, None]).sum(axis=1) + 1
    np.testing.assert_allclose(average_precision(scores, relevant), 1 / rank_of_relevant)
    per_query = [average_precision_score(relevant[q], scores[q]) for q in range(len(scores))]
    np.testing.assert_allclose(average_precision(scores, relevant), per_query, rtol=1e-12)
    expected = pml(query, q_labels, reference, r_labels, library_knn())
    assert map_at_all(scores, relevant) == pytest.approx(expected["mean_average_precision"])
    assert precision_at_k(scores, relevant, 1) == pytest.approx(expected["precision_at_1"])


def test_queries_without_a_relevant_item() -> None:
    rng = np.random.default_rng(3)
    query, reference = unit_rows(rng, 24), unit_rows(rng, 50)
    q_labels, r_labels = rng.integers(0, 8, 24), np.arange(50) % 6  # labels 6, 7: no match
    lone = ~np.isin(q_labels, r_labels)
    assert 0 < lone.sum() < len(lone)
    scores, relevant = ours(query, q_labels, reference, r_labels)
    expected = pml(query, q_labels, reference, r_labels, library_knn())
    # Both leave such queries out of mAP ...
    assert np.isnan(average_precision(scores, relevant)[lone]).all()
    assert map_at_all(scores, relevant) == pytest.approx(expected["mean_average_precision"])
    # ... P@1 counts them here as misses, where PML leaves them out of its mean.
    p1 = precision_at_k(scores, relevant, 1)
    assert p1 * len(lone) == pytest.approx(expected["precision_at_1"] * (~lone).sum())
    kept = ~lone
    per_query = [average_precision_score(relevant[q], scores[q]) for q in np.flatnonzero(kept)]
    np.testing.assert_allclose(average_precision(scores, relevant)[kept], per_query, rtol=1e-12)


def test_no_query_has_a_relevant_item() -> None:
    rng = np.random.default_rng(4)
    query, reference = unit_rows(rng, 5), unit_rows(rng, 10)
    q_labels, r_labels = np.full(5, 99), np.arange(10)
    scores, relevant = ours(query, q_labels, reference, r_labels)
    expected = pml(query, q_labels, reference, r_labels, library_knn())
    assert np.isnan(map_at_all(scores, relevant))
    assert np.isnan(expected["mean_average_precision"])
    assert precision_at_k(scores, relevant, 1) == 0.0


def tie_case(seed: int) -> tuple[Floats, Ints, Floats, Ints]:
    """Vectors of -1/0/1: dot products are small integers, exact in float32, with many ties."""
    rng = np.random.default_rng(seed)
    query = rng.integers(-1, 2, (12, 3)).astype(np.float32)
    reference = rng.integers(-1, 2, (40, 3)).astype(np.float32)
    return query, rng.integers(0, 4, 12), reference, np.arange(40) % 4


@pytest.mark.parametrize("seed", range(4))
def test_ties_follow_the_documented_rule(seed: int) -> None:
    query, q_labels, reference, r_labels = tie_case(seed)
    scores, relevant = ours(query, q_labels, reference, r_labels)
    assert any(len(np.unique(row)) < len(row) for row in scores)  # there are ties
    # PML on a ranking that breaks ties by reference index gives our numbers exactly.
    expected = pml(query, q_labels, reference, r_labels, stable_knn)
    assert map_at_all(scores, relevant) == pytest.approx(expected["mean_average_precision"])
    assert precision_at_k(scores, relevant, 1) == pytest.approx(expected["precision_at_1"])
    # sklearn agrees once the ties are broken that way: strictly falling scores in that order.
    for q in range(len(scores)):
        order = np.lexsort((np.arange(scores.shape[1]), -scores[q]))
        untied = np.empty(scores.shape[1])
        untied[order] = np.arange(scores.shape[1], 0, -1)
        ap = average_precision_score(relevant[q], untied)
        assert average_precision(scores[q : q + 1], relevant[q : q + 1])[0] == pytest.approx(ap)


def test_sklearn_pools_a_tied_block_where_the_index_decides_here() -> None:
    scores = np.zeros((1, 3))
    relevant = np.array([[True, False, False]])
    assert average_precision(scores, relevant)[0] == 1.0  # item 0 ranks first
    assert average_precision_score(relevant[0], scores[0]) == pytest.approx(1 / 3)
    assert average_precision(scores, relevant[:, ::-1])[0] == pytest.approx(1 / 3)  # ranks last
