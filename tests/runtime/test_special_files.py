"""A FIFO, a device or a directory named to `gallery add` or `retrieve` is one failed item, at
once: the command neither blocks (a FIFO once hung `gallery add` while it held the writer lock)
nor stops the rest of the batch. So is a `--queries-from` line that cannot be a path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from colour_engine import ColourEngine, colour_onnx, solid

from sketchsearch.runtime.gallery_build import add_files, build_gallery, folder_sources

TIMEOUT_S = 30  # seconds; the CLI needs about one


@pytest.fixture
def served(tmp_path: Path) -> dict[str, Path]:
    """colour.onnx and a gallery of photos/red/r.png and photos/green/g.png."""
    photos = tmp_path / "photos"
    solid(photos / "red" / "r.png", (255, 0, 0))
    solid(photos / "green" / "g.png", (0, 255, 0))
    build_gallery(ColourEngine(), tmp_path / "gallery", photos, folder_sources(photos))
    return {"engine": colour_onnx(tmp_path / "colour.onnx"), "photos": photos}


def sketchsearch(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """The CLI in a subprocess that must finish: a blocked read fails instead of hanging."""
    command = [sys.executable, "-m", "sketchsearch.cli", *map(str, args)]
    try:
        return subprocess.run(
            command, input=stdin, capture_output=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(command[3:])}` blocked for {TIMEOUT_S} s")


def test_gallery_add_of_a_fifo_fails_that_file_and_indexes_the_rest(served, tmp_path) -> None:
    photos = served["photos"]
    os.mkfifo(photos / "red" / "pipe.png")
    solid(photos / "red" / "r2.png", (250, 0, 0))
    done = sketchsearch(
        "gallery", "add", "--engine", served["engine"], tmp_path / "gallery",
        photos / "red" / "pipe.png", photos / "red" / "r2.png", os.devnull,
    )  # fmt: skip
    err = done.stderr.decode() + done.stdout.decode()
    assert done.returncode == 1, err  # per-file failures
    assert "pipe.png: is a FIFO, not an image file" in err
    assert "added 1," in err and "failed 2;" in err  # /dev/null: outside the root


def test_retrieve_answers_the_other_queries_of_a_fifo_or_a_folder(served, tmp_path) -> None:
    os.mkfifo(tmp_path / "q.png")
    query = solid(tmp_path / "sketch.png", (200, 10, 10))
    done = sketchsearch(
        "retrieve", "--engine", served["engine"], "--index", tmp_path / "gallery", "--json",
        "--query", tmp_path / "q.png", "--query", tmp_path, "--query", os.devnull,
        "--query", query,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr.decode()
    answers = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [a["error"] for a in answers] == [
        "is a FIFO, not an image file",
        "is a directory, not an image file",
        "is a character device, not an image file",
        None,
    ]
    assert answers[3]["results"][0]["path"] == "red/r.png"


def test_queries_from_lines_that_cannot_be_paths_fail_alone(served, tmp_path) -> None:
    query = solid(tmp_path / "sketch.png", (10, 200, 10))
    listing = b"bad\0name.png\ncaf\xe9.png\n" + os.fsencode(query) + b"\n"
    done = sketchsearch(
        "retrieve", "--engine", served["engine"], "--index", tmp_path / "gallery", "--json",
        "--queries-from", "-", stdin=listing,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr.decode()
    answers = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [(a["query"], a["error"]) for a in answers[:2]] == [
        ("bad\\x00name.png", "not a valid path: it holds a NUL byte"),
        ("caf\\xe9.png", "not a valid path: it holds bytes that are not UTF-8"),
    ]
    assert answers[2]["error"] is None and answers[2]["results"][0]["path"] == "green/g.png"
    assert "bad\\x00name.png: not a valid path" in done.stderr.decode()


def test_add_over_a_known_item_that_became_a_fifo_fails_it(served, tmp_path) -> None:
    """A known path is hashed before embedding: that read, too, must refuse the FIFO."""
    red = served["photos"] / "red" / "r.png"
    red.unlink()
    os.mkfifo(red)
    outcome: list[object] = []
    thread = threading.Thread(
        target=lambda: outcome.append(add_files(ColourEngine(), tmp_path / "gallery", [red])),
        daemon=True,
    )
    thread.start()
    thread.join(TIMEOUT_S)
    assert not thread.is_alive(), "gallery add blocked on a FIFO"
    (report,) = outcome
    assert [f.problem for f in report.failed] == ["is a FIFO, not an image file"]  # type: ignore[attr-defined]
