"""The exact ROC of pair scores, its AUC and EER, and a "no match" threshold at a target FPR.

Convention, used everywhere here and by the gallery threshold: a pair whose score is
``>= threshold`` is a match. Scores are similarities (higher = closer).

The curve is the one sklearn's ``roc_curve(..., drop_intermediate=False)`` returns: one point
per distinct score, tied scores collapsed into one point, preceded by the (0, 0) start whose
threshold is +inf. Every threshold is used, so the AUC is the exact rank statistic (ties count
half), not the coarse estimate a fixed grid of thresholds gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sketchsearch.data.errors import ExitCode, SketchsearchError

if TYPE_CHECKING:
    from sketchsearch.runtime.evaluation.gallery_check import GalleryCheck

DEFAULT_TARGET_FPR = 0.01


class RocError(SketchsearchError):
    """Scores that have no ROC: no positives, no negatives, NaNs, or mismatched lengths."""

    exit_code = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class RocCurve:
    """Points ordered by decreasing threshold; ``thresholds[0]`` is +inf (the (0, 0) start)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    positives: int
    negatives: int


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> RocCurve:
    """All-threshold ROC in O(n log n): sort once, count positives cumulatively."""
    truth, values = _check_inputs(labels, scores)
    order = np.argsort(-values, kind="stable")
    values, truth = values[order], truth[order]
    # The last position of each run of equal scores: ties become one point.
    ends = np.r_[np.flatnonzero(np.diff(values)), values.size - 1]
    tps = np.cumsum(truth, dtype=np.int64)[ends]
    fps = ends + 1 - tps
    positives, negatives = int(tps[-1]), int(fps[-1])
    return RocCurve(
        fpr=np.r_[0.0, fps / negatives],
        tpr=np.r_[0.0, tps / positives],
        thresholds=np.r_[np.inf, values[ends]],
        positives=positives,
        negatives=negatives,
    )


def auc(curve: RocCurve) -> float:
    """Trapezoids on the exact curve: equals P(score+ > score-) + ½·P(score+ = score-)."""
    return float(np.sum(np.diff(curve.fpr) * (curve.tpr[1:] + curve.tpr[:-1]) / 2.0))


def equal_error_rate(curve: RocCurve) -> tuple[float, float]:
    """(EER, its threshold): where FPR = 1 − TPR (false positives = misses).

    The curve is piecewise linear, so between the last point with FPR + TPR < 1 and the first
    with FPR + TPR >= 1 both the rate and the threshold are interpolated linearly. When that
    earlier point is the (0, 0) start (threshold +inf), the threshold is the later point's.
    """
    gap = curve.fpr + curve.tpr - 1.0  # non-decreasing from -1 to 1
    k = int(np.argmax(gap >= 0.0))
    if gap[k] == 0.0:
        return float(curve.fpr[k]), float(curve.thresholds[k])
    t = -gap[k - 1] / (gap[k] - gap[k - 1])
    rate = curve.fpr[k - 1] + t * (curve.fpr[k] - curve.fpr[k - 1])
    if k == 1:
        return float(rate), float(curve.thresholds[1])
    high, low = curve.thresholds[k - 1], curve.thresholds[k]
    return float(rate), float(high + t * (low - high))


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    fpr: float
    tpr: float


def threshold_at_fpr(curve: RocCurve, target_fpr: float) -> OperatingPoint:
    """The lowest threshold whose FPR is at most ``target_fpr``: the most recall it allows.

    When even the highest score gives too many false positives, the threshold is the float just
    above the highest score, so that nothing is a match (FPR 0, TPR 0).
    """
    if not 0.0 <= target_fpr <= 1.0:
        raise RocError(f"target FPR {target_fpr!r}: use a rate between 0 and 1, e.g. 0.01")
    k = int(np.searchsorted(curve.fpr, target_fpr, side="right")) - 1  # fpr is non-decreasing
    threshold = curve.thresholds[k] if k > 0 else np.nextafter(curve.thresholds[1], np.inf)
    return OperatingPoint(float(threshold), float(curve.fpr[k]), float(curve.tpr[k]))


@dataclass(frozen=True)
class RocReport:
    auc: float
    eer: float
    eer_threshold: float
    target_fpr: float
    at_target: OperatingPoint
    curve: RocCurve
    source: str
    sampling: dict[str, Any] = field(default_factory=dict)
    gallery: GalleryCheck | None = None  # engine mode: what the gallery holds

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready. The curve is thinned to its corners (collinear points dropped, as
        sklearn's ``drop_intermediate``), which loses nothing for plotting or the AUC; the
        start point's +inf threshold is written as null."""
        keep = _corners(self.curve)
        thresholds = [None if math.isinf(t) else float(t) for t in self.curve.thresholds[keep]]
        return {
            "auc": self.auc,
            "eer": self.eer,
            "eer_threshold": self.eer_threshold,
            "target_fpr": self.target_fpr,
            "threshold_at_target_fpr": self.at_target.threshold,
            "tpr_at_target_fpr": self.at_target.tpr,
            "fpr_at_target_fpr": self.at_target.fpr,
            "positives": self.curve.positives,
            "negatives": self.curve.negatives,
            "convention": "a pair with score >= threshold is a match",
            "source": self.source,
            "sampling": dict(self.sampling),
            "gallery": self.gallery.to_dict() if self.gallery else None,
            "curve": {
                "fpr": self.curve.fpr[keep].tolist(),
                "tpr": self.curve.tpr[keep].tolist(),
                "thresholds": thresholds,
            },
        }

    def describe(self) -> str:
        warnings = "".join(f"warning: {w}\n" for w in self.gallery.warnings) if self.gallery else ""
        return warnings + (
            f"{self.curve.positives} positive and {self.curve.negatives} negative pairs "
            f"({self.source})\n"
            f"AUC {self.auc:.4f}   EER {self.eer:.4f} at score {self.eer_threshold:.4f}\n"
            f"threshold at FPR <= {self.target_fpr:g}: score >= {self.at_target.threshold:.4f} "
            f"(FPR {self.at_target.fpr:.4f}, TPR {self.at_target.tpr:.4f})"
        )


def roc_report(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    target_fpr: float = DEFAULT_TARGET_FPR,
    source: str = "",
    sampling: dict[str, Any] | None = None,
) -> RocReport:
    curve = roc_curve(labels, scores)
    eer, eer_threshold = equal_error_rate(curve)
    return RocReport(
        auc=auc(curve),
        eer=eer,
        eer_threshold=eer_threshold,
        target_fpr=float(target_fpr),
        at_target=threshold_at_fpr(curve, target_fpr),
        curve=curve,
        source=source,
        sampling=dict(sampling or {}),
    )


def _corners(curve: RocCurve) -> np.ndarray:
    bends = np.logical_or(np.diff(curve.fpr, 2) != 0.0, np.diff(curve.tpr, 2) != 0.0)
    return np.flatnonzero(np.r_[True, bends, True])


def _check_inputs(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth, values = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if truth.ndim != 1 or values.ndim != 1 or truth.shape != values.shape:
        raise RocError(
            f"labels and scores must be two 1-D arrays of one length, not {truth.shape} and "
            f"{values.shape}"
        )
    if not np.isin(truth, (0, 1)).all():
        raise RocError("labels must be 1 (a true match) or 0 (not a match)")
    if not np.isfinite(values).all():
        raise RocError(f"{int((~np.isfinite(values)).sum())} scores are NaN or infinite")
    truth = truth.astype(np.int64)
    positives = int(truth.sum())
    if positives == 0 or positives == truth.size:
        raise RocError(
            f"{positives} positive and {truth.size - positives} negative pairs: a ROC needs both"
        )
    return truth, values
