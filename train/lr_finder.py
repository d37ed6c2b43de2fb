"""The learning-rate finder: Lightning's Tuner.lr_find on the real data and model."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from sketchsearch.data.errors import SketchsearchError
from sketchsearch.train.config import TrainConfig
from sketchsearch.train.run import make_trainer, prepare, quiet_lightning


@dataclass(frozen=True)
class LearningRateReport:
    suggestion: float
    plot: Path


def find_learning_rate(
    config: TrainConfig,
    *,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    steps: int = 100,
    plot: Path | None = None,
) -> LearningRateReport:
    """Sweep the learning rate exponentially over ``steps`` batches and suggest one.

    The suggestion is Lightning's: the point of steepest descent of the smoothed loss.
    """
    with quiet_lightning():
        return _find(config, min_lr, max_lr, steps, plot)


def _find(
    config: TrainConfig, min_lr: float, max_lr: float, steps: int, plot: Path | None
) -> LearningRateReport:
    from lightning.pytorch.tuner import Tuner

    _, module, data = prepare(replace(config, scheduler="none"))
    out = config.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    # One process, and enough epochs for every step even when an epoch has few batches.
    single = replace(
        config, devices="1", strategy="auto", num_nodes=1, epochs=max(config.epochs, steps)
    )
    trainer = make_trainer(single, out, log=False)
    finder = Tuner(trainer).lr_find(
        module,
        datamodule=data,
        min_lr=min_lr,
        max_lr=max_lr,
        num_training=steps,
        attr_name="",
        update_attr=False,
    )
    if finder is None or finder.suggestion() is None:
        tried = len(finder.results["lr"]) if finder is not None else 0
        raise SketchsearchError(
            f"the learning-rate finder found no suggestion ({tried} of {steps} steps ran): "
            "try more --steps or a wider --min-lr/--max-lr range"
        )
    figure = finder.plot(suggest=True)
    target = plot or out / "lr_finder.png"
    figure.savefig(target, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return LearningRateReport(suggestion=float(finder.suggestion()), plot=target)
