"""Retrieval metrics: hand-worked answers, sklearn, a brute-force reference and the tie rule."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import average_precision_score

from sketchsearch.runtime.evaluation import metrics
from sketchsearch.runtime.evaluation.metrics import (
    average_precision,
    evaluate_retrieval,
    map_at_all,
    map_at_k,
    mean_pair_cosine,
    precision_at_k,
    rank,
    recall_at_k,
)

# Query 0 ranks the gallery 0,1,2,3,4 and items 0 and 2 are relevant: hits at ranks 1 and 3.
#   AP = (P@1 + P@3) / 2 = (1 + 2/3) / 2 = 5/6
# Query 1 ranks the gallery 3,4,1,2,0 and items 0, 2 and 4 are relevant: hits at ranks 2, 4, 5.
#   AP = (P@2 + P@4 + P@5) / 3 = (1/2 + 2/4 + 3/5) / 3 = 8/15
# mAP@all = (5/6 + 8/15) / 2 = 41/60
# mAP@2: q0 = P@1 / min(2, 2) = 1/2; q1 = P@2 / min(2, 3) = 1/4; mean 3/8
# mAP@4: q0 = (1 + 2/3) / min(4, 2) = 5/6; q1 = (1/2 + 2/4) / min(4, 3) = 1/3; mean 7/12
# P@1 = (1 + 0) / 2; P@3 = (2/3 + 1/3) / 2; P@10 divides by min(10, 5): (2/5 + 3/5) / 2
# recall@1: only q0 has a hit at rank 1 -> 1/2; recall@2: both do -> 1
HAND_SCORES = np.array([[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.5, 0.3, 0.9, 0.7]])
HAND_RELEVANT = np.array([[1, 0, 1, 0, 0], [1, 0, 1, 0, 1]], dtype=bool)


def test_hand_computed_case() -> None:
    assert rank(HAND_SCORES).tolist() == [[0, 1, 2, 3, 4], [3, 4, 1, 2, 0]]
    np.testing.assert_allclose(average_precision(HAND_SCORES, HAND_RELEVANT), [5 / 6, 8 / 15])
    assert map_at_all(HAND_SCORES, HAND_RELEVANT) == pytest.approx(41 / 60)
    assert map_at_k(HAND_SCORES, HAND_RELEVANT, 2) == pytest.approx(3 / 8)
    assert map_at_k(HAND_SCORES, HAND_RELEVANT, 4) == pytest.approx(7 / 12)
    assert map_at_k(HAND_SCORES, HAND_RELEVANT, 500) == pytest.approx(41 / 60)  # k >= gallery
    assert precision_at_k(HAND_SCORES, HAND_RELEVANT, 1) == pytest.approx(1 / 2)
    assert precision_at_k(HAND_SCORES, HAND_RELEVANT, 3) == pytest.approx(1 / 2)
    assert precision_at_k(HAND_SCORES, HAND_RELEVANT, 10) == pytest.approx(1 / 2)
    assert recall_at_k(HAND_SCORES, HAND_RELEVANT, 1) == pytest.approx(1 / 2)
    assert recall_at_k(HAND_SCORES, HAND_RELEVANT, 2) == pytest.approx(1.0)
    report = evaluate_retrieval(HAND_SCORES, HAND_RELEVANT, precision_ks=(1, 3), recall_ks=(1, 2))
    assert (report.queries, report.gallery, report.queries_without_relevant) == (2, 5, 0)
    assert report.map_all == pytest.approx(41 / 60)
    assert report.map_200 == pytest.approx(41 / 60)  # min(200, R) = R: mAP@200 is mAP@all here
    assert report.precision == pytest.approx({1: 0.5, 3: 0.5})
    assert report.recall == pytest.approx({1: 0.5, 2: 1.0})


def random_case(
    seed: int, nq: int = 12, ng: int = 60, ties: bool = False
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, (nq, ng)).astype(np.float64) if ties else rng.random((nq, ng))
    relevant = rng.random((nq, ng)) < rng.uniform(0.02, 0.5, (nq, 1))
    relevant[np.arange(nq), rng.integers(0, ng, nq)] = True  # every query has one relevant item
    return scores, relevant


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_sklearn_without_ties(seed: int) -> None:
    scores, relevant = random_case(seed)
    expected = [average_precision_score(relevant[q], scores[q]) for q in range(len(scores))]
    np.testing.assert_allclose(average_precision(scores, relevant), expected, rtol=1e-12)
    assert map_at_all(scores, relevant) == pytest.approx(np.mean(expected), rel=1e-12)
    assert evaluate_retrieval(scores, relevant).map_all == pytest.approx(np.mean(expected))


def brute_force(
    scores: npt.NDArray[np.float64], relevant: npt.NDArray[np.bool_], k: int
) -> dict[str, float]:
    """One query at a time, in exact fractions, straight from the definitions."""
    precisions, recalls, maps, aps = [], [], [], []
    ng = scores.shape[1]
    for s, r in zip(scores, relevant, strict=True):
        order = sorted(range(ng), key=lambda g: (-s[g], g))
        rels = [bool(r[g]) for g in order]
        n_rel = sum(rels)
        prec = [Fraction(sum(rels[: i + 1]), i + 1) for i in range(ng)]
        precisions.append(Fraction(sum(rels[:k]), min(k, ng)))
        recalls.append(any(rels[:k]))
        if n_rel:
            maps.append(
                sum(p for p, hit in zip(prec[:k], rels[:k], strict=True) if hit) / min(k, n_rel)
            )
            aps.append(sum(p for p, hit in zip(prec, rels, strict=True) if hit) / n_rel)
    return {
        "P": float(np.mean([float(p) for p in precisions])),
        "recall": float(np.mean(recalls)),
        "mAP@k": float(np.mean([float(m) for m in maps])),
        "mAP@all": float(np.mean([float(a) for a in aps])),
    }


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 3, 10, 59, 60, 75])
def test_matches_brute_force_reference(seed: int, k: int, ties: bool) -> None:
    scores, relevant = random_case(seed, ties=ties)
    relevant[0] = False  # a query with nothing relevant: in P@k and recall@k, not in mAP
    expected = brute_force(scores, relevant, k)
    assert precision_at_k(scores, relevant, k) == pytest.approx(expected["P"], rel=1e-12)
    assert recall_at_k(scores, relevant, k) == pytest.approx(expected["recall"], rel=1e-12)
    assert map_at_k(scores, relevant, k) == pytest.approx(expected["mAP@k"], rel=1e-12)
    assert map_at_all(scores, relevant) == pytest.approx(expected["mAP@all"], rel=1e-12)


def test_ties_are_broken_by_gallery_index() -> None:
    assert rank(np.zeros((1, 4))).tolist() == [[0, 1, 2, 3]]
    assert rank([[0.2, 0.9, 0.2, 0.9, 0.5]]).tolist() == [[1, 3, 4, 0, 2]]
    tied = np.full((2, 4), 0.5)
    relevant = np.array([[0, 0, 0, 1], [1, 0, 0, 0]], dtype=bool)
    # all scores equal: the relevant item is last (AP 1/4) or first (AP 1), by index alone
    np.testing.assert_allclose(average_precision(tied, relevant), [1 / 4, 1.0])
    assert recall_at_k(tied, relevant, 1) == 0.5


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_rank_is_the_stable_argsort_on_many_ties_and_in_blocks(
    dtype: type[np.floating], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    special = [0.0, -0.0, np.inf, -np.inf, 1e-7, -1e-7, 1.0, -1.0, 6e4, -6e4, 0.5]
    scores = rng.choice(np.array(special), (40, 300))
    scores[::3] = rng.random((14, 300))  # rows without ties
    scores[1::3, ::2] += 1e-12  # not float32-exact, for the float64 path, with ties left
    scores = scores.astype(dtype)
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 1000)  # several blocks of rows
    np.testing.assert_array_equal(rank(scores), np.argsort(-scores, axis=1, kind="stable"))
    no_ties = rng.random((5, 300))  # float64 without ties takes the plain argsort
    np.testing.assert_array_equal(rank(no_ties), np.argsort(-no_ties, axis=1, kind="stable"))


def test_query_without_relevant_items_is_excluded_from_map_and_counted() -> None:
    relevant = HAND_RELEVANT.copy()
    relevant[1] = False
    ap = average_precision(HAND_SCORES, relevant)
    assert ap[0] == pytest.approx(5 / 6) and np.isnan(ap[1])
    assert map_at_all(HAND_SCORES, relevant) == pytest.approx(5 / 6)
    assert map_at_k(HAND_SCORES, relevant, 2) == pytest.approx(1 / 2)
    report = evaluate_retrieval(HAND_SCORES, relevant, precision_ks=(1,), recall_ks=(1,))
    assert report.queries_without_relevant == 1 and report.queries == 2
    assert report.map_all == pytest.approx(5 / 6) and report.map_200 == pytest.approx(5 / 6)
    assert report.precision[1] == 0.5 and report.recall[1] == 0.5  # counted there as a miss
    none = evaluate_retrieval(HAND_SCORES, np.zeros((2, 5), dtype=bool))
    assert np.isnan(none.map_all) and np.isnan(none.map_200)
    assert none.queries_without_relevant == 2
    assert np.isnan(map_at_all(HAND_SCORES, np.zeros((2, 5), dtype=bool)))


@pytest.mark.parametrize(
    ("scores", "relevant", "message"),
    [
        (np.zeros(5), np.zeros(5, dtype=bool), "2-D"),
        (np.zeros((2, 2, 2)), np.zeros((2, 2, 2), dtype=bool), "2-D"),
        (np.zeros((2, 5)), np.zeros((2, 4), dtype=bool), "must match"),
        (np.zeros((2, 5)), np.zeros((5, 2), dtype=bool), "must match"),
        (np.zeros((0, 5)), np.zeros((0, 5), dtype=bool), "at least one"),
        (np.zeros((2, 0)), np.zeros((2, 0), dtype=bool), "at least one"),
        (np.full((2, 5), np.nan), np.zeros((2, 5), dtype=bool), "NaN"),
        (np.zeros((2, 5)), np.full((2, 5), 2), "boolean"),
    ],
)
def test_bad_inputs_raise_value_error(
    scores: npt.NDArray[np.float64], relevant: npt.NDArray[np.bool_], message: str
) -> None:
    for call in (
        lambda: average_precision(scores, relevant),
        lambda: map_at_all(scores, relevant),
        lambda: map_at_k(scores, relevant, 5),
        lambda: precision_at_k(scores, relevant, 5),
        lambda: recall_at_k(scores, relevant, 5),
        lambda: evaluate_retrieval(scores, relevant),
    ):
        with pytest.raises(ValueError, match=message):
            call()


def test_bad_k_and_bad_rank_input_raise_value_error() -> None:
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            precision_at_k(HAND_SCORES, HAND_RELEVANT, k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive integer"):
        evaluate_retrieval(HAND_SCORES, HAND_RELEVANT, recall_ks=(0,))
    with pytest.raises(ValueError, match="2-D"):
        rank([1.0, 2.0])


def test_integer_relevance_and_float32_scores_give_the_same_answers() -> None:
    as_ints = average_precision(HAND_SCORES.astype(np.float32), HAND_RELEVANT.astype(int))
    np.testing.assert_allclose(as_ints, average_precision(HAND_SCORES, HAND_RELEVANT))


def test_to_dict_has_flat_json_ready_keys() -> None:
    report = evaluate_retrieval(HAND_SCORES, HAND_RELEVANT)
    flat = report.to_dict()
    assert list(flat) == [
        "queries",
        "gallery",
        "queries_without_relevant",
        "mAP@all",
        "mAP@200",
        "P@1",
        "P@10",
        "P@100",
        "P@200",
        "recall@1",
        "recall@3",
        "recall@5",
        "recall@10",
    ]
    assert flat["mAP@all"] == pytest.approx(41 / 60) and flat["queries"] == 2
    assert all(type(v) in (int, float) for v in flat.values())
    assert json.loads(json.dumps(flat)) == flat


def test_mean_pair_cosine() -> None:
    a = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    assert mean_pair_cosine(a, a) == pytest.approx(1.0)
    assert mean_pair_cosine(a, -a) == pytest.approx(-1.0)
    assert mean_pair_cosine(a, a[:, ::-1] * [1, -1]) == pytest.approx(0.0, abs=1e-12)
    assert mean_pair_cosine(a * 3, a) == pytest.approx(1.0)  # renormalised
    with pytest.raises(ValueError, match="2-D"):
        mean_pair_cosine(a, a[:2])
