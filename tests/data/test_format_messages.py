"""Each file keeps the refusal wording it had before the shared check (HEAD~1 of "Structure").

The strings below are copied from the readers as they were, one per file kind: a bad-JSON text
and a file of another format version must be refused with exactly these messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from sketchsearch.data.errors import SplitFileError
from sketchsearch.data.file_format import VERSION_MESSAGE
from sketchsearch.data.split_file import SPLIT_FORMAT, read_split
from sketchsearch.gallery.errors import GalleryCorruptError
from sketchsearch.gallery.manifest import GALLERY_FORMAT, GalleryManifest
from sketchsearch.runtime.model_card import CARD_FORMAT, ModelCard, ModelCardError

NOT_JSON = '{\n  "format": "x",\n}'  # a trailing comma: the error is on line 3
JSON_ERROR = "Expecting property name enclosed in double quotes"


def read_split_file(path: Path) -> object:
    return read_split(path)


def read_manifest(path: Path) -> object:
    return GalleryManifest.from_json(path.read_text(encoding="utf-8"), str(path))


def read_card(path: Path) -> object:
    return ModelCard.from_json(path.read_text(encoding="utf-8"), str(path))


KINDS = {
    "split file": (read_split_file, SPLIT_FORMAT, SplitFileError),
    "gallery manifest": (read_manifest, GALLERY_FORMAT, GalleryCorruptError),
    "model card": (read_card, CARD_FORMAT, ModelCardError),
}
OLD_JSON_MESSAGES = {
    "split file": "{source}: not valid JSON (" + JSON_ERROR + ", line 3)",
    "gallery manifest": "{source}: not valid JSON (" + JSON_ERROR + ")",
    "model card": "{source}: model card is not valid JSON (" + JSON_ERROR + ")",
}
# The wording is each format's own; the versions are today's (split file and gallery manifest
# are at 2 and still read 1).
OLD_VERSION_MESSAGES = {
    "split file": "{source}: split format version 99, this version of sketchsearch reads "
    "version 2 (and 1): re-run `data split`",
    "gallery manifest": "{source}: gallery format version 99; this version of sketchsearch "
    "reads version 2 (and 1)",
    "model card": "{source}: model card version 99; this version of sketchsearch reads "
    "version 1: re-export the model",
}


def refusal(read: Callable[[Path], object], error: type[Exception], path: Path) -> str:
    with pytest.raises(error) as caught:
        read(path)
    return str(caught.value)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bad_json_is_refused_with_the_old_message(tmp_path: Path, kind: str) -> None:
    read, _, error = KINDS[kind]
    path = tmp_path / "file.json"
    path.write_text(NOT_JSON, encoding="utf-8")
    assert refusal(read, error, path) == OLD_JSON_MESSAGES[kind].format(source=path)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_another_version_is_refused_with_the_old_message(tmp_path: Path, kind: str) -> None:
    read, tag, error = KINDS[kind]
    path = tmp_path / "file.json"
    path.write_text(json.dumps({"format": tag, "format_version": 99}), encoding="utf-8")
    assert refusal(read, error, path) == OLD_VERSION_MESSAGES[kind].format(source=path)


def test_the_check_can_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the shared default wording (what the refactor first shipped) the check fails."""
    from sketchsearch.gallery import manifest

    monkeypatch.setattr(
        manifest, "MANIFEST", replace(manifest.MANIFEST, version_message=VERSION_MESSAGE)
    )
    path = tmp_path / "file.json"
    path.write_text(json.dumps({"format": GALLERY_FORMAT, "format_version": 99}))
    message = refusal(read_manifest, GalleryCorruptError, path)
    assert message.startswith(f"{path}: gallery manifest format version 99;")
    assert message != OLD_VERSION_MESSAGES["gallery manifest"].format(source=path)
