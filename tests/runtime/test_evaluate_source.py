"""Evaluation that cannot be silently wrong: the gallery's recorded source is checked.

`evaluate --direction photo2sketch` against a gallery of photos once printed mAP 1.0000: every
photo found itself. The colour engine (mean RGB, worked out by hand) drives the library checks;
the tiny exported model drives the command line, its exit codes and its JSON.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from colour_engine import ColourEngine, colour_split, solid

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import ExitCode, UsageError
from sketchsearch.data.split_spec import SplitPart
from sketchsearch.gallery.gallery import Gallery
from sketchsearch.runtime.evaluation.evaluate import evaluate
from sketchsearch.runtime.evaluation.roc_gallery import roc_for_gallery
from sketchsearch.runtime.gallery_build import add_files, build_gallery, split_source, split_sources


def split_gallery(part: SplitPart, folder: Path, domain: str = "photo") -> Path:
    """A gallery of ``part``'s ``domain`` images that records it, as `gallery build --split`."""
    sources = split_sources(part, domain)
    build_gallery(ColourEngine(), folder, part.root, sources, source=split_source(part, domain))
    return folder


# ---------------------------------------------------------------- the library


def test_a_gallery_of_the_query_domain_is_refused_naming_the_build_command(tmp_path) -> None:
    part = colour_split(tmp_path, red_query_is_a_photo=False)
    folder = split_gallery(part, tmp_path / "photos")
    build = (
        f"sketchsearch gallery build --engine colour.engine --split {part.source}:train "
        f"--data {part.root} --domain sketch --out {folder}-sketch"
    )
    with Gallery.open(folder) as gallery, pytest.raises(UsageError) as caught:
        evaluate(ColourEngine(), gallery, part, direction=("photo", "sketch"))
    assert caught.value.exit_code == ExitCode.USAGE
    message = str(caught.value)
    assert f"{folder} holds the photo images of {part.source}:train" in message
    assert build in message
    # The ROC's default direction is sketch→photo: a gallery of sketches is the wrong one.
    sketches = split_gallery(part, tmp_path / "sketches", domain="sketch")
    with Gallery.open(sketches) as gallery, pytest.raises(UsageError, match="--domain photo"):
        roc_for_gallery(ColourEngine(), gallery, part)


def test_queries_that_are_gallery_items_are_refused_or_left_out(tmp_path) -> None:
    part = colour_split(tmp_path, red_query_is_a_photo=True)
    folder = split_gallery(part, tmp_path / "photos")
    with Gallery.open(folder) as gallery:
        with pytest.raises(UsageError, match="--drop-gallery-queries") as caught:
            evaluate(ColourEngine(), gallery, part)
        assert "1 of 2 queries are themselves items of" in str(caught.value)
        assert "sketch/red/q.png" in str(caught.value)
        with pytest.raises(UsageError, match="1 of 2 queries"):
            roc_for_gallery(ColourEngine(), gallery, part)
        result = evaluate(ColourEngine(), gallery, part, drop_gallery_queries=True)
        roc = roc_for_gallery(ColourEngine(), gallery, part, drop_gallery_queries=True)
    # Only the green query is left: r2 (0.8, red), then g1 (0.6, green): AP 1/2.
    assert result.queries == 1 and result.exact is not None
    assert result.exact["mAP@all"] == pytest.approx(0.5)
    report = result.to_dict()["gallery"]
    assert (report["queries_in_gallery"], report["queries_dropped"]) == (1, 1)
    assert report["domain"] == "photo" and report["domain_unknown"] is False
    # Green query against r1, g1, r2, b1: one positive (g1), three negatives.
    assert (roc.curve.positives, roc.curve.negatives) == (1, 3)
    assert roc.to_dict()["gallery"]["queries_dropped"] == 1


def test_every_query_in_the_gallery_leaves_nothing_to_drop(tmp_path) -> None:
    part = colour_split(tmp_path, red_query_is_a_photo=False)
    # A folder gallery of everything, sketches included: every query is an item.
    build_gallery(ColourEngine(), tmp_path / "all", part.root, split_sources(part, "sketch"))
    with (
        Gallery.open(tmp_path / "all") as gallery,
        pytest.raises(UsageError, match="would leave no query"),
    ):
        evaluate(ColourEngine(), gallery, part, drop_gallery_queries=True)


def test_unknown_domains_are_said_loudly(tmp_path) -> None:
    part = colour_split(tmp_path, red_query_is_a_photo=False)
    engine = ColourEngine()
    folder = tmp_path / "folder"
    build_gallery(engine, folder, part.root, split_sources(part, "photo"))  # a folder source
    mixed = split_gallery(part, tmp_path / "mixed")
    solid(part.root / "photo" / "blue" / "b2.png", (0, 0, 200))
    add_files(engine, mixed, [part.root / "photo" / "blue" / "b2.png"])
    older = split_gallery(part, tmp_path / "older")
    with Gallery.open(older, mode="rw") as gallery:
        gallery.set_source(None)  # as a gallery built before sources were recorded
    expected = {
        folder: "built from a folder of images",
        mixed: "split gallery with files added later",
        older: "not recorded",
    }
    for where, why in expected.items():
        with Gallery.open(where) as gallery:
            result = evaluate(engine, gallery, part)
        assert result.gallery is not None and result.gallery.domain is None
        (warning,) = result.gallery.warnings
        assert warning.startswith(f"gallery domain unknown: {why}"), warning
        assert "--domain photo" in warning  # the gallery that could be checked
        report = json.loads(json.dumps(result.to_dict()))["gallery"]
        assert report["domain_unknown"] is True and report["warnings"] == [warning]


def test_another_split_or_part_is_warned_about(tmp_path) -> None:
    part = colour_split(tmp_path, red_query_is_a_photo=False)
    folder = split_gallery(part, tmp_path / "photos")
    with Gallery.open(folder) as gallery:
        assert evaluate(ColourEngine(), gallery, part).gallery.warnings == ()  # type: ignore[union-attr]
    solid(part.root / "photo" / "blue" / "b2.png", (0, 0, 200))  # a new file list
    other = colour_split(tmp_path, red_query_is_a_photo=False, name="other.json")
    with Gallery.open(folder) as gallery:
        result = evaluate(ColourEngine(), gallery, other)
    assert result.gallery is not None and result.gallery.domain == "photo"
    (warning,) = result.gallery.warnings
    assert "built from another split" in warning and other.split.fingerprint in warning
    with Gallery.open(folder, mode="rw") as gallery:
        gallery.set_source(replace(gallery.manifest.source, part="val"))  # type: ignore[arg-type]
    with Gallery.open(folder) as gallery:
        result = evaluate(ColourEngine(), gallery, part)
    assert result.gallery is not None
    assert result.gallery.warnings == (
        "the gallery holds part 'val' of the split, the queries come from part 'train'",
    )


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def model(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model in ONNX, galleries of its test photos (from the split, and as a folder)."""
    from sketchsearch.export.pipeline import ExportOptions, export_onnx

    folder = tmp_path_factory.mktemp("evaluate-source")
    (result,) = export_onnx(
        ExportOptions(checkpoint=tiny_run / "best.ckpt", output=folder / "model.onnx")
    )
    data, split = tiny_run.parent / "data", tiny_run.parent / "split.json"
    common = ["gallery", "build", "--engine", str(result.path), "--quiet", "--no-default"]
    split_args = ["--split", f"{split}:test", "--data", str(data), "--domain", "photo"]
    assert run(cli, [*common, *split_args, "--out", str(folder / "photos")]) == 0
    photos = next(p for p in (data / "photo").iterdir() if p.is_dir())
    assert run(cli, [*common, "--images", str(photos), "--out", str(folder / "folder")]) == 0
    return {"model": result.path, "data": data, "split": split, "folder": folder}


def evaluate_args(model: dict[str, Path], gallery: str, *more: str) -> list[str]:
    return [
        "evaluate",
        "--engine",
        str(model["model"]),
        "--index",
        str(model["folder"] / gallery),
        "--split",
        f"{model['split']}:test",
        "--data",
        str(model["data"]),
        *more,
    ]


def test_evaluate_photo2sketch_on_photos_exits_2_with_the_command(model, capsys) -> None:
    code = run(cli, evaluate_args(model, "photos", "--direction", "photo2sketch"))
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE and err.startswith("error: ") and err.count("\n") == 1, err
    assert f"--split {model['split']}:test --data {model['data']} --domain sketch" in err
    analyze = ["analyze", "roc", "--engine", str(model["model"])]
    analyze += ["--index", str(model["folder"] / "photos"), "--split", f"{model['split']}:test"]
    assert run(cli, [*analyze, "--data", str(model["data"])]) == ExitCode.OK  # the right one
    capsys.readouterr()


def test_evaluate_photo2sketch_on_a_folder_of_photos_refuses_self_matches(model, capsys) -> None:
    """The issue's case: a folder gallery (domain unknown) of the very photos used as queries."""
    code = run(cli, evaluate_args(model, "folder", "--direction", "photo2sketch"))
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE and err.count("\n") == 1, err
    assert "queries are themselves items of" in err and "--drop-gallery-queries" in err
    code = run(
        cli, evaluate_args(model, "folder", "--direction", "photo2sketch", "--drop-gallery-queries")
    )
    assert code == ExitCode.USAGE and "would leave no query" in capsys.readouterr().err


def test_a_folder_gallery_prints_and_records_domain_unknown(model, capsys, tmp_path) -> None:
    report = tmp_path / "eval.json"
    assert run(cli, evaluate_args(model, "folder", "--json", str(report))) == ExitCode.OK
    out = capsys.readouterr().out
    assert "warning: gallery domain unknown: built from a folder of images" in out
    written = json.loads(report.read_text())["gallery"]
    assert written["domain_unknown"] is True and written["domain"] is None
    assert written["warnings"][0].startswith("gallery domain unknown")
    assert run(cli, evaluate_args(model, "photos", "--json", str(report))) == ExitCode.OK
    out = capsys.readouterr().out
    assert "warning" not in out and "gallery: the photo images of" in out
    assert json.loads(report.read_text())["gallery"]["domain"] == "photo"


def test_an_undefined_metric_is_written_as_null_not_refused(model, capsys, tmp_path) -> None:
    """No query has a relevant item in a gallery of an unknown category: mAP is undefined
    (NaN). The report says so with null and the command succeeds; strict JSON used to turn
    this into exit 1 and no report."""
    other = tmp_path / "other" / "zzz"
    other.mkdir(parents=True)
    photos = (
        sorted((model["data"] / "photo").rglob("*.jpg"))[:3]
        or sorted((model["data"] / "photo").rglob("*.png"))[:3]
    )
    for n, photo in enumerate(photos):
        shutil.copy(photo, other / f"x{n}{photo.suffix}")
    gallery = tmp_path / "g-zzz"
    build = ["gallery", "build", "--engine", str(model["model"]), "--quiet", "--no-default"]
    assert run(cli, [*build, "--images", str(other.parent), "--out", str(gallery)]) == 0
    report = tmp_path / "eval.json"
    args = evaluate_args(model, "unused", "--json", str(report), "--drop-gallery-queries")
    args[args.index("--index") + 1] = str(gallery)
    assert run(cli, args) == ExitCode.OK, capsys.readouterr().err
    written = json.loads(report.read_text())  # strict JSON: json.loads accepts NaN, so check
    assert written["hnsw"]["mAP@all"] is None and "NaN" not in report.read_text()


def test_a_gallery_with_items_removed_is_evaluated_with_a_warning(tmp_path) -> None:
    part = colour_split(tmp_path, red_query_is_a_photo=False)
    gallery = split_gallery(part, tmp_path / "g")
    with Gallery.open(gallery, mode="rw") as writer:
        writer.remove(paths=["photo/blue/b1.png"])
    with Gallery.open(gallery) as reader:
        result = evaluate(ColourEngine(), reader, part)
    assert any("removed from the gallery" in w for w in result.gallery.warnings)
