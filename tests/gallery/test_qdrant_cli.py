"""`gallery push` into Qdrant's local mode, then the real `retrieve`, `evaluate`, `gallery info`
and `serve` commands against the pushed collection: the same answers as the folder gallery."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import ExitCode
from sketchsearch.gallery import create_gallery, open_gallery
from sketchsearch.gallery.manifest import ModelRef


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Local-mode storage in memory (/dev/shm) where it can be: one SQLite transaction per
    pushed point costs 0.9 ms there, about 19 ms on a disk."""
    if not os.access("/dev/shm", os.W_OK):
        yield tmp_path_factory.mktemp("qdrant-storage")
        return
    folder = Path(tempfile.mkdtemp(prefix="sketchsearch-qdrant-", dir="/dev/shm"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pushed(
    tiny_onnx: Path, tiny_run: Path, tmp_path_factory: pytest.TempPathFactory, storage: Path
) -> dict:
    """The tiny model, a folder gallery of its split's test photos, and that gallery pushed."""
    folder = tmp_path_factory.mktemp("qdrant-cli")
    shutil.copy(tiny_onnx, folder / "model.onnx")
    data, split = tiny_run.parent / "data", tiny_run.parent / "split.json"
    build = ["gallery", "build", "--engine", str(folder / "model.onnx"), "--split"]
    build += [f"{split}:test", "--data", str(data), "--out", str(folder / "gallery")]
    assert run(cli, [*build, "--quiet", "--no-default"]) == 0
    ref = f"qdrant+local://{storage / 'qdrant'}?collection=photos"
    assert run(cli, ["gallery", "push", str(folder / "gallery"), "--to", ref]) == 0
    return {"model": folder / "model.onnx", "gallery": folder / "gallery", "ref": ref,
            "data": data, "split": split, "folder": folder, "storage": storage}  # fmt: skip


def test_push_keeps_ids_vectors_metadata_and_the_manifest(pushed) -> None:
    with open_gallery(pushed["gallery"]) as folder:
        want = folder.export_vectors()
    with open_gallery(pushed["ref"]) as store:
        got = store.export_vectors()
        assert store.manifest.generation == 0  # one commit, at the end of the push
    assert got.ids.tolist() == want.ids.tolist() and len(got.ids) > 0
    np.testing.assert_allclose(got.vectors, want.vectors, atol=1e-6)
    assert got.items == want.items  # path, label, instance, sha256 and added_at
    for name in ("model", "root", "source", "threshold", "M", "ef_construction", "ef", "live"):
        assert getattr(got.manifest, name) == getattr(want.manifest, name), name


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def same_ranking(got: list[dict], want: list[dict]) -> None:
    """Same scores; same ids wherever the score is not tied with a neighbour's."""
    scores = [r["score"] for r in want]
    np.testing.assert_allclose([r["score"] for r in got], scores, atol=1e-5)
    for rank, (a, b) in enumerate(zip(got, want, strict=True)):
        near = scores[max(0, rank - 1) : rank + 2]
        if sum(abs(s - scores[rank]) < 1e-5 for s in near) == 1:
            assert (a["id"], a["path"], a["label"]) == (b["id"], b["path"], b["label"]), rank


def test_retrieve_against_the_pushed_store_answers_as_the_folder(
    pushed, capsys, monkeypatch
) -> None:
    sketches = pushed["data"] / "sketch"
    answers = []
    for index in (pushed["gallery"], pushed["ref"], None):
        args = ["retrieve", "--engine", str(pushed["model"])]
        if index is None:  # the reference from $SKETCHSEARCH_GALLERY, "//" and all
            monkeypatch.setenv("SKETCHSEARCH_GALLERY", pushed["ref"])
        else:
            args += ["--index", str(index)]
        assert run(cli, [*args, "--queries", str(sketches), "-k", "5", "--json"]) == 0
        answers.append(json_lines(capsys.readouterr().out))
    assert len(answers[0]) == len(answers[1]) > 10
    assert [a["results"] for a in answers[2]] == [a["results"] for a in answers[1]]
    assert {a["gallery"]["path"] for a in answers[2]} == {pushed["ref"]}
    for want, got in zip(*answers[:2], strict=True):
        assert got["query"] == want["query"] and got["gallery"]["path"] == pushed["ref"]
        same_ranking(got["results"], want["results"])
        assert all(r["file"] and Path(r["file"]).is_file() for r in got["results"])


def test_evaluate_reports_the_same_metrics_and_names_the_store(pushed, capsys) -> None:
    reports = []
    for n, index in enumerate((pushed["gallery"], pushed["ref"])):
        args = ["evaluate", "--engine", str(pushed["model"]), "--index", str(index)]
        args += ["--split", f"{pushed['split']}:test", "--data", str(pushed["data"])]
        out = pushed["folder"] / f"eval-{n}.json"
        assert run(cli, [*args, "--json", str(out)]) == 0
        reports.append((json.loads(out.read_text()), capsys.readouterr().out))
    (folder, folder_out), (qdrant, qdrant_out) = reports
    for key in ("hnsw", "exact"):
        assert qdrant[key] == pytest.approx(folder[key], abs=1e-6), key
    assert (folder["store"], qdrant["store"]) == ("hnswlib", "qdrant+local")
    assert qdrant["ann_recall@10"] == qdrant["hnsw_recall@10"] == pytest.approx(1.0)
    assert "HNSW recall@10 vs exact search" in folder_out
    assert "qdrant+local index recall@10 vs exact search: 1.0000" in qdrant_out
    assert "HNSW" not in qdrant_out


def test_replace_refuses_a_collection_that_is_not_a_gallery(pushed, capsys) -> None:
    from qdrant_client import QdrantClient, models

    path = pushed["storage"] / "foreign"
    client = QdrantClient(path=str(path))
    params = models.VectorParams(size=4, distance=models.Distance.DOT)
    client.create_collection("theirs", vectors_config=params)
    client.upsert("theirs", [models.PointStruct(id=1, vector=[1, 0, 0, 0], payload={"a": 1})])
    client.close()
    ref = f"qdrant+local://{path}?collection=theirs"
    args = ["gallery", "push", str(pushed["gallery"]), "--to", ref, "--replace"]
    assert run(cli, args) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "not a sketchsearch gallery; choose another collection" in err
    assert len(err.splitlines()) == 1
    client = QdrantClient(path=str(path))
    assert client.count("theirs").count == 1  # untouched
    client.close()


def test_push_refuses_an_existing_collection_unless_replace(pushed, capsys) -> None:
    args = ["gallery", "push", str(pushed["gallery"]), "--to", pushed["ref"]]
    with open_gallery(pushed["ref"]) as store:
        before = store.committed_version()
    assert run(cli, args) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "already exists" in err and "--replace" in err and len(err.splitlines()) == 1
    assert run(cli, [*args, "--replace"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pushed ") and "(replaced the old collection)" in out and " s\n" in out
    with open_gallery(pushed["ref"]) as store:  # a long-running reader reloads: a new token
        assert store.committed_version() != before
    to_folder = ["gallery", "push", str(pushed["gallery"]), "--to", str(pushed["folder"] / "x")]
    assert run(cli, to_folder) == ExitCode.USAGE
    assert "push moves a gallery into Qdrant" in capsys.readouterr().err


def test_another_model_is_refused_with_exit_4(pushed, capsys) -> None:
    ref = f"qdrant+local://{pushed['folder'] / 'other'}?collection=x"
    with create_gallery(ref, 16, model=ModelRef("another-family", "resnet10t", 16)):
        pass
    args = ["evaluate", "--engine", str(pushed["model"]), "--index", ref]
    args += ["--split", f"{pushed['split']}:test", "--data", str(pushed["data"])]
    assert run(cli, args) == ExitCode.MISMATCH
    err = capsys.readouterr().err
    assert "another-fam" in err and "rebuild the gallery" in err and len(err.splitlines()) == 1


def test_gallery_info_on_a_reference_and_one_line_errors(pushed, capsys) -> None:
    assert run(cli, ["gallery", "info", pushed["ref"], "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["directory"] == pushed["ref"] and facts["live"] > 0 and facts["file_bytes"] == {}
    with open_gallery(pushed["ref"]):  # local mode: a second opener is refused, in one line
        assert run(cli, ["gallery", "info", pushed["ref"]]) == ExitCode.BUSY
    err = capsys.readouterr().err
    assert "Qdrant server" in err and len(err.splitlines()) == 1
    for bad in ("qdrant+local://x?coll=y", "qdrant://host:6333/a/b", "qdrant+local://x"):
        assert run(cli, ["gallery", "info", bad]) == ExitCode.USAGE
        err = capsys.readouterr().err
        assert bad in err and len(err.splitlines()) == 1


def test_serve_answers_a_search_from_the_pushed_store(pushed) -> None:
    from service_server import ServeProcess

    query = next((pushed["data"] / "sketch").rglob("*.png"))
    args = ["--index", pushed["ref"], "--reload-interval", "0.2"]
    with ServeProcess(pushed["model"], None, args) as server:
        response = httpx.post(server.url + "v1/search", content=query.read_bytes(),
                              headers={"Content-Type": "image/png"}, params={"k": 3},
                              timeout=30)  # fmt: skip
        time.sleep(1.2)  # five polls of an unchanged store: no reload, no complaint
        stderr = server.stderr()
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 3 and results[0]["score"] >= results[2]["score"]
    assert "reloaded" not in stderr and "changed but not loaded" not in stderr, stderr
