"""A running service answers from a new gallery generation without a restart or a failure.

A client searches continuously while another process (`sketchsearch gallery add`) commits
new items; every answer must be a 200 from a whole generation (its item count is the old or
the new one, never in between), and the new items must be found within a few seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from service_server import ServeProcess, build_gallery_cli


@pytest.fixture
def fresh(served: Path, tmp_path: Path) -> Path:
    """A model, images and a gallery of this test's own (the gallery records its root)."""
    folder = tmp_path / "live"
    (folder / "images").mkdir(parents=True)
    shutil.copy(served / "model.onnx", folder / "model.onnx")
    labels = sorted(p.name for p in (served / "images").iterdir())
    for label in labels[:4]:
        shutil.copytree(served / "images" / label, folder / "images" / label)
    build_gallery_cli(folder / "model.onnx", folder / "images", folder / "gallery")
    shutil.copytree(served / "images" / labels[4], folder / "incoming" / labels[4])
    return folder


def test_gallery_add_reaches_the_running_service(fresh: Path) -> None:
    args = ["--reload-interval", "0.5"]
    with ServeProcess(fresh / "model.onnx", fresh / "gallery", args) as server:
        before = httpx.get(server.url + "v1/info").json()["gallery"]
        new = sorted((fresh / "incoming").rglob("*.jpg"))
        query = new[0].read_bytes()
        answers: list[httpx.Response] = []
        stop = threading.Event()

        def keep_searching() -> None:
            with httpx.Client(timeout=30) as client:
                while not stop.is_set():
                    answers.append(client.post(server.url + "v1/search", content=query,
                                               headers={"Content-Type": "image/jpeg"}))  # fmt: skip

        searcher = threading.Thread(target=keep_searching)
        searcher.start()
        try:
            time.sleep(0.5)
            shutil.copytree(fresh / "incoming", fresh / "images", dirs_exist_ok=True)
            added = [str(fresh / "images" / p.relative_to(fresh / "incoming")) for p in new]
            subprocess.run(
                [sys.executable, "-m", "sketchsearch.cli", "gallery", "add", "--engine",
                 str(fresh / "model.onnx"), "--quiet", str(fresh / "gallery"), *added],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            committed = time.monotonic()
            target = before["items"] + len(new)
            while time.monotonic() - committed < 30:
                if answers and answers[-1].json()["gallery"]["items"] == target:
                    break
                time.sleep(0.1)
            seen_at = time.monotonic() - committed
            time.sleep(0.3)
        finally:
            stop.set()
            searcher.join()
        assert answers and all(a.status_code == 200 for a in answers), server.stderr()
        counts = [a.json()["gallery"]["items"] for a in answers]
        assert set(counts) == {before["items"], target}, "a half-written generation was seen"
        assert counts == sorted(counts)  # once new, never old again
        assert seen_at < 10, f"the new generation answered only after {seen_at:.1f} s"
        last = answers[-1].json()
        assert last["gallery"]["generation"] > before["generation"]
        top = last["results"][0]
        assert top["path"] == new[0].relative_to(fresh / "incoming").as_posix()  # the new item
        image = httpx.get(server.url + top["image"].lstrip("/"), params={"size": "original"})
        assert image.content == query
        info = httpx.get(server.url + "v1/info").json()["gallery"]
        assert info["items"] == target and new[0].parent.name in info["labels"]
        metrics = httpx.get(server.url + "metrics").text
        assert 'sketchsearch_gallery_reloads_total{outcome="ok"} 1.0' in metrics
        assert "gallery reloaded" in server.stderr()


def test_a_gallery_rebuilt_in_place_is_picked_up(fresh: Path) -> None:
    """A rebuilt gallery starts again at generation 1, as the one it replaces may be: the
    service reloads on the committed state's version (the files' digests), not the number."""
    args = ["--reload-interval", "0.3"]
    with ServeProcess(fresh / "model.onnx", fresh / "gallery", args) as server:
        before = httpx.get(server.url + "v1/info").json()["gallery"]
        assert before["generation"] == 1
        smaller = fresh / "smaller"
        kept = sorted((fresh / "images").iterdir())[0]
        shutil.copytree(kept, smaller / kept.name)
        build_gallery_cli(fresh / "model.onnx", smaller, fresh / "rebuilt")
        shutil.rmtree(fresh / "gallery")
        (fresh / "rebuilt").rename(fresh / "gallery")
        deadline = time.monotonic() + 30  # a reload takes well under a second; CI is loaded
        info = before
        while time.monotonic() < deadline and info["items"] == before["items"]:
            time.sleep(0.1)
            info = httpx.get(server.url + "v1/info").json()["gallery"]
        assert info["items"] != before["items"], server.stderr()
        assert info["generation"] == 1 and info["labels"] == [kept.name], server.stderr()
        assert info["items"] == len(list(kept.iterdir())) < before["items"]
        found = httpx.post(server.url + "v1/search", content=next(kept.iterdir()).read_bytes(),
                           headers={"Content-Type": "image/jpeg"})  # fmt: skip
        assert {r["label"] for r in found.json()["results"]} == {kept.name}


def test_a_generation_that_does_not_check_out_is_not_loaded(fresh: Path) -> None:
    """A committed manifest whose data files do not match it (here: it claims a generation
    its item database does not hold) is refused with one line; the old generation keeps
    answering, and the refusal is counted."""
    args = ["--reload-interval", "0.3"]
    with ServeProcess(fresh / "model.onnx", fresh / "gallery", args) as server:
        before = httpx.get(server.url + "v1/info").json()["gallery"]
        manifest = fresh / "gallery" / "manifest.json"
        raw = json.loads(manifest.read_text())
        raw["generation"] += 1
        staged = manifest.with_name("manifest.staged")
        staged.write_text(json.dumps(raw))
        os.replace(staged, manifest)  # whole, as a commit writes it
        deadline = time.monotonic() + 30
        while "not loaded" not in server.stderr() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "gallery changed but not loaded" in server.stderr()
        assert "still answering from generation 1" in server.stderr()
        query = sorted((fresh / "images").rglob("*.jpg"))[0].read_bytes()
        answer = httpx.post(server.url + "v1/search", content=query,
                            headers={"Content-Type": "image/jpeg"})  # fmt: skip
        assert answer.status_code == 200
        assert answer.json()["gallery"]["generation"] == before["generation"]
        metrics = httpx.get(server.url + "metrics").text
        assert 'sketchsearch_gallery_reloads_total{outcome="failed"} 1.0' in metrics
        assert server.stderr().count("not loaded") == 1  # said once, not at every poll


def test_info_answered_during_a_swap_is_of_one_generation(fresh: Path) -> None:
    """A /v1/info answered after a new generation is published but before the swap's own
    bookkeeping ran must give that generation's labels with its item count: CI once saw the
    new count beside the old labels (`test_a_gallery_rebuilt_in_place_is_picked_up`)."""
    from fastapi.testclient import TestClient

    from sketchsearch.gallery.store_table import open_gallery
    from sketchsearch.runtime.engines.table import open_engine
    from sketchsearch.runtime.retriever import Retriever, model_ref
    from sketchsearch.runtime.service.app import create_app
    from sketchsearch.runtime.service.service import Service, ServiceSettings

    engine = open_engine(fresh / "model.onnx")
    gallery = open_gallery(fresh / "gallery", expected_model=model_ref(engine.card))
    service = Service(Retriever(engine, gallery), fresh / "gallery", ServiceSettings())
    client = TestClient(create_app(service))
    before = client.get("/v1/info").json()["gallery"]
    kept = sorted((fresh / "images").iterdir())[0]
    shutil.copytree(kept, fresh / "smaller" / kept.name)
    build_gallery_cli(fresh / "model.onnx", fresh / "smaller", fresh / "rebuilt")
    shutil.rmtree(fresh / "gallery")
    (fresh / "rebuilt").rename(fresh / "gallery")
    mid_swap: list[dict[str, object]] = []
    bookkeeping = service.live._on_swap  # the service's own hook, run after publishing

    def answer_first(retriever: Retriever) -> None:
        mid_swap.append(client.get("/v1/info").json()["gallery"])
        bookkeeping(retriever)

    service.live._on_swap = answer_first
    try:
        assert service.live.reload_if_changed()
        after = client.get("/v1/info").json()["gallery"]
    finally:
        service.close()
        engine.close()
    assert len(before["labels"]) == 4
    assert mid_swap[0]["items"] == after["items"] == len(list(kept.iterdir()))
    assert mid_swap[0]["labels"] == after["labels"] == [kept.name]
