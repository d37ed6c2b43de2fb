"""The "no match" threshold reaches the gallery that serves.

`analyze roc` measures it with a validation part's queries against a validation gallery;
`retrieve` reads it from the gallery it searches. `--write-threshold-to` and `gallery threshold
copy` put it there; a gallery of another model family refuses it (exit 4).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from colour_engine import ColourEngine, solid

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import ExitCode
from sketchsearch.data.split_spec import parse_split_spec
from sketchsearch.gallery.gallery import Gallery
from sketchsearch.runtime.gallery_build import build_gallery, folder_sources


@pytest.fixture(scope="module")
def galleries(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model in ONNX; a validation gallery (val photos), a serving one (test photos)
    and a gallery of another model (the colour engine's)."""
    from sketchsearch.export.pipeline import ExportOptions, export_onnx

    folder = tmp_path_factory.mktemp("threshold-serving")
    (result,) = export_onnx(
        ExportOptions(checkpoint=tiny_run / "best.ckpt", output=folder / "model.onnx")
    )
    data, split = tiny_run.parent / "data", tiny_run.parent / "split.json"
    for part in ("val", "test"):
        build = ["gallery", "build", "--engine", str(result.path), "--quiet", "--no-default"]
        build += ["--split", f"{split}:{part}", "--data", str(data), "--out", str(folder / part)]
        assert run(cli, build) == 0
    colours = folder / "colours"
    solid(colours / "red" / "r.png", (255, 0, 0))
    build_gallery(ColourEngine(), folder / "colour-gallery", colours, folder_sources(colours))
    query = parse_split_spec(f"{split}:test", data)
    return {
        "model": result.path,
        "data": data,
        "split": split,
        "val": folder / "val",
        "serving": folder / "test",
        "other": folder / "colour-gallery",
        "query": query.path(query.items("sketch")[0]),
    }


def threshold_in(folder: Path) -> object:
    with Gallery.open(folder) as gallery:
        return gallery.manifest.threshold


def served_threshold(galleries: dict[str, Path], capsys) -> dict[str, object]:
    """The threshold `retrieve --json` reports on the serving gallery."""
    capsys.readouterr()
    args = ["--engine", str(galleries["model"]), "--index", str(galleries["serving"])]
    args += ["--query", str(galleries["query"]), "-k", "2", "--json"]
    assert run(cli, ["retrieve", *args]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    threshold: dict[str, object] = json.loads(line)["threshold"]
    return threshold


def roc_args(galleries: dict[str, Path], *more: str) -> list[str]:
    return [
        "analyze",
        "roc",
        "--engine",
        str(galleries["model"]),
        "--index",
        str(galleries["val"]),
        "--split",
        f"{galleries['split']}:val",
        "--data",
        str(galleries["data"]),
        "--target-fpr",
        "0.1",
        *more,
    ]


@pytest.fixture
def clean(galleries: dict[str, Path]):
    """Every test starts and ends with no threshold anywhere (the galleries are shared)."""
    for name in ("val", "serving"):
        assert run(cli, ["gallery", "threshold", "clear", str(galleries[name])]) == 0
    yield galleries
    for name in ("val", "serving"):
        assert run(cli, ["gallery", "threshold", "clear", str(galleries[name])]) == 0


def test_analyze_roc_writes_the_threshold_to_the_serving_gallery(clean, capsys, tmp_path) -> None:
    assert served_threshold(clean, capsys) == {"value": None, "source": "none"}
    report = tmp_path / "roc.json"
    args = roc_args(clean, "--json", str(report), "--write-threshold-to", str(clean["serving"]))
    assert run(cli, args) == ExitCode.OK
    assert f"recorded in {clean['serving']}" in capsys.readouterr().out
    value = json.loads(report.read_text())["threshold_at_target_fpr"]
    assert threshold_in(clean["val"]) is None  # only where it was asked for
    assert served_threshold(clean, capsys) == {"value": value, "source": "gallery"}
    assert run(cli, ["gallery", "info", str(clean["serving"])]) == 0
    assert f"score >= {value:.4f} (FPR <= 0.1" in capsys.readouterr().out


def test_gallery_threshold_copy_and_clear(clean, capsys) -> None:
    assert run(cli, roc_args(clean, "--write-threshold")) == ExitCode.OK
    measured = threshold_in(clean["val"])
    assert measured is not None
    copy = ["gallery", "threshold", "copy", "--from", str(clean["val"]), str(clean["serving"])]
    assert run(cli, copy) == ExitCode.OK
    assert "copied from" in capsys.readouterr().out
    copied = threshold_in(clean["serving"])
    assert copied.value == measured.value  # type: ignore[attr-defined]
    assert copied.source == f"copied from {clean['val']}: {measured.source}"  # type: ignore[attr-defined]
    assert served_threshold(clean, capsys) == {"value": measured.value, "source": "gallery"}
    assert run(cli, ["gallery", "info", "--json", str(clean["serving"])]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["threshold"]["source"].startswith("copied from")
    assert run(cli, ["gallery", "threshold", "clear", str(clean["serving"])]) == 0
    assert served_threshold(clean, capsys) == {"value": None, "source": "none"}


def test_a_gallery_of_another_model_refuses_the_threshold(clean, capsys) -> None:
    other = clean["other"]
    assert run(cli, roc_args(clean, "--write-threshold")) == ExitCode.OK
    capsys.readouterr()
    copy = ["gallery", "threshold", "copy", "--from", str(clean["val"]), str(other)]
    assert run(cli, copy) == ExitCode.MISMATCH
    err = capsys.readouterr().err
    assert err.startswith(f"error: {other}: gallery was built with model") and err.count("\n") == 1
    # Both targets are checked before either is written: the serving one stays unchanged.
    args = roc_args(clean, "--write-threshold-to", str(clean["serving"]))
    assert run(cli, [*args, "--write-threshold-to", str(other)]) == ExitCode.MISMATCH
    assert threshold_in(other) is None and threshold_in(clean["serving"]) is None
    copy = ["gallery", "threshold", "copy", "--from", str(other), str(clean["serving"])]
    assert run(cli, copy) == ExitCode.USAGE  # nothing to copy
    assert "has no threshold to copy" in capsys.readouterr().err


def test_pairs_mode_needs_the_gallery_the_scores_came_from(clean, capsys, tmp_path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("actual,prediction\n1,0.9\n0,0.2\n1,0.7\n0,0.4\n")
    args = ["analyze", "roc", "--pairs", str(pairs), "--write-threshold-to", str(clean["serving"])]
    assert run(cli, args) == ExitCode.USAGE
    assert "add --index GALLERY" in capsys.readouterr().err
    assert run(cli, [*args, "--index", str(clean["other"])]) == ExitCode.MISMATCH
    assert run(cli, [*args, "--index", str(clean["val"])]) == ExitCode.OK
    assert threshold_in(clean["serving"]) is not None and threshold_in(clean["val"]) is None
