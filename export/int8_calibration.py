"""Which calibration method an int8 export uses: the one that keeps the checkpoint's rankings best.

No method wins everywhere. On the demo model (resnet10t, 48 px) symmetric min-max ranges keep
top-1 retrieval agreement at 0.953 while percentile ranges drop it to 0.859; on the tests' tiny
model percentile ranges are the ones that clear the 0.98 cosine bar (README, "int8
calibration"). So ``--calib-method auto`` (the default) quantizes with each candidate and keeps
the one whose file agrees best with the checkpoint on the verification images: passing
verification first, then top-1 agreement, then mean cosine. The same images then decide
whether the export passes, so with 64 of them a choice can rest on one query's ranking; the
trials are recorded so that a reader sees how close it was. Entropy is not a candidate: through
``quantize_static`` onnxruntime builds its histograms with 128 bins for 128 quantized bins,
which leaves a single threshold, so it writes the same file as min-max.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sketchsearch.export.verify import VerificationReport

AUTO = "auto"
AUTO_CANDIDATES = ("minmax", "percentile")


@dataclass(frozen=True)
class CalibrationTrial:
    method: str
    passed: bool
    min_cosine: float
    mean_cosine: float
    top1_agreement: float

    @classmethod
    def of(cls, method: str, report: VerificationReport) -> CalibrationTrial:
        return cls(
            method, report.passed, report.min_cosine, report.mean_cosine, report.top1_agreement
        )

    def rank(self) -> tuple[bool, float, float]:
        return (self.passed, self.top1_agreement, self.mean_cosine)


@dataclass(frozen=True)
class CalibrationChoice:
    method: str
    requested: str
    trials: tuple[CalibrationTrial, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if len(self.trials) < 2:
            return f"int8 calibration: {self.method} (--calib-method {self.requested})"
        tried = ", ".join(
            f"{t.method} (top-1 {t.top1_agreement:.3f}, mean cosine {t.mean_cosine:.5f})"
            for t in self.trials
        )
        return f"int8 calibration: {self.method}, chosen by agreement with the checkpoint: {tried}"


def candidates(requested: str) -> tuple[str, ...]:
    return AUTO_CANDIDATES if requested == AUTO else (requested,)


def choose(
    requested: str,
    quantize: Callable[[str], Path],
    score: Callable[[Path], VerificationReport],
) -> tuple[Path, CalibrationChoice, VerificationReport]:
    """Quantize with each candidate method; the best file, what was measured, and its report.

    A single forced method is scored too, so that the record holds measured values only, and
    the winner's report is the export's verification: the file is not scored twice.
    """
    methods: Sequence[str] = candidates(requested)
    files, reports, trials = {}, {}, []
    for method in methods:
        files[method] = quantize(method)
        reports[method] = score(files[method])
        trials.append(CalibrationTrial.of(method, reports[method]))
    best = max(trials, key=CalibrationTrial.rank)  # max keeps the first of equals
    choice = CalibrationChoice(best.method, requested, tuple(trials))
    return files[best.method], choice, reports[best.method]
