"""Training triplets and evaluation images, read from a split made by the data layer.

Training: each query (a sketch) comes with a positive photo (same category, or its own photo)
and a negative photo (another category), drawn with a generator keyed on (seed, epoch, index)
so a run is repeatable. Evaluation: every image of a part, preprocessed by the runtime's own
function, so validation sees exactly what serving will see.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from sketchsearch.data.errors import SplitError
from sketchsearch.data.evaluation import Match, PairIndex
from sketchsearch.data.imagefile import read_image
from sketchsearch.data.layouts import Item
from sketchsearch.runtime.preprocess import PreprocessConfig, preprocess_file

WHITE = 255


def augmentations(kind: str, size: int) -> tuple[v2.Transform, v2.Transform]:
    """(query transform, gallery transform): geometry for both, colour for photos only.

    Roles follow the split's direction: queries are its first domain (sketches in Sketchy),
    the gallery its second (photos), so colour jitter lands on the gallery images.
    """
    if kind == "none":
        plain = v2.Resize((size, size), antialias=True)
        return plain, plain

    def geometry(fill: int) -> list[v2.Transform]:
        return [
            v2.RandomResizedCrop(size, scale=(0.6, 1.0), ratio=(0.8, 1.25), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomAffine(degrees=10, translate=(0.05, 0.05), fill=fill),
        ]

    colour: list[v2.Transform] = [v2.ColorJitter(0.3, 0.3, 0.3, 0.05)]
    if kind == "randaugment":
        colour.append(v2.RandAugment(num_ops=2, magnitude=9))
    return v2.Compose(geometry(WHITE)), v2.Compose(geometry(0) + colour)


def _tensor(image: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


class TripletDataset(Dataset[dict[str, Tensor]]):
    def __init__(
        self,
        root: Path,
        items: Sequence[Item],
        domains: tuple[str, str],
        labels: dict[str, int],
        match: Match,
        augment: str,
        size: int,
        seed: int,
        negatives: bool = True,
    ) -> None:
        self.root = root
        query_domain, gallery_domain = domains
        pool = [i for i in items if i.domain == gallery_domain]
        self.pairs = PairIndex(pool, match)
        candidates = [i for i in items if i.domain == query_domain]
        self.queries = [q for q in candidates if len(self.pairs.positives(q))]
        self.without_positive = len(candidates) - len(self.queries)
        if not self.queries:
            raise SplitError(f"no {query_domain} in this part has a {gallery_domain} to pair with")
        if len({i.category for i in pool}) < 2:
            raise SplitError("training needs at least two categories for negatives")
        self.labels = labels
        self.query_transform, self.gallery_transform = augmentations(augment, size)
        self.seed = seed
        self.epoch = 0
        self.negatives = negatives

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        query = self.queries[index]
        positive = self.pairs.pool[int(rng.choice(self.pairs.positives(query)))]
        negative = self.pairs.pool[int(rng.choice(self.pairs.negatives(query)))]
        with torch.random.fork_rng(devices=[]):  # the transforms' randomness, keyed per item
            torch.manual_seed(int(rng.integers(2**31)))
            sample = {
                "query": self.query_transform(self._load(query)),
                "positive": self.gallery_transform(self._load(positive)),
                "label": torch.tensor(self.labels[query.category]),
            }
            if self.negatives:
                sample["negative"] = self.gallery_transform(self._load(negative))
        return sample

    def _load(self, item: Item) -> Tensor:
        return _tensor(read_image(self.root / item.path))


class EvalImages(Dataset[dict[str, Tensor]]):
    """Images preprocessed exactly as the runtime does, with their labels and positions."""

    def __init__(
        self, root: Path, items: Sequence[Item], labels: dict[str, int], config: PreprocessConfig
    ) -> None:
        self.root, self.items, self.labels, self.config = root, list(items), labels, config

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = self.items[index]
        return {
            "image": _tensor(preprocess_file(self.root / item.path, self.config)),
            "label": torch.tensor(self.labels[item.category]),
            "index": torch.tensor(index),
        }
