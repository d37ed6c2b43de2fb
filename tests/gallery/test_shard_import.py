"""`sketchsearch gallery import`: galleries from embedding shards, checked against what was written.

Shards are written with the real ``write_shard`` (seeded unit vectors, real SHA-256 digests);
every refusal is shown to depend on its fault: the same shards without it import.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from vectors import clustered, exact_top, model

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import ExitCode
from sketchsearch.gallery import Gallery
from sketchsearch.gallery.commit import CRASH_ENV
from sketchsearch.gallery.errors import GalleryMismatchError, GalleryWriteError
from sketchsearch.gallery.manifest import GallerySource
from sketchsearch.gallery.shard_file import (
    METADATA_KEY,
    READ_BATCH_ROWS,
    ShardHeader,
    ShardRow,
    shard_name,
    write_shard,
)
from sketchsearch.gallery.shard_import import import_shards

DIM = 16
ROOT = "/data/collection"


def rows(start: int, n: int, tag: str = "") -> list[ShardRow]:
    return [
        ShardRow(
            path=f"c{i % 4}/img{i:05d}.png",
            sha256=hashlib.sha256(f"image {i}{tag}".encode()).hexdigest(),
            size=1000 + i,
            label=f"c{i % 4}",
            instance=f"i{i}" if i % 2 else None,
        )
        for i in range(start, start + n)
    ]


def header(n: int, index: int, **changes: object) -> ShardHeader:
    base = ShardHeader(
        model=model("family-a", dim=DIM),
        preprocess={"input_size": 48},
        root=ROOT,
        source=GallerySource(kind="folder"),
        dtype="float32",
        index=index,
        plan="plan-1",
        rows=n,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def write_set(
    folder: Path, vectors: np.ndarray, shard_size: int, first: int = 0, **changes: object
) -> list[ShardRow]:
    """Shards of ``shard_size`` rows holding ``vectors`` (row i is image ``first + i``)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[ShardRow] = []
    for index, start in enumerate(range(0, len(vectors), shard_size)):
        chunk = vectors[start : start + shard_size]
        chunk_rows = rows(first + start, len(chunk))
        shard_header = header(len(chunk), index, **changes)
        write_shard(folder / shard_name(index), shard_header, chunk, chunk_rows)
        written += chunk_rows
    return written


def import_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(cli, ["gallery", "import", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_keeps_every_item_and_vector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vectors = clustered(1500, DIM, seed=1)
    written = write_set(tmp_path / "shards", vectors, shard_size=400)
    code, out, _ = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "g"))
    assert code == ExitCode.OK
    assert "imported 1500 item(s) from 4 shard(s)" in out and "skipped 0 duplicate(s)" in out
    with Gallery.open(tmp_path / "g") as gallery:
        exported = gallery.export_vectors()
        manifest = gallery.manifest
        hits = gallery.search(vectors[:200], k=10)
    assert manifest.model == model("family-a", dim=DIM) and manifest.root == ROOT
    assert manifest.source == GallerySource(kind="folder") and manifest.generation == 1
    assert manifest.max_elements == 1500  # made for the shards' rows, never grown by copying
    by_path = {row.path: (row, i) for i, row in enumerate(exported.items)}
    assert len(by_path) == len(written) == 1500
    for position, row in enumerate(written):
        stored, at = by_path[row.path]
        assert (stored.sha256, stored.label, stored.instance) == (
            row.sha256,
            row.label,
            row.instance,
        )
        np.testing.assert_allclose(exported.vectors[at], vectors[position], atol=1e-6)
    # recall@10 of the imported HNSW index against brute force over the shard vectors
    ids_by_position = np.array([by_path[row.path][1] for row in written])
    exact, exact_scores = exact_top(vectors[:200], vectors, ids_by_position, 10)
    found = [set(exported.ids[exact[q]].tolist()) & set(h.ids.tolist()) for q, h in enumerate(hits)]
    recall = sum(len(f) for f in found) / (200 * 10)
    assert recall >= 0.95
    np.testing.assert_allclose(hits[0].scores, exact_scores[0], atol=1e-4)


def test_duplicates_are_skipped_and_same_content_elsewhere_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vectors = clustered(300, DIM, seed=2)
    write_set(tmp_path / "shards", vectors[:200], shard_size=100)
    # a third shard repeats 50 rows of the second (a rerun's overlap) and adds 100 new ones
    overlap = rows(150, 50) + rows(200, 100)
    write_shard(
        tmp_path / "shards" / shard_name(2),
        header(150, 2, plan="plan-2"),
        np.concatenate([vectors[150:200], vectors[200:300]]),
        overlap,
    )
    # a fourth holds an image already imported, under another name: two files, two items
    copy = [replace(rows(0, 1)[0], path="copies/img00000.png")]
    write_shard(tmp_path / "shards" / shard_name(3), header(1, 3), vectors[:1], copy)
    code, out, _ = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "g"))
    assert code == ExitCode.OK, out
    assert "imported 301 item(s) from 4 shard(s)" in out and "skipped 50 duplicate(s)" in out
    with Gallery.open(tmp_path / "g") as gallery:
        assert gallery.info().live == 301
        assert gallery.digests(["copies/img00000.png", "c0/img00000.png"]) == {
            "copies/img00000.png": copy[0].sha256,
            "c0/img00000.png": copy[0].sha256,
        }


def test_one_path_with_two_contents_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vectors = clustered(200, DIM, seed=3)
    write_set(tmp_path / "shards", vectors, shard_size=100)
    changed = rows(100, 100, tag=" edited")  # the same paths as shard 1, other content
    write_shard(tmp_path / "shards" / shard_name(2), header(100, 2), vectors[100:], changed)
    code, _, err = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "g"))
    assert code == ExitCode.MISMATCH and err.count("\n") == 1
    assert "shard-00002.parquet" in err and "other content" in err
    assert not (tmp_path / "g").exists() and os.listdir(tmp_path) == ["shards"]
    (tmp_path / "shards" / shard_name(2)).unlink()  # without the changed shard it imports
    assert import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "g"))[0] == 0


@pytest.mark.parametrize(
    "changes, what",
    [
        ({"model": model("family-b", dim=DIM)}, "different model families"),
        ({"root": "/elsewhere"}, "collection root"),
        ({"preprocess": {"input_size": 64}}, "preprocessing"),
        ({"source": GallerySource(kind="folder", domain="photo")}, "source"),
    ],
)
def test_shards_of_other_models_or_collections_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, object], what: str
) -> None:
    vectors = clustered(200, DIM, seed=4)
    write_set(tmp_path / "shards", vectors[:100], shard_size=100)
    write_set(tmp_path / "other", vectors[100:], shard_size=100, first=100, **changes)
    os.replace(tmp_path / "other" / shard_name(0), tmp_path / "shards" / shard_name(1))
    code, _, err = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "g"))
    assert code == ExitCode.MISMATCH and what in err and err.count("\n") == 1
    assert not (tmp_path / "g").exists()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _foreign(path: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2, 3]}), path)


def _wrong_dim(path: Path) -> None:
    """The header claims 8-d vectors, the column holds 16-d ones."""
    table = pq.read_table(path)
    claimed = replace(header(100, 1), model=model("family-a", dim=8))
    table = table.replace_schema_metadata({METADATA_KEY: claimed.to_json().encode()})
    pq.write_table(table, path)


def _non_finite_second_batch(path: Path) -> None:
    """Readable headers everywhere; a NaN in a later batch of this shard."""
    table = pq.read_table(path)
    values = np.asarray(table.column("vector").combine_chunks().values).reshape(-1, DIM).copy()
    values[90, 3] = np.nan
    column = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), DIM)
    table = table.set_column(5, "vector", column)
    pq.write_table(table.replace_schema_metadata(table.schema.metadata), path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (_truncate, "not a readable Parquet shard"),
        (_foreign, "without a sketchsearch shard header"),
        (_wrong_dim, "header's dimension 8"),
        (_non_finite_second_batch, "non-finite"),
    ],
)
def test_a_damaged_shard_is_named_and_nothing_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[Path], None], message: str
) -> None:
    vectors = clustered(300, DIM, seed=5)
    write_set(tmp_path / "shards", vectors, shard_size=100)
    damage(tmp_path / "shards" / shard_name(1))
    code = run(
        cli,
        ["gallery", "import", str(tmp_path / "shards"), "--out", str(tmp_path / "g")],
    )
    err = capsys.readouterr().err
    assert code == ExitCode.BAD_INPUT and err.count("\n") == 1, err
    assert "shard-00001.parquet" in err and message in err
    assert sorted(os.listdir(tmp_path)) == ["shards"]  # no gallery, no staging folder left


def test_the_non_finite_shard_fails_mid_import(tmp_path: Path) -> None:
    """The NaN case above is caught while adding (shard 0 was in), not by the header check."""
    vectors = clustered(300, DIM, seed=5)
    write_set(tmp_path / "shards", vectors, shard_size=100)
    _non_finite_second_batch(tmp_path / "shards" / shard_name(1))
    seen: list[int] = []
    with pytest.raises(Exception, match="non-finite"):
        import_shards(
            tmp_path / "shards",
            out=tmp_path / "g",
            batch_rows=50,
            progress=lambda done, _: seen.append(done),
        )
    assert seen == [1] and not (tmp_path / "g").exists()


def test_an_existing_out_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_set(tmp_path / "shards", clustered(100, DIM, seed=6), shard_size=100)
    with Gallery.create(tmp_path / "g", DIM, model=model("family-a", dim=DIM)):
        pass
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    for taken, suggested in (("g", True), ("notes", False)):
        code, _, err = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / taken))
        assert code == ExitCode.USAGE and "already exists" in err
        assert ("--into" in err) == suggested  # only a gallery can take the shards --into
    assert (tmp_path / "notes" / "a.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()  # an empty folder is taken, as `gallery build` takes it
    code, out, _ = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "empty"))
    assert code == ExitCode.OK and "imported 100 item(s)" in out
    assert Gallery.open(tmp_path / "empty").info().live == 100


def test_float16_shards_import_as_unit_float32(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vectors = clustered(200, DIM, seed=7)
    write_set(tmp_path / "shards", vectors, shard_size=100, dtype="float16")
    assert import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "g"))[0] == 0
    with Gallery.open(tmp_path / "g") as gallery:
        exported = gallery.export_vectors()
    assert exported.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(exported.vectors, axis=1), 1.0, atol=1e-6)
    order = [int(row.path.rsplit("img", 1)[1][:5]) for row in exported.items]
    error = np.abs(exported.vectors - vectors[order]).max()
    assert 0 < error < 2e-3  # float16 rounding, no more


def test_into_adds_replaces_and_checks_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vectors = clustered(300, DIM, seed=8)
    write_set(tmp_path / "a", vectors[:200], shard_size=100)
    assert import_cli(capsys, str(tmp_path / "a"), "--out", str(tmp_path / "g"))[0] == 0
    # b: 50 rows already in (skipped), 50 of them with new content (replaced), 100 new
    b_rows = rows(100, 50) + rows(150, 50, tag=" edited") + rows(200, 100)
    (tmp_path / "b").mkdir()
    write_shard(tmp_path / "b" / shard_name(0), header(200, 0), vectors[100:], b_rows)
    code, out, _ = import_cli(capsys, str(tmp_path / "b"), "--into", str(tmp_path / "g"))
    assert code == ExitCode.OK
    assert "imported 100 item(s)" in out and "skipped 50 duplicate(s)" in out
    assert "replaced 50 changed item(s)" in out
    with Gallery.open(tmp_path / "g") as gallery:
        assert (gallery.info().live, gallery.info().deleted) == (300, 50)
        assert gallery.digests(["c2/img00150.png"])["c2/img00150.png"] == b_rows[50].sha256
    write_set(tmp_path / "c", vectors[:10], shard_size=10, model=model("family-b", dim=DIM))
    code, _, err = import_cli(capsys, str(tmp_path / "c"), "--into", str(tmp_path / "g"))
    assert code == ExitCode.MISMATCH and err.count("\n") == 1
    write_set(tmp_path / "d", vectors[:10], shard_size=10, root="/elsewhere")
    code, _, err = import_cli(capsys, str(tmp_path / "d"), "--into", str(tmp_path / "g"))
    assert code == ExitCode.MISMATCH and "/elsewhere" in err


CHILD = textwrap.dedent(
    """
    import sys, time
    from sketchsearch.gallery.shard_import import import_shards

    def progress(done, rows):
        print(f"shard {done}", flush=True)
        time.sleep(60)  # killed here, between shards

    import_shards(sys.argv[1], **{sys.argv[2]: sys.argv[3]}, progress=progress)
    """
)


def _child(
    shards: Path, flag: str, gallery: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(shards), flag, str(gallery)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_kill_mid_import_leaves_no_gallery(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_set(tmp_path / "shards", clustered(300, DIM, seed=9), shard_size=100)
    child = _child(tmp_path / "shards", "out", tmp_path / "g")
    assert child.stdout is not None and child.stdout.readline() == "shard 1\n"
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    assert not (tmp_path / "g").exists()  # only a hidden staging folder, never a gallery
    assert [p.name.startswith(".g.import-") for p in tmp_path.iterdir() if p.name != "shards"] == [
        True
    ]
    code, out, _ = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "g"))
    assert code == ExitCode.OK and "imported 300 item(s)" in out


def test_kill_in_the_commit_of_into_keeps_the_previous_gallery(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vectors = clustered(300, DIM, seed=10)
    write_set(tmp_path / "a", vectors[:100], shard_size=100)
    write_set(tmp_path / "b", vectors[100:], shard_size=100, first=100)
    assert import_cli(capsys, str(tmp_path / "a"), "--out", str(tmp_path / "g"))[0] == 0
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD.replace("time.sleep(60)", "pass"),
            str(tmp_path / "b"),
            "into",
            str(tmp_path / "g"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, CRASH_ENV: "manifest-partial"},
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL and "shard 2" in child.stdout
    with Gallery.open(tmp_path / "g", mode="rw") as gallery:
        assert (gallery.info().live, gallery.info().generation) == (100, 1)
    assert import_cli(capsys, str(tmp_path / "b"), "--into", str(tmp_path / "g"))[0] == 0
    assert Gallery.open(tmp_path / "g").info().live == 300


def test_no_shards_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "shards").mkdir()
    code, _, err = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "g"))
    assert code == ExitCode.USAGE and "no shards" in err
    code, _, err = import_cli(capsys, str(tmp_path / "shards"))
    assert code == ExitCode.USAGE and "--out" in err


def test_embed_then_import_retrieves_as_gallery_build_does(
    tiny_onnx: Path, tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real `sketchsearch embed` makes the shards; `retrieve` answers the same against the
    imported gallery as against `gallery build` of the same images."""
    import json
    import shutil

    from sketchsearch.cli.retrieve_command import retrieve

    engine = Path(shutil.copy(tiny_onnx, tmp_path / "model.onnx"))
    photos = tiny_run.parent / "data" / "photo" / "tx_000000000000"
    sketches = sorted((tiny_run.parent / "data" / "sketch" / "tx_000000000000").rglob("*.png"))
    built, imported, shards = tmp_path / "built", tmp_path / "imported", tmp_path / "shards"
    model_and_images = ["--engine", str(engine), "--images", str(photos)]
    embed = ["embed", *model_and_images, "--out", str(shards), "--shard-size", "10"]
    assert run(cli, embed) == ExitCode.OK
    assert len(list(shards.glob("shard-*.parquet"))) == 4  # 36 photos
    code, out, _ = import_cli(capsys, str(shards), "--out", str(imported))
    assert code == ExitCode.OK and "imported 36 item(s) from 4 shard(s)" in out
    build = ["gallery", "build", *model_and_images, "--out", str(built), "--quiet", "--no-default"]
    assert run(cli, build) == ExitCode.OK
    capsys.readouterr()

    def answers(gallery: Path) -> list[list[tuple[str, str, float]]]:
        queries = [arg for q in sketches[::7] for arg in ("--query", str(q))]
        args = ["--engine", str(engine), "--index", str(gallery), "-k", "5", *queries, "--json"]
        code = run(retrieve, args)
        assert code == ExitCode.OK
        lines = capsys.readouterr().out.splitlines()
        return [
            [(r["path"], r["sha256"], round(r["score"], 4)) for r in json.loads(line)["results"]]
            for line in lines
            if line.strip()
        ]

    from_build = answers(built)
    assert len(from_build) == len(sketches[::7]) >= 5
    assert answers(imported) == from_build
    with Gallery.open(built) as a, Gallery.open(imported) as b:
        assert a.manifest.model == b.manifest.model and a.manifest.root == b.manifest.root


def test_dot_and_a_symlink_as_out_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_set(tmp_path / "shards", clustered(100, DIM, seed=11), shard_size=100)
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    monkeypatch.chdir(tmp_path / "empty")
    for out, message in ((".", "name a new folder"), ("..", "name a new folder")):
        code, _, err = import_cli(capsys, str(tmp_path / "shards"), "--out", out)
        assert code == ExitCode.USAGE and message in err and err.count("\n") == 1, err
    code, _, err = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "link"))
    assert code == ExitCode.USAGE and "symbolic link" in err and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["empty", "link", "shards"]
    assert os.listdir(tmp_path / "empty") == []  # no staging folder: refused before any work
    code, out, _ = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "empty"))
    assert code == ExitCode.OK and "imported 100 item(s)" in out


def test_a_failed_rename_keeps_the_finished_gallery_and_says_where(tmp_path: Path) -> None:
    write_set(tmp_path / "shards", clustered(200, DIM, seed=12), shard_size=100)
    (tmp_path / "g").mkdir()

    def someone_writes_into_out(done: int, _: int) -> None:
        if done == 2:  # after the last shard, before the rename: ``out`` is no longer empty
            (tmp_path / "g" / "theirs.txt").write_text("theirs")

    with pytest.raises(GalleryWriteError, match="could not be moved there") as caught:
        import_shards(tmp_path / "shards", out=tmp_path / "g", progress=someone_writes_into_out)
    staging = [p for p in tmp_path.iterdir() if p.name.startswith(".g.import-")]
    assert len(staging) == 1 and str(staging[0]) in str(caught.value)
    assert Gallery.open(staging[0]).info().live == 200  # the import's work is not lost
    assert os.listdir(tmp_path / "g") == ["theirs.txt"]


def test_a_killed_imports_staging_folder_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_set(tmp_path / "shards", clustered(100, DIM, seed=13), shard_size=100)
    (tmp_path / ".g.import-0badf00d").mkdir()
    code, out, _ = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "g"))
    assert code == ExitCode.OK and ".g.import-0badf00d is left by a killed import" in out
    code, out, _ = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "h"))
    assert code == ExitCode.OK and "killed import" not in out


def _run_file(folder: Path, shards: int) -> None:
    (folder / "embed-run.json").write_text(json.dumps({"plan": "plan-1", "shards": shards}))


def test_a_shard_the_run_planned_but_missing_is_refused_unless_partial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shards = tmp_path / "shards"
    write_set(shards, clustered(400, DIM, seed=14), shard_size=100)
    _run_file(shards, 4)
    failed = [{"path": f"c0/bad{i}.png", "problem": "cannot decode"} for i in range(3)]
    (shards / "failures-00001.jsonl").write_text("".join(json.dumps(f) + "\n" for f in failed))
    code, out, _ = import_cli(capsys, str(shards), "--out", str(tmp_path / "whole"))
    assert code == ExitCode.OK and "PARTIAL" not in out
    assert "3 image(s) failed to embed" in out
    (shards / shard_name(2)).unlink()  # the run did not finish shard 2
    code, _, err = import_cli(capsys, str(shards), "--out", str(tmp_path / "g"))
    assert code == ExitCode.USAGE and err.count("\n") == 1
    assert "planned 4 shard(s); shard 2 missing" in err and "--partial" in err
    assert not (tmp_path / "g").exists()
    code, out, _ = import_cli(capsys, str(shards), "--out", str(tmp_path / "g"), "--partial")
    assert code == ExitCode.OK and "imported 300 item(s)" in out
    assert "PARTIAL: 1 of the run's 4 shard(s) missing (shard 2)" in out
    _run_file(shards, 3)  # a run file that is no run's: named, not guessed around
    (shards / "embed-run.json").write_text("{")
    code, _, err = import_cli(capsys, str(shards), "--out", str(tmp_path / "h"), "--partial")
    assert code == ExitCode.BAD_INPUT and "embed-run.json" in err


def test_a_shard_rewritten_mid_import_is_refused(tmp_path: Path) -> None:
    """Any header change is caught, not only the model family or root: here preprocessing."""
    vectors = clustered(200, DIM, seed=15)
    write_set(tmp_path / "shards", vectors, shard_size=100)

    def rewrite_the_next_shard(done: int, _: int) -> None:
        if done == 1:
            changed = header(100, 1, preprocess={"input_size": 64})
            write_shard(tmp_path / "shards" / shard_name(1), changed, vectors[100:], rows(100, 100))

    with pytest.raises(GalleryMismatchError, match="changed while it was being imported"):
        import_shards(tmp_path / "shards", out=tmp_path / "g", progress=rewrite_the_next_shard)
    assert not (tmp_path / "g").exists()


def test_into_a_split_gallery_records_it_mixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split = GallerySource(kind="split", domain="photo", split_fingerprint="f" * 16, part="test")
    with Gallery.create(
        tmp_path / "g", DIM, model=model("family-a", dim=DIM), root=ROOT, source=split
    ):
        pass
    write_set(tmp_path / "shards", clustered(50, DIM, seed=16), shard_size=50)
    assert import_cli(capsys, str(tmp_path / "shards"), "--into", str(tmp_path / "g"))[0] == 0
    source = Gallery.open(tmp_path / "g").manifest.source
    assert source is not None and (source.kind, source.domain) == ("mixed", None)


def test_a_failed_import_into_qdrant_leaves_nothing_to_block_a_rerun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("qdrant_client")
    from sketchsearch.gallery.store_table import open_gallery

    ref = f"qdrant+local://{tmp_path / 'qdrant'}?collection=photos"
    vectors = clustered(300, DIM, seed=17)
    write_set(tmp_path / "shards", vectors, shard_size=100)
    _non_finite_second_batch(tmp_path / "shards" / shard_name(1))
    code, _, err = import_cli(capsys, str(tmp_path / "shards"), "--out", ref)
    assert code == ExitCode.BAD_INPUT and "non-finite" in err and err.count("\n") == 1
    write_set(tmp_path / "shards", vectors, shard_size=100)  # the shard mended: a rerun works
    code, out, err = import_cli(capsys, str(tmp_path / "shards"), "--out", ref)
    assert code == ExitCode.OK, err
    assert "imported 300 item(s)" in out
    with open_gallery(ref) as gallery:
        assert (gallery.manifest.live, gallery.manifest.generation) == (300, 0)


def test_a_large_shard_is_written_in_row_groups_of_one_read_batch(tmp_path: Path) -> None:
    """So that reading a batch decodes one row group, not the whole shard."""
    n = READ_BATCH_ROWS + 100
    write_set(tmp_path / "shards", clustered(n, 4, seed=18), shard_size=n, model=model(dim=4))
    metadata = pq.ParquetFile(tmp_path / "shards" / shard_name(0)).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [READ_BATCH_ROWS, 100]


def test_a_zero_vector_is_the_shards_fault_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Row checks run before ``add``: what the shard holds is blamed on it by name (exit 3),
    while an error of the store itself during ``add`` is left as the store reported it."""
    vectors = clustered(200, DIM, seed=19)
    vectors[150] = 0.0
    write_set(tmp_path / "shards", vectors, shard_size=100)
    code, _, err = import_cli(capsys, str(tmp_path / "shards"), "--out", str(tmp_path / "g"))
    assert code == ExitCode.BAD_INPUT and err.count("\n") == 1
    assert "shard-00001.parquet" in err and "zero vector" in err


def test_float16_rows_are_unit_length_in_an_ip_gallery(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ip gallery stores vectors as given (cosine ones are normalised by the store): the
    widened float16 rows must be made unit length again, or every score is off by ~1e-4."""
    with Gallery.create(tmp_path / "g", DIM, "ip", model=model("family-a", dim=DIM), root=ROOT):
        pass
    write_set(tmp_path / "shards", clustered(200, DIM, seed=20), shard_size=100, dtype="float16")
    assert import_cli(capsys, str(tmp_path / "shards"), "--into", str(tmp_path / "g"))[0] == 0
    with Gallery.open(tmp_path / "g") as gallery:
        norms = np.linalg.norm(gallery.export_vectors().vectors, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=2e-6)


def test_into_two_shards_disagreeing_about_a_path_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As into a new gallery: across shards, not only within one batch; the same change in
    two shards is one replacement and one duplicate, not two replacements."""
    vectors = clustered(300, DIM, seed=21)
    write_set(tmp_path / "a", vectors[:100], shard_size=100)
    assert import_cli(capsys, str(tmp_path / "a"), "--out", str(tmp_path / "g"))[0] == 0
    same = tmp_path / "same"
    same.mkdir()
    for index in (0, 1):  # both: 10 paths of the gallery with new content, the same
        write_shard(
            same / shard_name(index), header(10, index), vectors[100:110], rows(0, 10, " v2")
        )
    code, out, _ = import_cli(capsys, str(same), "--into", str(tmp_path / "g"))
    assert code == ExitCode.OK and "replaced 10 changed item(s)" in out
    assert "skipped 10 duplicate(s)" in out
    clash = tmp_path / "clash"
    clash.mkdir()
    write_shard(clash / shard_name(0), header(10, 0), vectors[110:120], rows(0, 10, " v3"))
    write_shard(clash / shard_name(1), header(10, 1), vectors[120:130], rows(0, 10, " v4"))
    code, _, err = import_cli(capsys, str(clash), "--into", str(tmp_path / "g"))
    assert code == ExitCode.MISMATCH and "shard-00001.parquet" in err and "other content" in err
    with Gallery.open(tmp_path / "g") as gallery:  # nothing of the refused import committed
        assert (
            gallery.digests(["c0/img00000.png"])["c0/img00000.png"] == rows(0, 1, " v2")[0].sha256
        )
