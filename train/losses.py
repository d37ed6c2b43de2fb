"""Training losses for the sketch→photo embedding model, and the spec that combines them.

Every embedding loss L2-normalises its inputs itself, so margins and temperatures have a fixed
meaning whatever the scale of the encoder's output: distances lie in [0, 2], cosines in [-1, 1].
(The research code this replaces did not normalise, so its contrastive margin meant nothing.)
A batch is row-aligned triplets: ``query[i]`` (a sketch), ``positive[i]`` (its photo) and
``negative[i]`` (another photo), plus optional class logits and category ``labels`` for ``ce``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sketchsearch.train.loss_spec import LOSS_NAMES, unknown_loss


@dataclass(frozen=True)
class LossInputs:
    """One batch: embeddings [B, D] (any scale), optional logits [B, C] and labels [B]."""

    query: Tensor
    positive: Tensor
    negative: Tensor | None  # None when no loss in use needs negatives (ce, infonce)
    query_logits: Tensor | None = None
    positive_logits: Tensor | None = None
    labels: Tensor | None = None

    def __post_init__(self) -> None:
        if self.query.dim() != 2:
            raise ValueError(f"query must be [B, D], got shape {tuple(self.query.shape)}")
        for name in ("positive", "negative"):
            if getattr(self, name) is None:
                continue
            shape = tuple(getattr(self, name).shape)
            if shape != tuple(self.query.shape):
                raise ValueError(f"{name} has shape {shape}, query {tuple(self.query.shape)}")


def _unit(batch: LossInputs) -> tuple[Tensor, Tensor, Tensor]:
    """Unit-length query, positive and negative; pair losses cannot run without negatives."""
    if batch.negative is None:
        raise ValueError("this loss compares with negatives, but the batch has none")
    return (*_unit_pair(batch), F.normalize(batch.negative, dim=1))


def _unit_pair(batch: LossInputs) -> tuple[Tensor, Tensor]:
    return F.normalize(batch.query, dim=1), F.normalize(batch.positive, dim=1)


def _check_margin(margin: float) -> float:
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    return margin


class ContrastiveLoss(nn.Module):
    """Classic pairwise contrastive loss (Hadsell et al. 2006) on unit vectors.

    Over the 2B pairs (q, p) with y=1 and (q, n) with y=0, ``mean([y·d² + (1−y)·relu(m − d)²] / 2)``
    with d the Euclidean distance. Positives use d² directly; negatives take
    ``d = sqrt(d² + eps)`` so the gradient stays finite when a negative coincides with the query.
    (pytorch-metric-learning's ContrastiveLoss uses a different hinge: relu(m − d), no square.)
    """

    def __init__(self, margin: float = 0.3, eps: float = 1e-12) -> None:
        super().__init__()
        self.margin = _check_margin(margin)
        self.eps = eps

    def forward(self, batch: LossInputs) -> Tensor:
        q, p, n = _unit(batch)
        pos = (q - p).pow(2).sum(dim=1)
        neg_dist = ((q - n).pow(2).sum(dim=1) + self.eps).sqrt()
        neg = F.relu(self.margin - neg_dist).pow(2)
        return torch.cat([pos, neg]).mean() / 2


class CosineLoss(nn.Module):
    """``nn.CosineEmbeddingLoss(margin)``: 1 − cos for (q, p), max(0, cos − m) for (q, n).

    One call on the concatenated 2B pairs, so the result is the mean over all of them.
    """

    def __init__(self, margin: float = 0.3) -> None:
        super().__init__()
        self.loss = nn.CosineEmbeddingLoss(margin=_check_margin(margin))

    def forward(self, batch: LossInputs) -> Tensor:
        q, p, n = _unit(batch)
        target = torch.cat([torch.ones(len(q)), -torch.ones(len(q))]).to(q)
        loss: Tensor = self.loss(torch.cat([q, q]), torch.cat([p, n]), target)
        return loss


class CrossEntropyLoss(nn.Module):
    """Category classification of both branches: mean of CE(query_logits), CE(positive_logits)."""

    def __init__(self) -> None:
        super().__init__()
        self.loss = nn.CrossEntropyLoss()

    def forward(self, batch: LossInputs) -> Tensor:
        if batch.query_logits is None or batch.positive_logits is None or batch.labels is None:
            raise ValueError("the 'ce' loss needs query_logits, positive_logits and labels")
        q_loss: Tensor = self.loss(batch.query_logits, batch.labels)
        p_loss: Tensor = self.loss(batch.positive_logits, batch.labels)
        return (q_loss + p_loss) / 2


class TripletLoss(nn.Module):
    """``nn.TripletMarginLoss(margin)``: mean of max(0, d(q, p) − d(q, n) + m) on unit vectors."""

    def __init__(self, margin: float = 0.3) -> None:
        super().__init__()
        self.loss = nn.TripletMarginLoss(margin=_check_margin(margin))

    def forward(self, batch: LossInputs) -> Tensor:
        loss: Tensor = self.loss(*_unit(batch))
        return loss


class InfoNCELoss(nn.Module):
    """NT-Xent with every photo of the batch as a candidate (van den Oord et al. 2018).

    ``logits = q · Pᵀ / τ`` with P = concat(positives, negatives) [2B, D] (or the positives
    alone when the batch carries no negatives); row i's target is column i, its own positive;
    cross-entropy over the columns. Standard simplification: when
    two queries share a category or instance, each one's positive counts as a negative of the
    other ("false negative"); this is accepted, not masked.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, batch: LossInputs) -> Tensor:
        q, p = _unit_pair(batch)
        photos = p if batch.negative is None else torch.cat([p, F.normalize(batch.negative, dim=1)])
        logits = q @ photos.T / self.temperature
        return F.cross_entropy(logits, torch.arange(len(q), device=q.device))


def build_loss(name: str, margin: float = 0.3, temperature: float = 0.1) -> nn.Module:
    """The loss called ``name`` (one of LOSS_NAMES), with its margin or temperature."""
    factories: dict[str, Callable[[], nn.Module]] = {
        "contrastive": lambda: ContrastiveLoss(margin),
        "cosine": lambda: CosineLoss(margin),
        "ce": CrossEntropyLoss,
        "triplet": lambda: TripletLoss(margin),
        "infonce": lambda: InfoNCELoss(temperature),
    }
    if name not in factories:
        raise ValueError(unknown_loss(name))
    return factories[name]()


class CombinedLoss(nn.Module):
    """Weighted sum of named losses; terms of weight 0 are left out (not built, not logged)."""

    def __init__(
        self, weights: dict[str, float], margin: float = 0.3, temperature: float = 0.1
    ) -> None:
        super().__init__()
        for name, weight in weights.items():
            if name not in LOSS_NAMES:
                raise ValueError(unknown_loss(name))
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"weight of '{name}' must be a finite number >= 0, got {weight}")
        self.weights = {name: float(w) for name, w in weights.items() if w > 0}
        if not self.weights:
            raise ValueError("CombinedLoss needs at least one positive weight")
        self.terms = nn.ModuleDict(
            {name: build_loss(name, margin, temperature) for name in self.weights}
        )

    @property
    def needs_negatives(self) -> bool:
        """Whether a pair term needs negatives; infonce uses them only when they are there anyway,
        its in-batch positives being negatives of every other query."""
        return bool({"contrastive", "cosine", "triplet"} & set(self.weights))

    @property
    def needs_logits(self) -> bool:
        """Whether batches must carry query/positive logits and labels."""
        return "ce" in self.weights

    def forward(self, batch: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted total, and each term unweighted and detached for logging."""
        values = {name: term(batch) for name, term in self.terms.items()}
        total = torch.stack([self.weights[name] * value for name, value in values.items()]).sum()
        return total, {name: value.detach() for name, value in values.items()}
