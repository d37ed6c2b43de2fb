"""The zero-shot recipe's parts: pseudo-sketch queries, distinct-category batches, the decoded-
image cache, and training from a local weights file, on tiny real images."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from sketchsearch.data.errors import ImageDecodeError, UsageError
from sketchsearch.data.evaluation import Match
from sketchsearch.data.imagefile import read_image
from sketchsearch.data.split_file import read_split
from sketchsearch.train.category_batches import DistinctCategoryBatches
from sketchsearch.train.decode_cache import DecodedImages, square
from sketchsearch.train.run import prepare, train
from sketchsearch.train.triplets import QueryOptions, TripletDataset

from .test_training import config_for


def dataset(tiny_data, **options) -> TripletDataset:
    root, split_path = tiny_data
    split = read_split(split_path)
    labels = {name: i for i, name in enumerate(split.categories)}
    return TripletDataset(
        root,
        split.part_items("train"),
        ("sketch", "photo"),
        labels,
        Match.CATEGORY,
        "none",
        48,
        seed=0,
        options=QueryOptions(**options),
    )


def test_pseudo_sketches_are_drawings_of_their_own_photo(tiny_data) -> None:
    plain = dataset(tiny_data)
    extra = dataset(tiny_data, pseudo_sketches=1.0)
    assert len(plain.extras) == 0
    assert len(extra) == len(plain) + len(extra.pairs.pool)
    assert sorted(extra.extras) == list(range(len(extra.pairs.pool)))  # each photo once
    index = len(extra.queries)
    sample = extra[index]
    source = extra.pairs.pool[int(extra.extras[0])]
    photo = read_image(tiny_data[0] / source.path)
    assert torch.equal(sample["positive"], torch.from_numpy(photo).permute(2, 0, 1))
    query = sample["query"].permute(1, 2, 0).numpy()
    assert (query == 255).mean() > 0.5  # a drawing on white, not the colour photo
    assert (query.max(axis=2).astype(int) - query.min(axis=2)).max() < 8  # no colour left
    assert int(sample["label"]) == extra.labels[source.category]
    assert extra.categories()[index] == source.category
    half = dataset(tiny_data, pseudo_sketches=0.5)
    assert len(half.extras) == round(0.5 * len(half.pairs.pool))
    half.set_epoch(1)
    again = half.extras.copy()
    half.set_epoch(2)
    assert not np.array_equal(again, half.extras)  # a new draw each epoch


def test_stroke_augment_changes_real_queries_only_through_the_seeded_draw(tiny_data) -> None:
    plain, stroked = dataset(tiny_data), dataset(tiny_data, stroke_augment=True)
    changed = sum(not torch.equal(plain[i]["query"], stroked[i]["query"]) for i in range(8))
    assert changed >= 4
    assert all(torch.equal(stroked[i]["query"], stroked[i]["query"]) for i in range(4))


def test_distinct_category_batches() -> None:
    categories = [
        c for c, n in (("a", 30), ("b", 10), ("c", 5), ("d", 3), ("e", 1)) for _ in range(n)
    ]
    sampler = DistinctCategoryBatches(categories, batch_size=3, seed=0)
    batches = list(sampler)
    assert 1 <= len(batches) == len(sampler) <= len(categories) // 3
    for batch in batches:
        assert len(batch) == 3 and len({categories[i] for i in batch}) == 3
    used = [i for batch in batches for i in batch]
    assert len(used) == len(set(used))  # each query at most once an epoch
    assert Counter(categories[i] for i in used)["a"] >= 8  # large categories are not starved
    assert batches == list(DistinctCategoryBatches(categories, 3, seed=0))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    with pytest.raises(UsageError, match="lower --batch-size"):
        DistinctCategoryBatches(categories, batch_size=6, seed=0)


def test_decode_cache_holds_the_decoded_squares(tiny_data, tmp_path: Path) -> None:
    root, split_path = tiny_data
    paths = [item.path for item in read_split(split_path).part_items("train")][:10]
    cache = DecodedImages.build(root, paths, 32, tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].stat().st_size == len(paths) * 32 * 32 * 3
    for path in paths[:3]:
        expected = square(read_image(root / path), 32)
        assert np.array_equal(cache.image(path), expected)
    image = cache.image(paths[0])
    image[:] = 0  # a private copy: augmentations cannot write into the cache
    assert cache.image(paths[0]).any()
    clone = pickle.loads(pickle.dumps(cache))  # what a loader worker receives
    assert clone._array is None and np.array_equal(clone.image(paths[1]), cache.image(paths[1]))
    assert DecodedImages.build(root, paths, 32, tmp_path).file == cache.file  # reused
    assert DecodedImages.build(root, paths, 24, tmp_path).file != cache.file  # another size
    with pytest.raises(UsageError, match="not in the decoded-image cache"):
        cache.image("photo/none.png")


def test_decode_cache_is_rebuilt_after_an_edit_and_never_left_half_written(
    tiny_data, tmp_path: Path
) -> None:
    source, split_path = tiny_data
    paths = [item.path for item in read_split(split_path).part_items("train")][:6]
    root = tmp_path / "data"
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes((source / path).read_bytes())
    cache_dir = tmp_path / "cache"
    first = DecodedImages.build(root, paths, 32, cache_dir)
    os.utime(root / paths[0], ns=(1, 1))  # the file changed since the cache was made
    assert DecodedImages.build(root, paths, 32, cache_dir).file != first.file
    (root / paths[3]).write_bytes(b"not an image")
    with pytest.raises(ImageDecodeError):
        DecodedImages.build(root, paths, 32, cache_dir)
    assert len(list(cache_dir.iterdir())) == 2  # the two complete caches, no partial file


def test_a_run_with_the_whole_recipe_trains_and_records_it(tiny_data, tmp_path: Path) -> None:
    config = config_for(
        tiny_data,
        tmp_path / "run",
        epochs=2,
        batch_size=4,
        pseudo_sketches=1.0,
        stroke_augment=True,
        distinct_categories=True,
        decode_cache=True,
        test=False,
    )
    report = train(config)
    assert report.best.is_file()
    assert len(list((tmp_path / "run" / "cache").glob("decoded-32px-*.u8"))) == 1
    checkpoint = torch.load(report.best, map_location="cpu", weights_only=True)
    recipe = checkpoint["hyper_parameters"]["run_info"]["training"]
    assert recipe["pseudo_sketches"] == 1.0 and recipe["distinct_categories"] is True
    _, _, data = prepare(config)
    data.setup()
    loader = data.train_dataloader()
    categories = data.train_set.categories()
    for batch in loader.batch_sampler:
        assert len({categories[i] for i in batch}) == len(batch) == 4


def test_options_are_validated(tiny_data, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="pseudo-sketches"):
        config_for(tiny_data, tmp_path, pseudo_sketches=-1.0)
    with pytest.raises(UsageError, match="pseudo_sketch_method"):
        config_for(tiny_data, tmp_path, pseudo_sketch_method="sobel")


def test_training_starts_from_a_local_checkpoint_file(tiny_data, tmp_path: Path) -> None:
    """`--weights run/best.ckpt`: the backbone starts from that file, not from random weights."""
    source = train(config_for(tiny_data, tmp_path / "first", epochs=1, test=False)).best
    args = [
        str(Path(sys.executable).parent / "sketchsearch"), "train",
        "--data", str(tiny_data[0]), "--split", str(tiny_data[1]),
        "--out", str(tmp_path / "second"), "--model", "test_efficientnet", "--img-size", "32",
        "--embed-dim", "16", "--epochs", "1", "--batch-size", "8", "--workers", "0",
        "--loss", "infonce=1", "--lr", "1e-12", "--weight-decay", "0", "--no-test",
        "--weights", str(source),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    before = torch.load(source, map_location="cpu", weights_only=True)["state_dict"]
    after = torch.load(tmp_path / "second" / "best.ckpt", map_location="cpu", weights_only=True)
    weights = [k for k in before if k.startswith("model.encoders.query.") and "weight" in k]
    assert weights
    for key in weights:
        assert torch.allclose(before[key], after["state_dict"][key], atol=1e-6), key
