"""Batches in which every query has a category of its own.

InfoNCE scores each query against every positive in the batch; a second query of the same
category makes its positive a false negative, and on a data set with a few large categories a
random batch has many. Drawing each batch from distinct categories removes them, so every
in-batch negative really is one. Categories are drawn in proportion to the queries they still
have, so large ones are not under-sampled; the few queries left over when fewer categories
than a batch remain wait for the next epoch's draw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class DistinctCategoryBatches:
    """A batch sampler: lists of dataset indices, one per category per batch, seeded per epoch."""

    def __init__(self, categories: Sequence[str], batch_size: int, seed: int) -> None:
        self.batch_size, self.seed = batch_size, seed
        groups: dict[str, list[int]] = {}
        for index, category in enumerate(categories):
            groups.setdefault(category, []).append(index)
        self.groups = [np.array(indices) for _, indices in sorted(groups.items())]
        if len(self.groups) < batch_size:
            from sketchsearch.data.errors import UsageError

            raise UsageError(
                f"--distinct-categories: batches of {batch_size} need at least {batch_size} "
                f"training categories, this split has {len(self.groups)}; lower --batch-size"
            )
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's batches now: the trainer needs their exact count up front."""
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch, 0x0BA7C4])
        queues = [list(rng.permutation(group)) for group in self.groups]
        self.batches: list[list[int]] = []
        while True:
            sizes = np.array([len(queue) for queue in queues], dtype=np.float64)
            live = np.flatnonzero(sizes)
            if len(live) < self.batch_size:
                break
            chosen = rng.choice(live, self.batch_size, replace=False, p=sizes[live] / sizes.sum())
            self.batches.append([int(queues[c].pop()) for c in chosen])

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
