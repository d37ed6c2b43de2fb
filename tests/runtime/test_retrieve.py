"""The serving path end to end: an exported tiny model, a gallery built from images, retrieve."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from blockers import BLOCK_TORCH

from sketchsearch.cli.main import cli, run
from sketchsearch.cli.retrieve_command import retrieve
from sketchsearch.data.split_spec import parse_split_spec
from sketchsearch.export.pipeline import ExportOptions, export_onnx
from sketchsearch.gallery.gallery import Gallery
from sketchsearch.gallery.manifest import MatchThreshold, ModelRef
from sketchsearch.runtime.engines.table import open_engine
from sketchsearch.runtime.output.retrieve_json import JSON_SCHEMA

RESULT_KEYS = {"rank", "id", "path", "file", "label", "score", "confident", "sha256"}
ANSWER_KEYS = {
    "schema",
    "query",
    "error",
    "k",
    "engine",
    "gallery",
    "threshold",
    "confident",
    "timings_ms",
    "results",
}


@pytest.fixture(scope="module")
def served(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """model.onnx, its default gallery of the split's test photos, and a few test sketches."""
    folder = tmp_path_factory.mktemp("served")
    (result,) = export_onnx(
        ExportOptions(checkpoint=tiny_run / "best.ckpt", output=folder / "model.onnx")
    )
    data, split = tiny_run.parent / "data", tiny_run.parent / "split.json"
    code = run(
        cli,
        [
            "gallery",
            "build",
            "--engine",
            str(result.path),
            "--split",
            f"{split}:test",
            "--data",
            str(data),
            "--out",
            str(folder / "gallery"),
            "--quiet",
        ],
    )
    assert code == 0
    part = parse_split_spec(f"{split}:test", data)
    sketches = [part.path(item) for item in part.items("sketch")]
    return {
        "model": result.path,
        "gallery": folder / "gallery",
        "data": data,
        "split": split,
        "q1": sketches[0],
        "q2": sketches[-1],
        "folder": folder,
    }


def retrieve_json(capsys, *args: str) -> tuple[int, list[dict]]:
    code = run(retrieve, [*args, "--json"])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines() if line.strip()]


def test_json_output_schema_and_ranking(served, capsys) -> None:
    code, answers = retrieve_json(
        capsys,
        "--engine",
        str(served["model"]),
        "--index",
        str(served["gallery"]),
        "--query",
        str(served["q1"]),
        "--query",
        str(served["q2"]),
        "-k",
        "4",
    )
    assert code == 0 and len(answers) == 2
    for answer in answers:
        assert set(answer) == ANSWER_KEYS and answer["schema"] == JSON_SCHEMA
        assert set(answer["engine"]) == {"path", "backend", "device", "precision", "family"}
        assert set(answer["timings_ms"]) == {"decode", "embed", "search"}
        assert answer["threshold"] == {"value": None, "source": "none"}
        assert [r["rank"] for r in answer["results"]] == [1, 2, 3, 4]
        assert all(set(r) == RESULT_KEYS for r in answer["results"])
        scores = [r["score"] for r in answer["results"]]
        assert scores == sorted(scores, reverse=True)
        assert all(Path(r["file"]).is_file() for r in answer["results"])


def test_table_and_grid_outputs(served, capsys, tmp_path) -> None:
    grid = tmp_path / "grid.png"
    code = run(
        retrieve,
        [
            "--engine",
            str(served["model"]),
            "--index",
            str(served["gallery"]),
            "--query",
            str(served["q1"]),
            "-k",
            "3",
            "--grid",
            str(grid),
        ],
    )
    out = capsys.readouterr().out
    assert code == 0 and "rank" in out and str(served["q1"]) in out
    image = cv2.imread(str(grid))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 4 * 100


def test_retrieve_as_written_without_index_uses_the_recorded_default(
    served, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("SKETCHSEARCH_GALLERY", raising=False)
    code, answers = retrieve_json(
        capsys, "--engine", str(served["model"]), "--query", str(served["q1"])
    )
    assert code == 0 and answers[0]["gallery"]["path"] == str(served["gallery"].resolve())
    elsewhere = served["folder"] / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    alone = elsewhere / "model.onnx"
    shutil.copy(served["model"], alone)
    code = run(retrieve, ["--engine", str(alone), "--query", str(served["q1"])])
    err = capsys.readouterr().err
    assert code == 2 and "sketchsearch gallery build --engine" in err
    monkeypatch.setenv("SKETCHSEARCH_GALLERY", str(served["gallery"]))
    code, answers = retrieve_json(capsys, "--engine", str(alone), "--query", str(served["q1"]))
    assert code == 0 and answers[0]["gallery"]["path"] == str(served["gallery"])


def test_a_bad_query_fails_alone_with_exit_code_1(served, capsys, tmp_path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(served["q1"].read_bytes()[:40])
    code, answers = retrieve_json(
        capsys,
        "--engine",
        str(served["model"]),
        "--index",
        str(served["gallery"]),
        "--query",
        str(broken),
        "--query",
        str(served["q1"]),
    )
    assert code == 1
    assert answers[0]["error"] and answers[0]["results"] == []
    assert answers[1]["error"] is None and answers[1]["results"]


def test_configuration_errors_exit_2_in_one_line(served, capsys, tmp_path) -> None:
    other = Gallery.create(
        tmp_path / "other", 16, model=ModelRef(family="f" * 64, name="resnet10t", dim=16)
    )
    other.close()
    good = ["--engine", str(served["model"]), "--index", str(served["gallery"])]
    from sketchsearch.runtime.model_card import read_onnx_card
    from sketchsearch.runtime.retriever import model_ref

    Gallery.create(tmp_path / "empty", 16, model=model_ref(read_onnx_card(served["model"]))).close()
    empty = tmp_path / "empty"
    plan = tmp_path / "model.plan"  # a TensorRT engine without its card (and no TensorRT here)
    plan.write_bytes(b"not an engine")
    cases = [
        (["--engine", str(tmp_path / "none.onnx")], "model file not found"),
        (["--engine", str(served["model"]), "--index", str(tmp_path / "nothing")], "not a gallery"),
        (["--engine", str(served["model"]), "--index", str(tmp_path / "other")], "rebuild"),
        (["--engine", str(served["split"])], "unknown model type"),
        (["--engine", str(plan)], "sidecar"),
        (["--engine", str(served["model"]), "--index", str(empty)], "the gallery is empty"),
        ([*good, "--grid", str(tmp_path / "no" / "g.png")], "not found"),
        ([*good, "--grid", str(tmp_path / "g.png"), "--explain", "none.ckpt"], "not found"),
    ]
    for args, message in cases:
        code = run(retrieve, [*args, "--query", str(served["q1"])])
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_thresholds_mark_unconfident_results(served, capsys) -> None:
    base = [
        "--engine",
        str(served["model"]),
        "--index",
        str(served["gallery"]),
        "--query",
        str(served["q1"]),
        "-k",
        "3",
    ]
    code, answers = retrieve_json(capsys, *base, "--min-score", "1.01")
    assert code == 0 and answers[0]["threshold"] == {"value": 1.01, "source": "--min-score"}
    assert answers[0]["confident"] is False
    assert not any(r["confident"] for r in answers[0]["results"])
    with Gallery.open(served["gallery"], mode="rw") as gallery:
        gallery.set_threshold(
            MatchThreshold(
                value=-1.0,
                target_fpr=0.01,
                tpr=0.9,
                auc=0.95,
                source="test",
                created_at="2026-11-29T00:00:00+00:00",
            )
        )
    try:
        code, answers = retrieve_json(capsys, *base)
        assert answers[0]["threshold"] == {"value": -1.0, "source": "gallery"}
        assert all(r["confident"] for r in answers[0]["results"])
    finally:
        with Gallery.open(served["gallery"], mode="rw") as gallery:
            gallery.set_threshold(None)


def test_retrieve_runs_where_torch_cannot_be_imported(served) -> None:
    args = ["--engine", str(served["model"]), "--index", str(served["gallery"])]
    args += ["--query", str(served["q1"]), "--json"]
    code = (
        BLOCK_TORCH
        + "from sketchsearch.cli.main import run\n"
        + "from sketchsearch.cli.retrieve_command import retrieve\n"
        + f"code = run(retrieve, {args!r})\n"
        + "assert 'torch' not in sys.modules and 'timm' not in sys.modules\n"
        + "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"]


def test_gallery_build_reports_corrupt_files_and_indexes_the_rest(served, capsys, tmp_path) -> None:
    photos = tmp_path / "photos"
    good = sorted((served["data"] / "photo").rglob("*.jpg"))[:6]
    for index, path in enumerate(good):
        (photos / f"cat{index % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, photos / f"cat{index % 2}" / path.name)
    (photos / "cat0" / "truncated.jpg").write_bytes(good[0].read_bytes()[:100])
    (photos / "cat0" / "empty.png").write_bytes(b"")
    (photos / "cat1" / "notes.jpg").write_text("not an image")
    code = run(
        cli,
        [
            "gallery",
            "build",
            "--engine",
            str(served["model"]),
            "--images",
            str(photos),
            "--out",
            str(tmp_path / "g"),
            "--no-default",
            "--batch-size",
            "4",
        ],
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "indexed 6" in out and "failed 3" in out
    for name in ("truncated.jpg", "empty.png", "notes.jpg"):
        assert name in out
    with Gallery.open(tmp_path / "g") as gallery:
        assert gallery.info().live == 6
        labels = {row.label for row in gallery.export_vectors().items}
    assert labels == {"cat0", "cat1"}

    # add is incremental: nothing new is embedded; a changed file replaces its entry
    add = ["gallery", "add", "--engine", str(served["model"]), str(tmp_path / "g"), str(photos)]
    assert run(cli, add) == 1  # the three bad files are still bad
    out = capsys.readouterr().out
    assert "added 0" in out and "0 images embedded" in out
    assert "skipped 6 already present" in out
    changed = sorted((photos / "cat1").glob("*.jpg"))[0]
    image = cv2.imread(str(changed))
    cv2.imwrite(str(changed), 255 - image)
    new = photos / "cat1" / "new.jpg"
    cv2.imwrite(str(new), image)
    assert (
        run(
            cli,
            [
                "gallery",
                "add",
                "--engine",
                str(served["model"]),
                str(tmp_path / "g"),
                str(changed),
                str(new),
            ],
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "added 1, updated 1, skipped 0" in out and "2 images embedded" in out
    with Gallery.open(tmp_path / "g") as gallery:
        assert gallery.info().live == 7


def test_torch_reference_and_onnxruntime_agree(served, tiny_run) -> None:
    onnx_engine = open_engine(served["model"], threads=1)
    torch_engine = open_engine(tiny_run / "best.ckpt", threads=1)
    assert (onnx_engine.backend, torch_engine.backend) == ("onnxruntime", "torch")
    assert onnx_engine.card.family == torch_engine.card.family
    from sketchsearch.runtime.preprocess import preprocess_batch

    images = preprocess_batch(
        sorted((served["data"] / "sketch").rglob("*.png"))[:12], onnx_engine.card.preprocess
    )
    a, b = onnx_engine.embed(images), torch_engine.embed(images)
    assert a.shape == b.shape == (12, 16)
    np.testing.assert_array_less(0.9999, (a * b).sum(axis=1))


def test_explain_overlays_grad_cam_on_the_grid(served, tiny_run, capsys, tmp_path) -> None:
    base = ["--engine", str(served["model"]), "--index", str(served["gallery"])]
    base += ["--query", str(served["q1"]), "-k", "2"]
    plain, explained = tmp_path / "plain.png", tmp_path / "explained.png"
    assert run(retrieve, [*base, "--grid", str(plain)]) == 0
    code = run(
        retrieve, [*base, "--grid", str(explained), "--explain", str(tiny_run / "best.ckpt")]
    )
    assert code == 0, capsys.readouterr().err
    a, b = cv2.imread(str(plain)), cv2.imread(str(explained))
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() > 5
    other = tmp_path / "other.ckpt"
    other.write_bytes((tiny_run / "best.ckpt").read_bytes() + b"x")
    capsys.readouterr()
    code = run(retrieve, [*base, "--grid", str(explained), "--explain", str(other)])
    assert code == 2 and "not the checkpoint" in capsys.readouterr().err
    assert run(retrieve, [*base, "--explain", str(tiny_run / "best.ckpt")]) == 2


# --- issue 13: strict numbers in, strict JSON out, help for every option, ordinary modes ---


def _no_constants(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_a_non_finite_min_score_is_refused_in_one_line(served, capsys, text: str) -> None:
    args = ["--engine", str(served["model"]), "--index", str(served["gallery"])]
    args += ["--query", str(served["q1"]), "--json", "--min-score", text]
    assert run(cli, ["retrieve", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "is not a finite number" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_json_output_is_strict_json(served, capsys) -> None:
    base = ["--engine", str(served["model"]), "--index", str(served["gallery"])]
    code = run(retrieve, [*base, "--query", str(served["q1"]), "-k", "3", "--json"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines
    for line in lines:
        json.loads(line, parse_constant=_no_constants)


def test_an_unknown_score_is_written_as_null_and_read_back_unknown(tmp_path) -> None:
    import math

    from sketchsearch.runtime.output.retrieve_json import (
        EngineFacts,
        read_retrieve_results,
        retrieve_line,
    )
    from sketchsearch.runtime.retriever import Threshold

    written = tmp_path / "results.jsonl"
    written.write_text(
        json.dumps(
            {"query": "q.png", "results": [{"path": "a.png"}, {"path": "b.png", "score": 0.5}]}
        )
        + "\n"
    )
    (answer,) = read_retrieve_results(written)
    assert math.isnan(answer.matches[0].score) and answer.matches[1].score == 0.5
    facts = EngineFacts("model.onnx", "onnxruntime", "cpu", "fp32", "f" * 64)
    for threshold in (Threshold(None, "none"), Threshold(math.nan, "--min-score")):
        line = retrieve_line(answer, facts, ("gallery", 2), threshold, 2)
        record = json.loads(line, parse_constant=_no_constants)
        assert [r["score"] for r in record["results"]] == [None, 0.5]
        assert record["threshold"]["value"] is None
        written.write_text(line + "\n")
        (again,) = read_retrieve_results(written)
        assert math.isnan(again.matches[0].score) and again.matches[1].score == 0.5


def test_every_retrieve_option_has_help() -> None:
    import click

    ctx = click.Context(retrieve)
    missing = []
    for param in retrieve.params:
        param.get_help_record(ctx)  # --engine writes its help (the backend table) here
        if not getattr(param, "help", None):  # "[default: 10]" alone is not help
            missing.append(param.opts[0])
    assert missing == []


def test_the_recorded_default_gallery_has_the_ordinary_file_mode(served, tmp_path) -> None:
    import os

    from sketchsearch.runtime.model_card import read_onnx_card
    from sketchsearch.runtime.retriever import DEFAULTS_FILE, record_default_gallery

    old = os.umask(0o022)
    os.umask(old)
    built = served["folder"] / DEFAULTS_FILE  # by `gallery build` in the fixture
    assert built.stat().st_mode & 0o777 == 0o666 & ~old
    model = tmp_path / "model.onnx"
    shutil.copy(served["model"], model)
    old = os.umask(0o027)
    try:
        record = record_default_gallery(model, read_onnx_card(model), served["gallery"])
    finally:
        os.umask(old)
    assert record.stat().st_mode & 0o777 == 0o640
    assert json.loads(record.read_text()) == {
        read_onnx_card(model).family: os.path.relpath(
            served["gallery"].resolve(), tmp_path.resolve()
        )
    }
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_galleries_file_is_relative_so_a_moved_folder_keeps_its_default(
    served, tmp_path, monkeypatch
) -> None:
    from sketchsearch.runtime.model_card import read_onnx_card
    from sketchsearch.runtime.retriever import (
        DEFAULTS_FILE,
        default_gallery,
        record_default_gallery,
    )

    monkeypatch.delenv("SKETCHSEARCH_GALLERY", raising=False)
    folder = tmp_path / "deploy"
    shutil.copytree(served["gallery"], folder / "gallery")
    shutil.copy(served["model"], folder / "model.onnx")
    card = read_onnx_card(folder / "model.onnx")
    record = record_default_gallery(folder / "model.onnx", card, folder / "gallery")
    assert json.loads(record.read_text()) == {card.family: "gallery"}
    moved = Path(shutil.move(folder, tmp_path / "moved"))
    assert default_gallery(moved / "model.onnx", card) == moved.resolve() / "gallery"
    # An absolute entry, as earlier versions wrote it, is still read.
    (moved / DEFAULTS_FILE).write_text(json.dumps({card.family: str(served["gallery"])}))
    assert default_gallery(moved / "model.onnx", card) == served["gallery"]
