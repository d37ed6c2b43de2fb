"""The ROC figure: FPR on x, TPR on y, the AUC in the legend and the chosen threshold marked.

Two panels: the usual linear axes, and a logarithmic FPR axis, because a "no match" threshold
lives at FPR 1e-3..1e-2, which the linear panel squeezes against the y axis. matplotlib is
imported here only (the ``[train]`` extra), through its object API with the Agg canvas, so
plotting never touches a global backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sketchsearch.data.errors import UsageError
from sketchsearch.runtime.evaluation.roc import RocReport


def save_roc_plot(report: RocReport, path: str | os.PathLike[str]) -> Path:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError(
            "--out needs matplotlib: pip install matplotlib (or sketchsearch[train])"
        ) from None
    figure = Figure(figsize=(10, 4.6), layout="constrained")
    FigureCanvasAgg(figure)
    linear, logarithmic = figure.subplots(1, 2)
    curve, point = report.curve, report.at_target
    floor = 0.5 / max(curve.negatives, 1)  # where FPR 0 is drawn on the log axis
    chance = np.geomspace(floor, 1.0, 200)  # straight on the linear axes, curved on the log
    for axes, fpr in ((linear, curve.fpr), (logarithmic, np.maximum(curve.fpr, floor))):
        axes.plot(fpr, curve.tpr, color="C0", lw=1.8, label=f"ROC (AUC = {report.auc:.4f})")
        axes.plot(chance, chance, color="0.6", ls="--", lw=1, label="chance")
        axes.plot(
            [max(point.fpr, floor)],
            [point.tpr],
            "o",
            color="C3",
            label=(
                f"score >= {point.threshold:.3f}: FPR {point.fpr:.4f}, TPR {point.tpr:.3f} "
                f"(target FPR {report.target_fpr:g})"
            ),
        )
        axes.plot(
            [report.eer], [1 - report.eer], "s", color="C2", ms=5, label=f"EER {report.eer:.4f}"
        )
        axes.set_xlabel("False positive rate (FPR)")
        axes.set_ylabel("True positive rate (TPR)")
        axes.set_ylim(0, 1.01)
        axes.grid(alpha=0.3)
    linear.set_xlim(0, 1)
    linear.set_title("ROC")
    logarithmic.set_xscale("log")
    logarithmic.set_xlim(floor, 1)
    logarithmic.set_title("ROC, logarithmic FPR")
    linear.legend(loc="lower right", fontsize=8)
    figure.suptitle(
        f"{curve.positives} positive, {curve.negatives} negative pairs", fontsize=9, color="0.3"
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=120)
    return target
