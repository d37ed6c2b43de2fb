"""TrainConfig.section: the optimiser and query settings taken from the one flat record."""

from __future__ import annotations

from dataclasses import fields

import pytest

from sketchsearch.train.config import TrainConfig
from sketchsearch.train.optimisation import OptimConfig
from sketchsearch.train.triplets import QueryOptions


def test_sections_carry_every_field_by_name() -> None:
    config = TrainConfig(
        data="d",
        split="s.json",
        optimizer="sgd",
        lr=0.05,
        weight_decay=0.0,
        scheduler="multistep",
        warmup_epochs=0,
        epochs=7,
        milestones=(3, 5),
        gamma=0.5,
        pseudo_sketches=0.25,
        pseudo_sketch_method="canny",
        stroke_augment=True,
    )
    assert config.section(OptimConfig) == OptimConfig(
        "sgd", 0.05, 0.0, "multistep", 0, 7, (3, 5), 0.5
    )
    assert config.section(QueryOptions) == QueryOptions(0.25, "canny", True)


@pytest.mark.parametrize("kind", [OptimConfig, QueryOptions])
def test_every_section_field_is_a_train_setting(kind: type) -> None:
    """A field added to a section must be a TrainConfig setting (flag and YAML key) too."""
    settings = {f.name for f in fields(TrainConfig)}
    assert {f.name for f in fields(kind)} <= settings
