"""One line per epoch on stderr when there is no progress bar (output not a terminal)."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Any, TextIO

import lightning as L

from sketchsearch.train.retrieval_module import MONITOR

LOSS_KEYS = ("train/loss_epoch", "train/loss")


class EpochLog(L.Callback):
    """``epoch 3/15  loss 0.4123  val mAP@all 0.3412  elapsed 0:01:23  ETA 0:05:10``.

    Printed at the end of each training epoch, after its validation, by rank zero only. The
    ETA assumes the remaining epochs take as long as this run's epochs so far did.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream  # None: sys.stderr when the line is printed
        self._start = 0.0
        self._first_epoch = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()
        self._first_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch + 1
        done = epoch - self._first_epoch
        elapsed = time.monotonic() - self._start
        line = epoch_line(
            epoch, trainer.max_epochs, trainer.callback_metrics, elapsed, elapsed / done
        )
        print(line, file=self.stream or sys.stderr, flush=True)


def epoch_line(
    epoch: int, epochs: int | None, metrics: dict[str, Any], elapsed: float, per_epoch: float
) -> str:
    """The line for ``epoch`` (1-based) of ``epochs``; a metric not logged reads "n/a"."""
    loss = next((metrics[key] for key in LOSS_KEYS if key in metrics), None)
    total = epochs if epochs is not None and epochs > 0 else None
    eta = _duration(per_epoch * (total - epoch)) if total is not None else "n/a"
    return (
        f"epoch {epoch}/{total if total is not None else '?'}  loss {_number(loss)}  "
        f"val mAP@all {_number(metrics.get(MONITOR))}  elapsed {_duration(elapsed)}  ETA {eta}"
    )


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.4f}"


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(max(seconds, 0.0))))
