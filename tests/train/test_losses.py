"""Losses on hand-placed 2-D unit vectors, against answers worked out here from the formulas."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning import distances, reducers
from pytorch_metric_learning import losses as pml

from sketchsearch.train.loss_spec import LOSS_NAMES, parse_loss_spec
from sketchsearch.train.losses import (
    CombinedLoss,
    ContrastiveLoss,
    CosineLoss,
    CrossEntropyLoss,
    InfoNCELoss,
    LossInputs,
    TripletLoss,
    build_loss,
)


def at(*degrees: float, scale: float = 1.0) -> torch.Tensor:
    """Rows of 2-D vectors of length `scale` at the given angles (degrees)."""
    rad = [math.radians(d) for d in degrees]
    return torch.tensor([[scale * math.cos(r), scale * math.sin(r)] for r in rad])


def chord(degrees: float) -> float:
    """Euclidean distance between two unit vectors `degrees` apart."""
    return 2 * math.sin(math.radians(degrees) / 2)


def angle_for(distance: float) -> float:
    return math.degrees(2 * math.asin(distance / 2))


def triplets(q: list[float], p: list[float], n: list[float], scale: float = 1.0) -> LossInputs:
    return LossInputs(at(*q, scale=scale), at(*p, scale=scale), at(*n, scale=scale))


def value(loss: torch.nn.Module, batch: LossInputs) -> float:
    return float(loss(batch).detach())


# --- contrastive ---------------------------------------------------------------------------


def test_contrastive_positive_pair_contributes_half_its_squared_distance() -> None:
    # One triplet: positive 60° away (d = 1), negative opposite (d = 2, beyond any margin).
    got = value(ContrastiveLoss(margin=0.5), triplets([0], [60], [180]))
    assert got == pytest.approx((chord(60) ** 2 / 2 + 0) / 2, abs=1e-6)


def test_contrastive_negative_beyond_margin_is_free_and_nearer_pays_the_squared_gap() -> None:
    m = 0.5
    far = triplets([0], [0], [angle_for(0.8)])
    near = triplets([0], [0], [angle_for(0.3)])
    assert value(ContrastiveLoss(m), far) == pytest.approx(0.0, abs=1e-7)
    assert value(ContrastiveLoss(m), near) == pytest.approx((m - 0.3) ** 2 / 2 / 2, abs=1e-6)


@pytest.mark.parametrize(("margin", "expected"), [(0.2, 0.0), (0.5, (0.5 - 0.3) ** 2 / 2)])
def test_contrastive_margin_is_a_distance_between_unit_vectors(margin, expected) -> None:
    batch = triplets([0], [0], [angle_for(0.3)])  # negative at d = 0.3
    assert value(ContrastiveLoss(margin), batch) == pytest.approx(expected / 2, abs=1e-6)


def test_contrastive_mean_over_all_pairs() -> None:
    m = 0.5
    batch = triplets([0, 90], [30, 90], [angle_for(0.1), 270])
    terms = [chord(30) ** 2, 0.0, (m - 0.1) ** 2, 0.0]
    assert value(ContrastiveLoss(m), batch) == pytest.approx(sum(terms) / 2 / 4, abs=1e-6)


def test_contrastive_is_scale_invariant() -> None:
    degrees = ([0, 100], [40, 130], [20, 280])
    small = value(ContrastiveLoss(0.5), triplets(*degrees))
    assert value(ContrastiveLoss(0.5), triplets(*degrees, scale=10.0)) == pytest.approx(small)


def test_contrastive_gradient_is_finite_at_zero_distance() -> None:
    q = at(45).requires_grad_()
    loss = ContrastiveLoss(0.5)(LossInputs(q, at(45), at(45)))
    loss.backward()
    assert torch.isfinite(q.grad).all()
    assert float(loss.detach()) == pytest.approx(0.5**2 / 2 / 2, abs=1e-5)


# --- cosine --------------------------------------------------------------------------------


def test_cosine_is_one_minus_cos_for_positives_and_hinge_for_negatives() -> None:
    m = 0.3
    batch = triplets([0, 0], [60, 0], [45, 120], scale=3.0)
    terms = [1 - 0.5, 1 - 1.0, max(0.0, math.cos(math.radians(45)) - m), max(0.0, -0.5 - m)]
    assert value(CosineLoss(m), batch) == pytest.approx(sum(terms) / 4, abs=1e-6)


# --- triplet -------------------------------------------------------------------------------


def test_triplet_is_hinge_on_unit_vector_distances() -> None:
    m = 0.3
    q, p, n = at(0, 0), at(60, 10, scale=4.0), at(70, 120, scale=0.5)
    terms = [max(0.0, chord(60) - chord(70) + m), max(0.0, chord(10) - chord(120) + m)]
    assert terms[0] > 0 and terms[1] == 0
    assert value(TripletLoss(m), LossInputs(q, p, n)) == pytest.approx(sum(terms) / 2, abs=1e-5)


# --- infonce -------------------------------------------------------------------------------


def test_infonce_single_query_is_binary_softmax() -> None:
    tau = 0.5
    s_p, s_n = math.cos(math.radians(30)), math.cos(math.radians(90))
    expected = -math.log(math.exp(s_p / tau) / (math.exp(s_p / tau) + math.exp(s_n / tau)))
    got = value(InfoNCELoss(tau), triplets([0], [30], [90], scale=2.0))
    assert got == pytest.approx(expected, abs=1e-6)


def test_infonce_uses_every_photo_of_the_batch() -> None:
    tau = 0.2
    q, photos = [0.0, 90.0], [20.0, 100.0, 180.0, 45.0]  # positives, then negatives
    expected = 0.0
    for i, qa in enumerate(q):
        logits = [math.cos(math.radians(qa - pa)) / tau for pa in photos]
        expected -= math.log(math.exp(logits[i]) / sum(math.exp(x) for x in logits)) / len(q)
    got = value(InfoNCELoss(tau), triplets(q, photos[:2], photos[2:]))
    assert got == pytest.approx(expected, abs=1e-5)


def test_infonce_decreases_as_positives_align() -> None:
    got = [value(InfoNCELoss(0.1), triplets([0, 90], [a, 90 + a], [150, 240])) for a in (60, 30, 0)]
    assert got[0] > got[1] > got[2]


def test_infonce_temperature_sharpens() -> None:
    right = triplets([0], [10], [80])  # positive is the nearest photo: colder is easier
    wrong = triplets([0], [80], [10])  # a negative is nearer: colder is harsher
    assert value(InfoNCELoss(0.05), right) < value(InfoNCELoss(0.5), right)
    assert value(InfoNCELoss(0.05), wrong) > value(InfoNCELoss(0.5), wrong)


def test_infonce_counts_a_duplicate_query_positive_as_negative() -> None:
    # The documented simplification: two queries with the same photo can never go below log 2.
    batch = triplets([0, 0], [0, 0], [180, 180])
    assert value(InfoNCELoss(0.01), batch) == pytest.approx(math.log(2), abs=1e-4)


# --- ce ------------------------------------------------------------------------------------


def test_ce_is_mean_of_both_branches() -> None:
    q_logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    p_logits = torch.tensor([[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    labels = torch.tensor([0, 2])

    def ce(rows: list[list[float]]) -> float:
        return sum(
            -r[y] + math.log(sum(math.exp(v) for v in r)) for r, y in zip(rows, [0, 2], strict=True)
        ) / len(rows)

    batch = LossInputs(at(0, 0), at(0, 0), at(0, 0), q_logits, p_logits, labels)
    expected = (ce(q_logits.tolist()) + ce(p_logits.tolist())) / 2
    assert value(CrossEntropyLoss(), batch) == pytest.approx(expected, abs=1e-6)


def test_ce_without_logits_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="query_logits"):
        CrossEntropyLoss()(triplets([0], [0], [0]))


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        LossInputs(at(0, 1), at(0, 1), at(0))
    with pytest.raises(ValueError, match="query"):
        LossInputs(torch.zeros(3), torch.zeros(3), torch.zeros(3))


# --- pytorch-metric-learning as an oracle --------------------------------------------------


@pytest.fixture
def random_batch() -> LossInputs:
    gen = torch.Generator().manual_seed(0)
    return LossInputs(*(torch.randn(6, 8, generator=gen) for _ in range(3)))


def test_infonce_matches_pml_ntxent(random_batch: LossInputs) -> None:
    b, ids = random_batch, torch.arange(6)
    photos = torch.cat([b.positive, b.negative])
    oracle = pml.NTXentLoss(temperature=0.1)(b.query, ids, None, photos, torch.cat([ids, ids + 6]))
    assert value(InfoNCELoss(0.1), b) == pytest.approx(float(oracle), abs=1e-5)


def test_triplet_matches_pml_with_mean_reducer(random_batch: LossInputs) -> None:
    b, ids = random_batch, torch.arange(6)
    oracle = pml.TripletMarginLoss(margin=0.3, reducer=reducers.MeanReducer())(
        b.query, indices_tuple=(ids, ids, ids + 6), ref_emb=torch.cat([b.positive, b.negative])
    )
    assert value(TripletLoss(0.3), b) == pytest.approx(float(oracle), abs=1e-5)


def test_cosine_matches_pml_cosine_contrastive(random_batch: LossInputs) -> None:
    # pml sums the mean positive and mean negative losses: twice our mean over the 2B pairs.
    b, ids = random_batch, torch.arange(6)
    oracle = pml.ContrastiveLoss(
        pos_margin=1.0,
        neg_margin=0.3,
        distance=distances.CosineSimilarity(),
        reducer=reducers.MeanReducer(),
    )(b.query, indices_tuple=(ids, ids, ids, ids + 6), ref_emb=torch.cat([b.positive, b.negative]))
    assert value(CosineLoss(0.3), b) == pytest.approx(float(oracle) / 2, abs=1e-5)


# --- parse_loss_spec -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("contrastive=1,ce=1", {"contrastive": 1.0, "ce": 1.0}),
        ("contrastive=1,cosine=1,ce=0.5", {"contrastive": 1.0, "cosine": 1.0, "ce": 0.5}),
        ("infonce", {"infonce": 1.0}),
        (" triplet , ce = 0.25 ", {"triplet": 1.0, "ce": 0.25}),
        ("infonce=1,ce=0", {"infonce": 1.0, "ce": 0.0}),
    ],
)
def test_parse_loss_spec(spec: str, expected: dict[str, float]) -> None:
    assert parse_loss_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("contrastiv=1", "unknown loss 'contrastiv'.*did you mean 'contrastive'"),
        ("xyz", "unknown loss 'xyz'"),
        ("ce=-1", "weight of 'ce'.*>= 0"),
        ("ce=abc", "not a number"),
        ("ce=nan", "finite"),
        ("ce=1,ce=2", "given twice"),
        ("", "empty term"),
        ("ce=1,", "empty term"),
        ("ce=0,triplet=0", "zero"),
    ],
)
def test_parse_loss_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_loss_spec(spec)


def test_every_name_builds() -> None:
    assert all(isinstance(build_loss(name), torch.nn.Module) for name in LOSS_NAMES)
    with pytest.raises(ValueError, match="did you mean 'triplet'"):
        build_loss("triplets")
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(0.0)
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(-0.1)


# --- CombinedLoss --------------------------------------------------------------------------


def test_combined_is_weighted_sum_of_its_terms(random_batch: LossInputs) -> None:
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    q = random_batch.query.clone().requires_grad_()
    labels = torch.arange(6) % 4
    batch = LossInputs(q, random_batch.positive, random_batch.negative, logits, -logits, labels)
    weights = {"contrastive": 1.0, "cosine": 2.0, "ce": 0.5, "triplet": 0.25, "infonce": 3.0}
    combined = CombinedLoss(weights, margin=0.4, temperature=0.2)
    total, terms = combined(batch)
    standalone = {
        "contrastive": ContrastiveLoss(0.4),
        "cosine": CosineLoss(0.4),
        "ce": CrossEntropyLoss(),
        "triplet": TripletLoss(0.4),
        "infonce": InfoNCELoss(0.2),
    }
    assert set(terms) == set(weights)
    for name, loss in standalone.items():
        assert float(terms[name]) == pytest.approx(value(loss, batch), abs=1e-6)
        assert not terms[name].requires_grad
    expected = sum(weights[n] * float(terms[n]) for n in weights)
    assert float(total.detach()) == pytest.approx(expected, abs=1e-5)
    total.backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_combined_needs_logits_only_with_ce() -> None:
    assert CombinedLoss({"ce": 1.0, "triplet": 1.0}).needs_logits
    assert not CombinedLoss({"contrastive": 1.0, "cosine": 1.0}).needs_logits
    assert not CombinedLoss(parse_loss_spec("infonce=1,ce=0")).needs_logits


def test_combined_drops_zero_weights_and_rejects_bad_ones() -> None:
    _, terms = CombinedLoss({"infonce": 1.0, "ce": 0.0})(triplets([0], [10], [90]))
    assert set(terms) == {"infonce"}
    with pytest.raises(ValueError, match="did you mean 'cosine'"):
        CombinedLoss({"cosin": 1.0})
    with pytest.raises(ValueError, match="positive weight"):
        CombinedLoss({"ce": 0.0})
    with pytest.raises(ValueError, match=">= 0"):
        CombinedLoss({"ce": -1.0})
