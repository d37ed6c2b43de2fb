"""Training triplets and evaluation images, read from a split made by the data layer.

Training: each query (a sketch) comes with a positive photo (same category, or its own photo)
and a negative photo (another category), drawn with a generator keyed on (seed, epoch, index)
so a run is repeatable. Optionally (:class:`QueryOptions`) each epoch adds pseudo-sketches:
edge drawings of gallery photos, each paired with its own photo, so the model learns
colour → line-art invariance from every photo, not only from those somebody drew; and query
drawings get stroke augmentations (thickness, dropped strokes, small elastic warps).
Evaluation: every image of a part, preprocessed by the runtime's own function, so validation
sees exactly what serving will see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
from sketchsearch.train.decode_cache import DecodedImages
from sketchsearch.train.sketch_augment import StrokeAugment, pseudo_sketch

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


@dataclass(frozen=True)
class QueryOptions:
    """What a training query can be besides a drawing as drawn."""

    pseudo_sketches: float = 0.0  # extra pseudo-sketch queries per epoch, × the gallery images
    pseudo_sketch_method: str = "xdog"
    stroke_augment: bool = False


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
        options: QueryOptions | None = None,
        cache: DecodedImages | None = None,
    ) -> None:
        self.root = root
        self.options = options or QueryOptions()
        self.cache = cache
        self.strokes = StrokeAugment() if self.options.stroke_augment else None
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
        self.extras = self._draw_pseudo_sketch_sources()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.extras = self._draw_pseudo_sketch_sources()

    def _draw_pseudo_sketch_sources(self) -> np.ndarray:
        """Pool indices of this epoch's pseudo-sketch sources (each photo once per round)."""
        count = round(self.options.pseudo_sketches * len(self.pairs.pool))
        rng = np.random.default_rng([self.seed, self.epoch, 0x5E7C4])
        rounds = -(-count // max(len(self.pairs.pool), 1))
        order = np.concatenate(
            [rng.permutation(len(self.pairs.pool)) for _ in range(rounds)] or [np.zeros(0, int)]
        )
        return order[:count]

    def __len__(self) -> int:
        return len(self.queries) + len(self.extras)

    def categories(self) -> list[str]:
        """The category of every index this epoch, for category-aware batch samplers."""
        return [q.category for q in self.queries] + [
            self.pairs.pool[int(i)].category for i in self.extras
        ]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if index < len(self.queries):
            query = self.queries[index]
            positive = self.pairs.pool[int(rng.choice(self.pairs.positives(query)))]
            drawing = self._read(query)
        else:  # a pseudo-sketch: the edges of a photo, paired with that photo
            query = positive = self.pairs.pool[int(self.extras[index - len(self.queries)])]
            drawing = pseudo_sketch(self._read(positive), rng, self.options.pseudo_sketch_method)
        if self.strokes is not None:
            drawing = self.strokes(drawing, rng)
        negative = self.pairs.pool[int(rng.choice(self.pairs.negatives(query)))]
        with torch.random.fork_rng(devices=[]):  # the transforms' randomness, keyed per item
            torch.manual_seed(int(rng.integers(2**31)))
            sample = {
                "query": self.query_transform(_tensor(drawing)),
                "positive": self.gallery_transform(self._load(positive)),
                "label": torch.tensor(self.labels[query.category]),
            }
            if self.negatives:
                sample["negative"] = self.gallery_transform(self._load(negative))
        return sample

    def _read(self, item: Item) -> np.ndarray:
        if self.cache is not None:
            return self.cache.image(item.path)
        return read_image(self.root / item.path)

    def _load(self, item: Item) -> Tensor:
        return _tensor(self._read(item))


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
