"""A writer killed (SIGKILL) at any point of a save leaves a gallery that opens and searches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from vectors import clustered, items, model

from sketchsearch.gallery import Gallery
from sketchsearch.gallery.commit import CRASH_ENV

WRITER = Path(__file__).with_name("writer_process.py")
# the rename of the pending manifest commits
BEFORE_COMMIT_POINT = ["index-written", "items-written", "manifest-partial"]
AFTER_COMMIT_POINT = ["manifest-written", "index.bin-renamed", "items.sqlite-renamed"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    with Gallery.create(tmp_path / "g", 16, model=model()) as gallery:
        gallery.add(clustered(100, 16), items(100))
    return tmp_path / "g"


def run_writer(folder: Path, batch: int, commits: int, crash_at: str | None = None):
    env = {**os.environ, **({CRASH_ENV: crash_at} if crash_at else {})}
    return subprocess.run(
        [sys.executable, str(WRITER), str(folder), str(batch), str(commits)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_whole(folder: Path, mode: str = "r") -> int:
    """The gallery opens, its parts agree, and every live item can be found."""
    with Gallery.open(folder, mode=mode) as gallery:
        info = gallery.info()
        exported = gallery.export_vectors()
        assert len(exported.ids) == info.live
        # HNSW is approximate (and built by threads, so not the same graph twice): a search as
        # wide as the gallery, and the item among its 10 nearest, not necessarily the first.
        hits = gallery.search(exported.vectors[:20], k=min(10, info.live), ef=max(64, info.live))
        wanted = exported.ids[:20].tolist()
        missing = [i for i, h in zip(wanted, hits, strict=True) if i not in h.ids.tolist()]
        assert missing == []
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == [] or mode == "r"
    return info.live


@pytest.mark.parametrize("point", BEFORE_COMMIT_POINT + AFTER_COMMIT_POINT)
@pytest.mark.parametrize("mode", ["r", "rw"])
def test_kill_at_each_point_of_a_commit(folder: Path, point: str, mode: str) -> None:
    done = run_writer(folder, batch=50, commits=1, crash_at=point)
    assert done.returncode == -signal.SIGKILL, done.stderr
    expected = 100 if point in BEFORE_COMMIT_POINT else 150  # rolled back / rolled forward
    assert assert_whole(folder, mode) == expected
    assert run_writer(folder, batch=10, commits=1).returncode == 0  # and it takes new writes
    assert assert_whole(folder, "rw") == expected + 10


def test_kill_at_random_moments(folder: Path) -> None:
    rng = np.random.default_rng(7)
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, str(WRITER), str(folder), "400", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        child.stdout.readline()  # it is committing in a loop now
        time.sleep(float(rng.uniform(0.0, 0.3)))
        child.send_signal(signal.SIGKILL)
        child.wait()
        live = assert_whole(folder, "rw")
        assert (live - 100) % 400 == 0


def test_a_reader_never_mixes_generations_while_a_new_writer_waits(folder: Path) -> None:
    """A writer died mid-rename; a second writer holds the lock but has not recovered yet."""
    from sketchsearch.gallery.locking import WRITER_LOCK, FileLock

    with Gallery.open(folder, mode="rw") as gallery:  # a remove-only commit keeps sizes equal
        gallery.remove(ids=[3])
    killed = run_remove(folder, crash_at="index.bin-renamed")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    lock = FileLock(folder / WRITER_LOCK)
    lock.acquire(exclusive=True, timeout=0)
    try:
        with Gallery.open(folder) as reader:  # sees the new generation, whole
            info = reader.info()
            assert (info.live, info.deleted) == (98, 2)
            assert reader.export_vectors().ids.size == 98
    finally:
        lock.release()
    assert assert_whole(folder, "rw") == 98


def run_remove(folder: Path, crash_at: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\nfrom sketchsearch.gallery import Gallery\n"
        "with Gallery.open(sys.argv[1], mode='rw') as g:\n    g.remove(ids=[4])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        env={**os.environ, CRASH_ENV: crash_at},
        capture_output=True,
        text=True,
        timeout=60,
    )
