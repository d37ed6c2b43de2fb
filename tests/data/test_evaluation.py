from __future__ import annotations

import numpy as np
import pytest
from imagetree import uniform_spec

from sketchsearch.data.errors import SplitError
from sketchsearch.data.evaluation import Match, PairIndex, evaluation_set, relevance_matrix
from sketchsearch.data.layouts import Item, scan
from sketchsearch.data.split_file import build_split_file
from sketchsearch.data.splits import SplitConfig, make_split


@pytest.fixture
def split(sketchy_tree):
    collection = scan(sketchy_tree(uniform_spec(categories=3, photos=10, sketches=2)))
    config = SplitConfig(seed=0)
    return build_split_file(collection, config, make_split(collection, config))


def test_sketch_to_photo_by_default_and_the_reverse_on_request(split) -> None:
    forward = evaluation_set(split, "test")
    assert forward.query_domain == "sketch" and forward.gallery_domain == "photo"
    assert len(forward.queries) == 6 and len(forward.gallery) == 3
    assert [q.path for q in forward.queries] == sorted(q.path for q in forward.queries)
    reverse = evaluation_set(split, "test", direction=("photo", "sketch"))
    assert reverse.queries == forward.gallery and reverse.gallery == forward.queries
    assert evaluation_set(split, "test") == forward  # no sampling: same sets every time
    with pytest.raises(SplitError, match="use the split's domains"):
        evaluation_set(split, "test", direction=("sketch", "sketch"))


def test_relevance_matches_a_brute_force_reference(split) -> None:
    sets = evaluation_set(split, "val")
    for match, key in ((Match.CATEGORY, "category"), (Match.INSTANCE, "instance")):
        expected = np.array(
            [[getattr(q, key) == getattr(g, key) for g in sets.gallery] for q in sets.queries]
        )
        assert np.array_equal(sets.relevance(match), expected)
    # every sketch's own photo is in the same part, so instance-level always has a positive
    assert sets.relevance(Match.INSTANCE).sum(axis=1).tolist() == [1] * len(sets.queries)


def test_pair_index_positive_and_negative_policies(split) -> None:
    photos = [i for i in split.part_items("train") if i.domain == "photo"]
    sketch = next(i for i in split.part_items("train") if i.domain == "sketch")
    by_category = PairIndex(photos, Match.CATEGORY)
    by_instance = PairIndex(photos, "instance")
    positives = [photos[i] for i in by_category.positives(sketch)]
    assert positives and all(p.category == sketch.category for p in positives)
    assert [photos[i].instance for i in by_instance.positives(sketch)] == [sketch.instance]
    negatives = [photos[i] for i in by_category.negatives(sketch)]
    assert len(negatives) + len(positives) == len(photos)
    assert all(n.category != sketch.category for n in negatives)


def test_instance_matching_needs_pairs() -> None:
    unpaired = [Item("a/x/1.png", "a", "x", None)]
    with pytest.raises(SplitError, match="instance matching needs a paired layout"):
        relevance_matrix(unpaired, unpaired, Match.INSTANCE)
