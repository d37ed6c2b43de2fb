"""The Qdrant store (local mode, on /dev/shm where it can): the protocol, the round trip,
commits, crashes, two writers, a lost server.

Local mode searches exhaustively (no HNSW inside), so its recall against brute force is 1.0
up to ties; a server's HNSW is what `evaluate` measures there (ADR 0008).
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from vectors import clustered, exact_top, items, model

from sketchsearch.data.errors import SketchsearchError, UsageError
from sketchsearch.gallery import GalleryItem, GalleryStore, create_gallery, open_gallery
from sketchsearch.gallery.commit import CRASH_ENV
from sketchsearch.gallery.errors import (
    GalleryBusyError,
    GalleryCorruptError,
    GalleryError,
    GalleryMismatchError,
    GalleryNotFoundError,
)
from sketchsearch.gallery.items import ItemRow
from sketchsearch.gallery.manifest import GallerySource, MatchThreshold
from sketchsearch.gallery.qdrant_collection import MANIFEST_ID
from sketchsearch.gallery.qdrant_lease import Lease
from sketchsearch.gallery.qdrant_points import connect
from sketchsearch.gallery.qdrant_ref import parse_ref
from sketchsearch.gallery.qdrant_store import QdrantStore

DIM = 16
N = 60  # local mode commits one SQLite transaction per point (about 18 ms here): keep it small
TESTS = Path(__file__).resolve().parents[1]
# A writer in a child process: adds BATCH items and commits, COMMITS times (0: forever).
WRITER = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from vectors import clustered, items
from sketchsearch.gallery import open_gallery
ref, batch, commits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
done = 0
with open_gallery(ref, mode="rw") as gallery:
    while commits == 0 or done < commits:
        start = gallery.manifest.generation * 1000  # paths no earlier commit used
        newest = int(gallery.export_vectors().ids.max())
        gallery.add(clustered(batch, 16, seed=start), items(batch, start=start))
        gallery.remove(ids=[newest])
        gallery.commit()
        done += 1
        print("committed", flush=True)
"""


def local_ref(folder: Path, name: str = "photos") -> str:
    return f"qdrant+local://{folder / 'qdrant'}?collection={name}"


@pytest.fixture
def qdir(tmp_path: Path) -> Iterator[Path]:
    """A folder for local-mode storage: in memory (/dev/shm) where it can be, since local mode
    commits one SQLite transaction per point (0.9 ms there, about 19 ms on a disk)."""
    if not os.access("/dev/shm", os.W_OK):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="sketchsearch-qdrant-", dir="/dev/shm"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ref(qdir: Path) -> str:
    with create_gallery(local_ref(qdir), DIM, model=model()) as store:
        store.add(clustered(N, DIM), items(N))
    return local_ref(qdir)


def test_keeps_the_protocol_and_round_trips_every_field(ref: str) -> None:
    with open_gallery(ref, expected_model=model(precision="fp16")) as store:
        assert isinstance(store, QdrantStore) and isinstance(store, GalleryStore)
        assert store.notes and "fp16" in store.notes[0]  # precision differs: a note only
        assert (store.ref, store.manifest.live, store.manifest.generation) == (ref, N, 1)
        exported = store.export_vectors()
        assert exported.ids.tolist() == list(range(N))
        np.testing.assert_allclose(exported.vectors, clustered(N, DIM), atol=1e-6)
        row = exported.items[7]
        assert (row.id, row.path, row.label, row.instance, row.sha256, row.deleted) == (
            7, "photos/00007.jpg", "c2", "i7", "sha-7", False
        )  # fmt: skip
        assert store.items([7, 999]) == {7: row}
        assert store.digests(["photos/00007.jpg", "nope.jpg"]) == {"photos/00007.jpg": "sha-7"}
        assert store.labels() == frozenset({"c0", "c1", "c2", "c3", "c4"})
        np.testing.assert_allclose(store.vectors(np.array([9, 2])), exported.vectors[[9, 2]])
        assert store.warm() == 10
        info = store.info()
        assert (info.live, info.deleted, info.dim, info.space, info.directory) == (
            N, 0, DIM, "cosine", ref
        )  # fmt: skip


def test_search_matches_brute_force_and_filters_by_label(ref: str) -> None:
    vectors, queries = clustered(N, DIM), clustered(30, DIM, seed=1)
    with open_gallery(ref) as store:
        found = store.search(queries, k=10, ef=32)
        ids, scores = exact_top(queries, vectors, np.arange(N), 10)
        np.testing.assert_allclose([r.scores for r in found], scores, atol=1e-5)
        recall = np.mean([len(set(r.ids) & set(t)) / 10 for r, t in zip(found, ids, strict=True)])
        assert recall == 1.0  # local mode is exhaustive: ties aside, exactly the oracle
        keep = np.array([i % 5 in (1, 3) for i in range(N)])
        wanted = np.flatnonzero(keep)
        _, oracle = exact_top(queries, vectors[keep], wanted, 5)
        filtered = store.search(queries, k=5, filter=["c1", "c3"])
        np.testing.assert_allclose([r.scores for r in filtered], oracle, atol=1e-5)
        assert {row.label for r in filtered for row in r.items} == {"c1", "c3"}
        assert store.search(queries[:1], k=5, filter="nope")[0].ids.size == 0
        with pytest.raises(GalleryError, match="16-dimensional"):
            store.search(np.ones((1, 8), np.float32), k=1)


def test_add_skips_same_content_replaces_changed_and_remove_marks_partial(qdir) -> None:
    source = GallerySource("split", "photo", "f" * 8, "test", "split.json")
    with create_gallery(local_ref(qdir), DIM, model=model(), source=source) as store:
        first = store.add(clustered(3, DIM), items(3))
    assert first.added == [0, 1, 2]
    with open_gallery(local_ref(qdir), mode="rw") as store:
        changed = [items(1)[0], GalleryItem("photos/00001.jpg", "new", "c1"), items(1, 5)[0]]
        report = store.add(clustered(3, DIM, seed=3), changed)
        assert (report.added, report.updated, report.skipped) == ([4], [3], ["photos/00000.jpg"])
        gone = store.remove(ids=[2, 77], paths=["photos/00005.jpg", "x.jpg"])
        assert (gone.removed, gone.not_found) == ([2, 4], ["77", "x.jpg"])
        assert store.manifest.source is not None and store.manifest.source.partial
    with open_gallery(local_ref(qdir)) as store:
        assert sorted(store.export_vectors().ids.tolist()) == [0, 3]
        assert store.digests(["photos/00001.jpg"]) == {"photos/00001.jpg": "new"}
        assert store.info().max_elements == 2  # removed and replaced points are deleted


def test_an_error_discards_and_a_clean_exit_commits(ref: str) -> None:
    threshold = MatchThreshold(0.5, 0.01, 0.9, 0.95, "test", "2026-11-30T00:00:00+00:00")
    with pytest.raises(RuntimeError), open_gallery(ref, mode="rw") as store:
        store.add(clustered(5, DIM, seed=9), items(5, start=500))
        store.remove(ids=[0, 1])
        store.set_threshold(threshold)
        assert store.info().live == N + 3  # the writer sees its own changes
        raise RuntimeError("boom")
    with open_gallery(ref) as store:
        before = store.committed_version()
        assert (store.manifest.live, store.manifest.threshold) == (N, None)
        assert store.items([0, 1, N]).keys() == {0, 1}
    with open_gallery(ref, mode="rw") as store:
        store.set_threshold(threshold)
        store.add(clustered(1, DIM, seed=9), items(1, start=500))
    with open_gallery(ref) as store:
        assert (store.manifest.live, store.manifest.threshold) == (N + 1, threshold)
        # the discarded session's ids were never visible: the next writer uses them again
        assert store.items([N])[N].path == "photos/00500.jpg"
        assert store.committed_version() != before
        with pytest.raises(GalleryError, match="read-only"):
            store.add(clustered(1, DIM), items(1, start=900))


def run_writer(ref: str, batch: int, commits: int, crash_at: str | None = None):
    env = {**os.environ, **({CRASH_ENV: crash_at} if crash_at else {})}
    command = [sys.executable, "-c", WRITER, ref, str(batch), str(commits)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def assert_whole(ref: str) -> int:
    """Opens; every committed item is found by its own vector; nothing pending shows."""
    with open_gallery(ref, mode="rw") as store:  # a writer: cleans what a dead one left
        exported = store.export_vectors()
        assert len(exported.ids) == store.manifest.live == store.info().max_elements
        hits = store.search(exported.vectors[-10:], k=1)
        assert [h.ids[0] for h in hits] == exported.ids[-10:].tolist()
        return store.manifest.live


@pytest.mark.parametrize(
    ("point", "expected"), [("qdrant-points-written", N), ("qdrant-manifest-written", N + 9)]
)
def test_a_writer_killed_in_a_commit_leaves_the_last_committed_state(ref, point, expected):
    done = run_writer(ref, batch=10, commits=1, crash_at=point)
    assert done.returncode == -signal.SIGKILL, done.stderr
    with open_gallery(ref) as store:  # a reader first: it must not see the dead writer's points
        assert store.manifest.live == expected == len(store.export_vectors().ids)
        assert bool(store.items([N])) == (point == "qdrant-manifest-written")
        # the dead writer's pending points are not "deleted"; its committed removal, not yet
        # purged, is
        assert store.info().deleted == int(point == "qdrant-manifest-written")
        # points left behind: this reader must keep filtering its searches
        assert store._plain is False
        hits = store.search(clustered(10, DIM, seed=1000 * store.manifest.generation), k=1)
        assert all(h.ids[0] < expected for h in hits)
    assert assert_whole(ref) == expected
    assert run_writer(ref, batch=5, commits=1).returncode == 0  # and it takes new writes
    assert assert_whole(ref) == expected + 4


def test_a_writer_killed_at_random_moments(ref: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(2):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, ref, "20", "0"], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        child.stdout.readline()  # it is committing in a loop now
        time.sleep(float(rng.uniform(0.0, 0.3)))
        child.send_signal(signal.SIGKILL)
        child.wait()
        live = assert_whole(ref)
        assert (live - N) % 19 == 0  # whole commits only: 20 added, 1 removed each


def test_local_mode_has_one_opener_at_a_time(ref: str) -> None:
    with open_gallery(ref), pytest.raises(GalleryBusyError) as caught:
        open_gallery(ref)
    message = str(caught.value)
    assert "\n" not in message and "Qdrant server" in message and ref in message


def test_a_server_writer_waits_for_the_lease(ref: str) -> None:
    where = parse_ref(ref)
    client = connect(where, create=False)
    try:
        mine = Lease.take(client, where, MANIFEST_ID, 0.0, enforce=True)
        assert mine is not None and Lease.take(client, where, MANIFEST_ID, 0.0) is None  # local
        with pytest.raises(GalleryBusyError, match="another writer holds"):
            Lease.take(client, where, MANIFEST_ID, 0.3, enforce=True)
        mine.release()
        assert Lease.take(client, where, MANIFEST_ID, 0.0, enforce=True) is not None
    finally:
        client.close()


def test_the_model_binding_refuses_another_family(ref: str) -> None:
    with pytest.raises(GalleryMismatchError, match="rebuild the gallery"):
        open_gallery(ref, expected_model=model("family-b"))
    with open_gallery(ref) as store:  # the refused open let go of the storage folder
        assert store.manifest.model.family == "family-a"


@pytest.mark.parametrize(
    "text",
    [
        "qdrant+local://",
        "qdrant+local://data",
        "qdrant+local://data?collection=",
        "qdrant+local://data?collection=a/b",
        "qdrant+local://data?collection=a&x=1",
        "qdrant+local://data?name=a",
        "qdrant+local://da\x00ta?collection=a",
        "qdrant://",
        "qdrant://host",
        "qdrant://host:99999/a",
        "qdrant://host:6333/a/b",
        "qdrant://user:pw@host:6333/a",
        "qdrant://host:6333/a?timeout=1",
        "qdrant://ho st:6333/a",
    ],
)
def test_malformed_references_are_one_line_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        open_gallery(text)
    message = str(caught.value)
    assert "\n" not in message and "qdrant" in message


def test_references_parse_to_what_they_name(qdir) -> None:
    server = parse_ref("qdrant://db.example:7000/photos_v2")
    assert (server.host, server.port, server.collection, server.local) == (
        "db.example", 7000, "photos_v2", False
    )  # fmt: skip
    assert parse_ref("QDRANT://db/x").port == 6333
    local = parse_ref("qdrant+local://../rel dir/q?collection=p")
    assert (local.path, local.collection, local.local) == ("../rel dir/q", "p", True)
    with pytest.raises(GalleryNotFoundError, match="no Qdrant storage folder"):
        open_gallery(local_ref(qdir / "missing"))


def test_an_unreachable_server_is_one_line() -> None:
    import socket

    with socket.socket() as probe:  # a port that nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ref = f"qdrant://127.0.0.1:{port}/photos"
    with pytest.raises(GalleryNotFoundError) as caught:
        open_gallery(ref)
    message = str(caught.value)
    assert "\n" not in message and "no answer from a Qdrant server" in message and ref in message


def test_an_interrupted_push_is_refused_with_the_fix(qdir) -> None:
    store = QdrantStore.create(local_ref(qdir), DIM, model(), commit=False)
    store.put_rows(clustered(3, DIM), _rows(3))
    store.close()  # gone before its commit: no manifest point was ever written
    with pytest.raises(GalleryCorruptError) as caught:
        open_gallery(local_ref(qdir))
    assert "--replace" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(GalleryError, match="already exists"):
        create_gallery(local_ref(qdir), DIM, model=model())


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ({"manifest": "{not json"}, "not valid JSON"),
        ({"manifest": 7}, "not text"),
        ({"next_id": -3}, "next_id"),
        ({"instance": ""}, "instance"),
    ],
)
def test_a_damaged_manifest_point_is_refused_in_one_line(ref: str, damage, words) -> None:
    where = parse_ref(ref)
    client = connect(where, create=False)
    client.set_payload(where.collection, damage, points=[MANIFEST_ID], wait=True)
    client.close()
    with pytest.raises(GalleryCorruptError, match=words) as caught:
        open_gallery(ref)
    assert "\n" not in str(caught.value) and ref in str(caught.value)


def test_gallery_building_and_evaluation_run_through_the_store(tmp_path, qdir) -> None:
    from colour_engine import ColourEngine, colour_split

    from sketchsearch.runtime.evaluation.evaluate import evaluate
    from sketchsearch.runtime.gallery_build import add_files, build_gallery, split_sources

    part, engine, ref = colour_split(tmp_path), ColourEngine(), local_ref(qdir)
    built = build_gallery(engine, ref, part.root, split_sources(part, "photo"))
    assert (built.gallery, built.indexed) == (ref, 4)
    again = add_files(engine, ref, [part.root / "photo"])
    assert (again.skipped, again.embedded) == (4, 0)  # digests from the payload: no re-embedding
    with open_gallery(ref) as store:
        result = evaluate(engine, store, part)
    assert result.store == "qdrant+local" and result.hnsw_recall_at_10 == pytest.approx(1.0)
    assert result.to_dict()["ann_recall@10"] == result.hnsw_recall_at_10
    assert result.hnsw == pytest.approx(result.exact)


def _rows(n: int):
    from sketchsearch.gallery.items import ItemRow

    return [ItemRow(i, f"p/{i}.jpg", "c", None, f"s{i}", "2026-01-01T00:00:00+00:00", False)
            for i in range(n)]  # fmt: skip


def test_a_second_writer_waits_and_builds_on_the_first_writers_commit(ref: str) -> None:
    """Two writers through one client with the server's lease (the seam ``attach``): the
    second, waiting while the first commits, must read the manifest after its wait."""
    from qdrant_client import QdrantClient

    where = parse_ref(ref)
    client = QdrantClient(path=where.path, force_disable_check_same_thread=True)

    def writer(timeout: float) -> QdrantStore:
        return QdrantStore.attach(
            where, client, None, "rw", timeout, enforce_lease=True, owns_client=False
        )

    try:
        first, second = writer(0.0), []
        waiting = threading.Thread(target=lambda: second.append(writer(30.0)))
        waiting.start()
        time.sleep(0.6)
        assert waiting.is_alive()  # it waits for the first writer's lease
        first.add(clustered(5, DIM, seed=5), items(5, start=300))
        first.commit()
        first.close()
        waiting.join(30)
        with second[0] as store:
            assert (store.manifest.generation, store.manifest.live) == (2, N + 5)
            assert store.add(clustered(1, DIM, seed=6), items(1, start=400)).added == [N + 5]
        reader = QdrantStore.attach(where, client, None, "r", 0.0, owns_client=False)
        assert reader.export_vectors().ids.tolist() == list(range(N + 6))
        assert reader.manifest.generation == 3
        reader.close()
    finally:
        client.close()


def test_a_writer_whose_lease_lapsed_and_was_taken_does_not_commit(ref: str) -> None:
    from qdrant_client import QdrantClient

    where = parse_ref(ref)
    client = QdrantClient(path=where.path)
    try:
        store = QdrantStore.attach(
            where, client, None, "rw", 0.0, enforce_lease=True, owns_client=False
        )
        assert store._lease is not None
        # past half its life, here and as recorded: the next write renews it
        store._lease.expires = time.time() + 5
        near = {"lease": {"owner": store._lease.owner, "expires": store._lease.expires}}
        client.set_payload(where.collection, near, points=[MANIFEST_ID], wait=True)
        store.add(clustered(2, DIM, seed=2), items(2, start=200))
        lease = client.retrieve(where.collection, [MANIFEST_ID], with_payload=True)[0]
        assert lease.payload["lease"]["expires"] > time.time() + 300
        taken = {"lease": {"owner": "another-writer", "expires": time.time() + 60}}
        client.set_payload(where.collection, taken, points=[MANIFEST_ID], wait=True)
        with pytest.raises(GalleryBusyError, match="lease lapsed and another writer took it"):
            store.commit()
        store.close()
        reader = QdrantStore.attach(where, client, None, "r", 0.0, owns_client=False)
        assert (reader.manifest.generation, reader.manifest.live) == (1, N)
        reader.close()
    finally:
        client.close()


def test_a_change_that_failed_half_way_is_never_committed(ref: str) -> None:
    rows = [ItemRow(N + i, f"new/{i}.jpg", "c", None, f"s{i}", "2026-01-01", False)
            for i in range(600)]  # fmt: skip
    vectors = np.empty(600, dtype=object)
    vectors[:] = [list(v) for v in clustered(600, DIM, seed=4)]
    vectors[550] = [1.0] * 8  # the second chunk of 512 is refused by Qdrant
    store = open_gallery(ref, mode="rw")
    store.remove(ids=[0, 1])
    with pytest.raises(Exception, match="dim"):
        store.put_rows(vectors, rows)
    assert store.items([N]) and not store.items([N + 550])  # the first chunk is in
    with pytest.raises(GalleryError, match="failed half-way"):
        store.commit()
    with pytest.raises(GalleryError, match="failed half-way"):
        store.add(clustered(1, DIM), items(1, start=900))
    store.close()  # discards
    with open_gallery(ref) as store:
        assert (store.manifest.generation, store.manifest.live) == (1, N)
        assert not store.items(list(range(N, N + 600)))


def test_put_rows_refuses_committed_ids(ref: str) -> None:
    with open_gallery(ref, mode="rw") as store:
        row = ItemRow(3, "other.jpg", "c", None, "s", "2026-01-01", False)
        with pytest.raises(GalleryError, match="below the next free id 60"):
            store.put_rows(clustered(1, DIM, seed=8), [row])
    with open_gallery(ref) as store:
        assert store.items([3])[3].path == "photos/00003.jpg"


def test_a_clean_local_reader_searches_unfiltered_and_answers_as_the_oracle(ref: str) -> None:
    vectors, queries = clustered(N, DIM), clustered(20, DIM, seed=1)
    with open_gallery(ref, mode="rw") as store:
        store.remove(ids=[5, 6])
    keep = np.array([i not in (5, 6) for i in range(N)])
    with open_gallery(ref) as store:
        assert store._plain is True
        _, oracle = exact_top(queries, vectors[keep], np.flatnonzero(keep), N - 2)
        found = store.search(queries, k=N + 10)  # more than there are: every live item
        assert all(len(r.ids) == N - 2 and 5 not in r.ids for r in found)
        np.testing.assert_allclose([r.scores for r in found], oracle, atol=1e-5)
        labelled = store.search(queries, k=3, filter="c0")
        assert all({row.label for row in r.items} == {"c0"} for r in labelled)


@pytest.mark.parametrize("kind", ["folder", "qdrant"])
def test_both_store_kinds_answer_edge_cases_alike(kind: str, tmp_path, qdir) -> None:
    """The folder gallery is the oracle: what it does at the edges, the Qdrant store does."""
    where = tmp_path / "folder" if kind == "folder" else local_ref(qdir)
    with create_gallery(where, DIM, model=model()) as store:
        store.add(clustered(12, DIM), items(12))
    with open_gallery(where, mode="rw") as store:
        store.remove(ids=[0, 5, 10])  # every c0
    queries = clustered(2, DIM, seed=3)
    with open_gallery(where) as store:
        assert all(r.ids.size == 0 for r in store.search(queries, k=3, filter=[]))
        assert [len(r.ids) for r in store.search(queries, k=50)] == [9, 9]
        assert store.labels() == frozenset({"c1", "c2", "c3", "c4"})
        with pytest.raises(GalleryError, match=r"no live items with ids \[5\]"):
            store.vectors(np.array([5]))
        assert store.items([5]) == {}
        assert store.info().live == 9


class FailingQdrant(http.server.BaseHTTPRequestHandler):
    """A server that says the collection exists, then answers 500 to everything else."""

    versions_asked = 0  # qdrant_client asks for "/" from a thread of its own

    def _answer(self) -> None:
        if self.path == "/":
            FailingQdrant.versions_asked += 1
            body, status = b'{"title": "qdrant", "version": "1.20.0"}', 200
        elif self.path.endswith("/exists"):
            body, status = b'{"result": {"exists": true}, "status": "ok", "time": 0}', 200
        else:
            body, status = b'{"status": {"error": "disk on fire"}}', 500
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_failing_after_the_probe_is_one_line() -> None:
    from sketchsearch.cli.main import cli, run

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FailingQdrant)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ref = f"qdrant://127.0.0.1:{server.server_address[1]}/photos"
    try:
        with pytest.raises(SketchsearchError) as caught:  # what the service's watcher catches
            open_gallery(ref)
        message = str(caught.value)
        assert isinstance(caught.value, GalleryError) and "\n" not in message
        assert f"lost the Qdrant server at http://127.0.0.1:{server.server_address[1]}" in message
        assert "500" in message
        assert run(cli, ["gallery", "info", ref]) != 0
        deadline = time.monotonic() + 10  # its version checks done: no warning after shutdown
        while FailingQdrant.versions_asked < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()


def test_tls_references_and_the_api_key(monkeypatch) -> None:
    tls = parse_ref("qdrants://db.example:6334/photos")
    assert (tls.https, tls.url, tls.collection) == (True, "https://db.example:6334", "photos")
    assert parse_ref("qdrant://[::1]:6333/x").url == "http://[::1]:6333"
    assert parse_ref("qdrant://127.0.0.1/x").loopback and not parse_ref("qdrant://db/x").loopback
    home = parse_ref("qdrant+local://~/q?collection=p").path
    assert home == str(Path.home() / "q")
    with pytest.raises(UsageError, match="home folder"):
        parse_ref("qdrant+local://~nobody-here-xyz/q?collection=p")
    monkeypatch.setenv("QDRANT_API_KEY", "secret")
    with pytest.raises(UsageError) as caught:  # refused before anything is sent
        open_gallery("qdrant://db.example:6333/photos")
    message = str(caught.value)
    assert "unencrypted" in message and "qdrants://db.example:6333/photos" in message
    assert "secret" not in message and "\n" not in message


def test_a_push_never_reuses_the_ids_the_source_deleted(tmp_path, qdir) -> None:
    from sketchsearch.gallery.push import push_gallery

    folder = tmp_path / "folder"
    with create_gallery(folder, DIM, model=model()) as store:
        store.add(clustered(6, DIM), items(6))
    with open_gallery(folder, mode="rw") as store:
        store.remove(ids=[4, 5])  # the newest ids
    assert push_gallery(folder, local_ref(qdir)).items == 4
    with open_gallery(local_ref(qdir), mode="rw") as store:
        assert store.add(clustered(1, DIM, seed=9), items(1, start=50)).added == [6]
    with open_gallery(folder, mode="rw") as store:  # as the folder gallery itself does
        assert store.add(clustered(1, DIM, seed=9), items(1, start=50)).added == [6]
