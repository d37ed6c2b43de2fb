"""How many images per batch and decode threads embedding uses when the caller names none."""

from __future__ import annotations

import os

import pytest

from sketchsearch.runtime.machine import available_cpus
from sketchsearch.runtime.pipeline import PipelineSizes, pipeline_sizes


def test_given_sizes_are_kept() -> None:
    assert pipeline_sizes(48, 1000, batch_size=7, workers=3) == PipelineSizes(7, 3)


@pytest.mark.parametrize(
    ("input_size", "batch"),
    [(32, 32), (48, 32), (224, 32), (225, 16), (320, 8), (448, 8), (1024, 8)],
)
def test_the_batch_holds_at_most_the_pixels_of_32_at_224_px(input_size: int, batch: int) -> None:
    assert pipeline_sizes(input_size, 10_000, cpus=2).batch_size == batch


@pytest.mark.parametrize(("files", "batch"), [(0, 1), (1, 1), (10, 3), (100, 25), (128, 32)])
def test_small_runs_get_batches_enough_to_overlap(files: int, batch: int) -> None:
    """At least prefetch + 2 batches (4 by default): inference overlaps decoding from the
    second batch on."""
    assert pipeline_sizes(48, files, cpus=2).batch_size == batch
    assert pipeline_sizes(48, files, prefetch=0, cpus=2).batch_size == min(
        32, max(1, -(-files // 2))
    )


@pytest.mark.parametrize(("cpus", "workers"), [(1, 1), (2, 2), (3, 3), (6, 4), (64, 4)])
def test_one_decode_thread_per_core_up_to_eight(cpus: int, workers: int) -> None:
    assert pipeline_sizes(224, 1000, cpus=cpus).workers == workers


def test_the_cores_are_those_this_process_may_use() -> None:
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert available_cpus() == allowed
    assert pipeline_sizes(224, 1000).workers == min(4, allowed or 1)


@pytest.mark.parametrize(("batch_size", "workers"), [(0, None), (None, 0), (-1, 2)])
def test_sizes_below_one_are_refused(batch_size: int | None, workers: int | None) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        pipeline_sizes(48, 100, batch_size, workers)
