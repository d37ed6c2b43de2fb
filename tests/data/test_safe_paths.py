"""The one rule for stored item paths: relative, normalised, POSIX; everything else refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from imagetree import uniform_spec

from sketchsearch.data.errors import ExitCode, SplitFileError
from sketchsearch.data.layouts import scan
from sketchsearch.data.safe_paths import UnsafePathError, check_relative_path
from sketchsearch.data.split_file import build_split_file, load_split, read_split, save_split
from sketchsearch.data.splits import SplitConfig, make_split


@pytest.mark.parametrize(
    "path", ["x.png", "cat/x.png", "photo/tx_0/cat/n01 b.jpg", "ünï/ködé.png", "a..b/c..png", ".x"]
)
def test_relative_normalised_paths_are_kept_as_they_are(path: str) -> None:
    assert check_relative_path(path) == path


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/etc/passwd", "is absolute"),
        ("//server/share/x.png", "is absolute"),
        ("../x.png", "climbs out with '..'"),
        ("cat/../../x.png", "climbs out with '..'"),
        ("cat/..", "climbs out with '..'"),
        ("..", "climbs out with '..'"),
        ("./x.png", "is not normalised"),
        ("cat/./x.png", "is not normalised"),
        ("cat//x.png", "is not normalised"),
        ("cat/", "is not normalised"),
        (".", "is not normalised"),
        ("", "is empty"),
        ("cat\\x.png", "holds a backslash"),
        ("..\\x.png", "holds a backslash"),
        ("C:x.png", "starts with a drive letter"),
        ("c:/x.png", "starts with a drive letter"),
        ("cat/x\0.png", "holds a NUL character"),
        (7, "is a int, not a string"),
        (None, "is a NoneType, not a string"),
    ],
)
def test_absolute_climbing_and_odd_paths_are_refused_naming_the_path(path, problem) -> None:
    with pytest.raises(UnsafePathError) as caught:
        check_relative_path(path, "data root")
    message = str(caught.value)
    assert problem in message and repr(path) in message and "\n" not in message
    assert "relative to the data root" in message  # what is expected, and so how to fix it
    assert caught.value.exit_code == ExitCode.BAD_INPUT


@pytest.fixture
def split_path(sketchy_tree, tmp_path: Path) -> tuple[Path, Path]:
    root = sketchy_tree(uniform_spec(categories=3, photos=4, sketches=1))
    collection = scan(root)
    config = SplitConfig(fractions=(0.5, 0.25, 0.25))
    split = build_split_file(collection, config, make_split(collection, config))
    return root, save_split(split, tmp_path / "split.json")


@pytest.mark.parametrize("bad", ["../x.png", "/tmp/x.png", "photo/./x.png"])
def test_a_split_edited_to_leave_the_data_root_is_refused_on_load(split_path, bad) -> None:
    root, path = split_path
    raw = json.loads(path.read_text("utf-8"))
    raw["items"]["test"]["photo"] = [*raw["items"]["test"]["photo"], bad]
    path.write_text(json.dumps(raw), "utf-8")
    for load in (lambda: read_split(path), lambda: load_split(path, root)):
        with pytest.raises(SplitFileError) as caught:  # not a fingerprint mismatch: the file list
            load()  # of the data root is unchanged, only the split's items were edited
        message = str(caught.value)
        assert repr(bad) in message and str(path) in message and "test/photo" in message
        assert "\n" not in message and "re-run `sketchsearch data split`" in message
