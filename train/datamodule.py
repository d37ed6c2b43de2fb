"""Loaders for training triplets and for full-gallery evaluation of each split part."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from sketchsearch.data.evaluation import Match, evaluation_set
from sketchsearch.data.split_file import SplitFile
from sketchsearch.runtime.preprocess import PreprocessConfig
from sketchsearch.train.category_batches import DistinctCategoryBatches
from sketchsearch.train.decode_cache import DecodedImages
from sketchsearch.train.triplets import EvalImages, QueryOptions, TripletDataset


class RetrievalDataModule(L.LightningDataModule):
    """Train on triplets; validate and test on every query against the whole gallery."""

    def __init__(
        self,
        root: Path,
        split: SplitFile,
        preprocess: PreprocessConfig,
        *,
        batch_size: int,
        workers: int,
        augment: str,
        positive: str,
        seed: int,
        negatives: bool = True,
        options: QueryOptions | None = None,
        distinct_categories: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.root, self.split, self.preprocess = root, split, preprocess
        self.batch_size, self.workers = batch_size, workers
        self.augment, self.match, self.seed = augment, Match(positive), seed
        self.negatives = negatives  # decoding negatives no loss uses would waste a third of it
        self.options, self.distinct_categories = options, distinct_categories
        self.cache_dir = cache_dir  # None: no decoded-image cache
        self.labels = {name: i for i, name in enumerate(split.categories)}
        self.train_set: TripletDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            cache = None
            if self.cache_dir is not None:
                paths = [item.path for item in self.split.part_items("train")]
                cache = DecodedImages.build(
                    self.root, paths, self.preprocess.input_size, self.cache_dir
                )
            self.train_set = TripletDataset(
                self.root,
                self.split.part_items("train"),
                tuple(self.split.domains),  # type: ignore[arg-type]
                self.labels,
                self.match,
                self.augment,
                self.preprocess.input_size,
                self.seed,
                negatives=self.negatives,
                options=self.options,
                cache=cache,
            )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None  # setup() ran: Lightning's contract, not user input
        if self.trainer is not None:
            self.train_set.set_epoch(self.trainer.current_epoch)
        if self.distinct_categories:
            if self.trainer is not None and self.trainer.world_size > 1:
                from sketchsearch.data.errors import UsageError

                raise UsageError("--distinct-categories batches are single-process; drop it")
            batches = DistinctCategoryBatches(
                self.train_set.categories(), self.batch_size, self.seed
            )
            batches.set_epoch(self.train_set.epoch)
            return DataLoader(
                self.train_set,
                batch_sampler=batches,
                num_workers=self.workers,
                worker_init_fn=_one_thread,
            )
        # A last batch of one image breaks BatchNorm; a set smaller than a batch keeps every item.
        drop_last = len(self.train_set) > self.batch_size
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=drop_last,
            num_workers=self.workers,
            worker_init_fn=_one_thread,
        )

    def val_dataloader(self) -> list[DataLoader]:
        return self.part_loaders("val")

    def test_dataloader(self) -> list[DataLoader]:
        return self.part_loaders("test")

    def part_loaders(self, part: str) -> list[DataLoader]:
        """[queries, gallery] of one part, in the split's direction (sketch → photo)."""
        sets = evaluation_set(self.split, part)
        return [
            DataLoader(
                EvalImages(self.root, items, self.labels, self.preprocess),
                batch_size=self.batch_size,
                shuffle=False,
                num_workers=self.workers,
                worker_init_fn=_one_thread,
            )
            for items in (sets.queries, sets.gallery)
        ]


def _one_thread(worker: int) -> None:
    """Loader workers decode and augment; torch's own threads there would fight the model's."""
    import torch

    torch.set_num_threads(1)
