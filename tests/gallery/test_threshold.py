"""The recommended match threshold in the gallery manifest: saved by commit, optional on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vectors import clustered, items, model

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import ExitCode
from sketchsearch.gallery import Gallery
from sketchsearch.gallery.commit import MANIFEST_FILE
from sketchsearch.gallery.errors import GalleryCorruptError, GalleryError
from sketchsearch.gallery.manifest import GalleryManifest, MatchThreshold

THRESHOLD = MatchThreshold(
    value=0.4375,
    target_fpr=0.01,
    tpr=0.875,
    auc=0.99,
    source="analyze roc: pairs.csv",
    created_at="2025-01-01T00:00:00+00:00",
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    with Gallery.create(tmp_path / "g", 16, model=model()) as gallery:
        gallery.add(clustered(20, 16), items(20))
    return tmp_path / "g"


def test_threshold_round_trips_through_a_commit(folder: Path) -> None:
    with Gallery.open(folder) as reader:
        assert reader.manifest.threshold is None and reader.info().threshold is None
        before = reader.manifest.generation
    assert "threshold" not in json.loads((folder / MANIFEST_FILE).read_text())
    with Gallery.open(folder, mode="rw") as writer:
        writer.set_threshold(THRESHOLD)
        assert writer.info().uncommitted_changes
    with Gallery.open(folder) as reader:
        assert reader.manifest.threshold == THRESHOLD
        assert reader.info().threshold == THRESHOLD
        assert reader.manifest.generation == before + 1
        assert reader.info().live == 20  # the items came through the commit unchanged
    with Gallery.open(folder, mode="rw") as writer:
        writer.set_threshold(None)
    with Gallery.open(folder) as reader:
        assert reader.manifest.threshold is None


def test_a_failed_change_does_not_save_the_threshold(folder: Path) -> None:
    with pytest.raises(RuntimeError), Gallery.open(folder, mode="rw") as writer:
        writer.set_threshold(THRESHOLD)
        raise RuntimeError("the caller failed before committing")
    with Gallery.open(folder) as reader:
        assert reader.manifest.threshold is None


def test_read_only_galleries_and_bad_values_are_refused(folder: Path) -> None:
    with Gallery.open(folder) as reader, pytest.raises(GalleryError, match="read-only"):
        reader.set_threshold(THRESHOLD)
    bad = MatchThreshold(float("nan"), 0.01, 0.5, 0.9, "x", "t")
    with Gallery.open(folder, mode="rw") as writer, pytest.raises(GalleryError, match="finite"):
        writer.set_threshold(bad)


def test_manifest_keys_stay_strict(folder: Path) -> None:
    with Gallery.open(folder, mode="rw") as writer:
        writer.set_threshold(THRESHOLD)
    path = folder / MANIFEST_FILE
    raw = json.loads(path.read_text())
    GalleryManifest.from_json(json.dumps(raw), "m")  # as written
    for change, message in (
        ({"threshold": {**raw["threshold"], "extra": 1}}, r"unexpected keys \['extra'\]"),
        ({"threshold": {**raw["threshold"], "value": "high"}}, "threshold.value"),
        ({"threshold": {**raw["threshold"], "tpr": 1.5}}, "threshold.tpr 1.5 is not a rate"),
        ({"threshold": [0.5]}, "threshold must be an object"),
        ({"thresholds": None}, r"unexpected keys \['thresholds'\]"),
    ):
        with pytest.raises(GalleryCorruptError, match=message):
            GalleryManifest.from_json(json.dumps({**raw, **change}), "m")
    assert GalleryManifest.from_json(json.dumps({**raw, "threshold": None}), "m").threshold is None


def test_gallery_info_prints_the_threshold(folder: Path, capsys) -> None:
    assert run(cli, ["gallery", "info", str(folder)]) == ExitCode.OK
    assert "threshold" in (out := capsys.readouterr().out) and "none" in out
    with Gallery.open(folder, mode="rw") as writer:
        writer.set_threshold(THRESHOLD)
    assert run(cli, ["gallery", "info", str(folder)]) == ExitCode.OK
    assert "score >= 0.4375 (FPR <= 0.01, TPR 0.875" in capsys.readouterr().out
    assert run(cli, ["gallery", "info", str(folder), "--json"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["threshold"]["value"] == 0.4375
