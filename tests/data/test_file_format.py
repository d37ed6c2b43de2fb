"""The one format/version/keys check, on real files written into tmp_path."""

from __future__ import annotations

import json
from dataclasses import field, make_dataclass
from pathlib import Path

import pytest

from sketchsearch.data.errors import ExitCode
from sketchsearch.data.errors import SplitFileError as ToyError  # any owner's error class
from sketchsearch.data.file_format import FileFormat

Toy = make_dataclass(
    "Toy",
    [("format", str), ("format_version", int), ("name", str), ("tags", list, field(default=()))],
    frozen=True,
)
TOY = FileFormat("sketchsearch-toy", 2, "toy file", ToyError)
GOOD = {"format": "sketchsearch-toy", "format_version": 2, "name": "a"}


def read(path: Path, kind: FileFormat = TOY) -> dict[str, object]:
    return kind.load(path.read_text(encoding="utf-8"), Toy, str(path))


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "toy.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_a_good_file_passes_with_its_defaults_optional(tmp_path: Path) -> None:
    assert read(write(tmp_path, GOOD)) == GOOD
    assert read(write(tmp_path, {**GOOD, "tags": ["x"]}))["tags"] == ["x"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", r"toy\.json: not valid JSON \(Expecting .*, line 1\)$"),
        ([1, 2], r"toy\.json: not a sketchsearch toy file$"),
        ({**GOOD, "format": "sketchsearch-other"}, "not a sketchsearch toy file"),
        ({**GOOD, "format_version": 3}, r"toy file format version 3; .* reads version 2$"),
        ({**GOOD, "surprise": 1}, r"unexpected keys \['surprise'\], missing keys \[\]"),
        ({"format": "sketchsearch-toy", "format_version": 2}, r"missing keys \['name'\]"),
    ],
)
def test_each_check_refuses_with_the_owners_error(tmp_path, content, message) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ToyError, match=message) as caught:
        read(path)
    assert str(caught.value).startswith(str(path))
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_a_missing_version_is_named(tmp_path: Path) -> None:
    raw = {k: v for k, v in GOOD.items() if k != "format_version"}
    with pytest.raises(ToyError, match="format version None"):
        read(write(tmp_path, raw))


def test_the_keys_message_is_the_owners_wording(tmp_path: Path) -> None:
    worded = FileFormat(TOY.tag, TOY.version, "toy", ToyError, keys_message="has {unknown}")
    with pytest.raises(ToyError, match=r"toy\.json: has \['extra'\]$"):
        read(write(tmp_path, {**GOOD, "extra": 0}), worded)


def test_the_json_and_version_messages_are_the_owners_wording(tmp_path: Path) -> None:
    worded = FileFormat(
        TOY.tag,
        TOY.version,
        "toy",
        ToyError,
        json_message="bad toy ({msg}; {lineno})",
        version_message="toy v{found!r} is not v{version} ({noun})",
    )
    with pytest.raises(ToyError, match=r"toy\.json: bad toy \(Expecting .*; 1\)$"):
        read(write(tmp_path, "{"), worded)
    with pytest.raises(ToyError, match=r"toy\.json: toy v'x' is not v2 \(toy\)$"):
        read(write(tmp_path, {**GOOD, "format_version": "x"}), worded)


def test_nested_objects_are_checked_under_their_own_name() -> None:
    with pytest.raises(ToyError, match=r"^m\.json: inner: unexpected keys \['x'\]"):
        TOY.check_keys({**GOOD, "x": 1}, Toy, "m.json: inner")
    TOY.check_keys(GOOD, Toy, "m.json: inner")  # no error


def test_an_older_layout_is_read_when_declared_and_named_in_the_refusal(tmp_path: Path) -> None:
    """A format that gained a key bumps its version and still reads the old one; an older
    sketchsearch then names the version instead of refusing an unexpected key."""
    both = FileFormat("sketchsearch-toy", 2, "toy file", ToyError, also_reads=(1,))
    assert read(write(tmp_path, {**GOOD, "format_version": 1}), both)["name"] == "a"
    with pytest.raises(ToyError, match="toy file format version 1;"):
        read(write(tmp_path, {**GOOD, "format_version": 1}))  # TOY reads 2 only
    with pytest.raises(ToyError, match=r"format version 3; .* reads version 2 \(and 1\)"):
        read(write(tmp_path, {**GOOD, "format_version": 3}), both)
    with pytest.raises(ToyError, match="format version True"):
        read(write(tmp_path, {**GOOD, "format_version": True}), both)  # True == 1 in Python
