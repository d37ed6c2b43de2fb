"""`embed --runner ray` on a local Ray instance: the same shards as the local runner (and as
`gallery build`) with a real exported model, two actors, errors from actors as one line, and
a one-line refusal where Ray is missing. One Ray session serves the module (~10 s to start)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from colour_engine import colour_onnx

from sketchsearch.data.errors import ExitCode, SketchsearchError, UsageError
from sketchsearch.data.synth import SynthConfig, generate
from sketchsearch.gallery.shard_file import list_shards, read_shard
from sketchsearch.runtime.embed_run import EmbedConfig, run_embed
from sketchsearch.runtime.engines.table import open_engine
from sketchsearch.runtime.gallery_build import build_gallery, folder_sources

ray = pytest.importorskip("ray")


def test_run_embed_starts_and_stops_its_own_local_ray(monkeypatch, capfd, tmp_path) -> None:
    """First in the module, before the shared session: without --ray-address a new local Ray
    is started (not RAY_ADDRESS's), laid out by itself (workers=None), and stopped after; Ray's
    "constructor arguments in the object store" line is filtered, our progress lines are not."""
    from colour_engine import solid

    from sketchsearch.runtime.embed_ray_cluster import plan_layout
    from sketchsearch.runtime.machine import available_cpus

    assert not ray.is_initialized()
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing listens there
    folder = tmp_path / "photos"
    for i in range(3):
        solid(folder / "red" / f"r{i}.png", (255, i, 0))
    model = colour_onnx(tmp_path / "colour.onnx")
    config = EmbedConfig(engine=model, out=tmp_path / "shards", shard_size=2, runner="ray")
    report = run_embed(
        config, folder_sources(folder), folder, say=lambda line: print(line, file=sys.stderr)
    )
    cpus = available_cpus()
    assert (report.embedded, report.shards_written) == (3, 2)
    assert report.workers == plan_layout(cpus, cpus, None).actors
    assert not ray.is_initialized()
    printed = capfd.readouterr().err
    assert "shard 1: 1 embedded" in printed
    assert "constructor arguments in the object store" not in printed


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """One local Ray for the module; ``run_embed`` joins it instead of starting its own."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 2**20,
             logging_level="ERROR", log_to_driver=False)  # fmt: skip
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic photos (4 categories × 5) at 48 px, plus one file that is not an image."""
    root = tmp_path_factory.mktemp("synth")
    generate(root, SynthConfig(categories=4, photos_per_category=5, sketches_per_photo=1,
                               size=48, seed=3))  # fmt: skip
    photo = root / "photo"
    folder = next(p for p in photo.iterdir() if p.is_dir())  # the variant folder
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    return folder


def rows_of(folder: Path) -> dict[str, tuple[np.ndarray, str]]:
    found = {}
    for shard in list_shards(folder):
        for _, vectors, rows in read_shard(shard):
            found.update({r.path: (v, r.sha256) for v, r in zip(vectors, rows, strict=True)})
    return found


def failure_records(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.glob("failures-*.jsonl")}


def test_ray_runner_writes_the_local_runners_shards(ray_session, photos, tiny_onnx, tmp_path):
    sources = folder_sources(photos)
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    here = run_embed(EmbedConfig(engine=tiny_onnx, out=local, shard_size=6), sources, photos)
    config = EmbedConfig(engine=tiny_onnx, out=on_ray, shard_size=6, runner="ray", workers=2)
    report = run_embed(config, sources, photos)
    assert (report.workers, report.shards_written, report.embedded) == (2, 4, 20)
    assert report.failed == here.failed == 1
    assert failure_records(on_ray) == failure_records(local) != {}
    assert [p.name for p in list_shards(on_ray)] == [p.name for p in list_shards(local)]
    ours, theirs = rows_of(on_ray), rows_of(local)
    assert ours.keys() == theirs.keys() and len(ours) == 20
    with open_engine(tiny_onnx, domain="gallery") as engine:
        build_gallery(engine, tmp_path / "gallery", photos, sources)
    from sketchsearch.gallery.store_table import open_gallery

    with open_gallery(tmp_path / "gallery") as gallery:
        exported = gallery.export_vectors()
    for item, vector in zip(exported.items, exported.vectors, strict=True):
        np.testing.assert_allclose(ours[item.path][0], vector, rtol=0, atol=1e-5)
        np.testing.assert_allclose(theirs[item.path][0], vector, rtol=0, atol=1e-5)
        assert ours[item.path][1] == item.sha256
    again = run_embed(config, sources, photos)
    assert (again.embedded, again.shards_skipped, again.failed_before) == (0, 4, 1)


def test_an_actors_error_reaches_the_driver_as_our_one_line_error(ray_session, tmp_path):
    from colour_engine import solid

    folder = tmp_path / "photos"
    solid(folder / "red" / "r.png", (255, 0, 0))
    model = colour_onnx(tmp_path / "colour.onnx")
    config = EmbedConfig(engine=model, out=tmp_path / "shards", runner="ray", provider="nope")
    with pytest.raises(SketchsearchError, match="--provider nope: not available"):
        run_embed(config, folder_sources(folder), folder)


def test_ray_missing_is_a_one_line_usage_error(tmp_path) -> None:
    from colour_engine import solid

    folder = tmp_path / "photos"
    solid(folder / "red" / "r.png", (255, 0, 0))
    model = colour_onnx(tmp_path / "colour.onnx")
    blocked = (
        "import sys; sys.modules['ray'] = None; sys.modules['ray.data'] = None; "
        "from sketchsearch.cli.main import main; sys.exit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked, "embed", "--engine", str(model), "--images",
         str(folder), "--out", str(tmp_path / "shards"), "--runner", "ray"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == int(ExitCode.USAGE), done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: --runner ray needs Ray Data: pip install 'sketchsearch[ray]'")
    assert not (tmp_path / "shards").exists()  # refused before the folder is made


def test_a_workers_own_error_is_one_line_naming_the_shard_and_node(ray_session, tmp_path):
    from colour_engine import solid

    from sketchsearch.runtime.embed_ray_listing import EmbedWorkerError

    folder = tmp_path / "photos"
    for i in range(4):
        solid(folder / "red" / f"r{i}.png", (255, i, 0))
    model = colour_onnx(tmp_path / "colour.onnx")
    out = tmp_path / "shards"
    (out / "shard-00001.parquet").mkdir(parents=True)  # the rename into place fails (OSError)
    config = EmbedConfig(engine=model, out=out, shard_size=2, runner="ray", workers=5)
    with pytest.raises(EmbedWorkerError) as failed:
        run_embed(config, folder_sources(folder), folder)
    (line,) = str(failed.value).splitlines()
    assert line.startswith("shard 1 on Ray node ") and "IsADirectoryError" in line
    assert "--out must be on a file system every node sees" in line
    assert (out / "embed-listing.jsonl").exists()  # the actors read their shards' files there
    (out / "shard-00001.parquet").rmdir()
    report = run_embed(config, folder_sources(folder), folder)  # a rerun does the rest
    assert report.workers == 2  # 5 asked, 2 CPUs: one actor per CPU at most
    assert report.shards_written + report.shards_skipped == 2 and report.embedded >= 2
    assert not (out / "embed-listing.jsonl").exists()  # removed once every shard is written


def test_ray_address_with_ray_already_joined_is_refused(ray_session, tmp_path) -> None:
    from colour_engine import solid

    solid(tmp_path / "photos" / "r.png", (255, 0, 0))
    config = EmbedConfig(engine=colour_onnx(tmp_path / "colour.onnx"), out=tmp_path / "shards",
                         runner="ray", ray_address="ray://elsewhere:10001")  # fmt: skip
    with pytest.raises(UsageError, match="already joined a Ray instance"):
        run_embed(config, folder_sources(tmp_path / "photos"), tmp_path / "photos")


def test_a_shard_the_driver_cannot_see_is_refused(tmp_path) -> None:
    """A worker whose --out is its own disk reports a shard the driver does not have."""
    from colour_engine import ColourEngine

    from sketchsearch.gallery.manifest import GallerySource
    from sketchsearch.gallery.shard_file import write_shard
    from sketchsearch.runtime.embed_job import make_plan
    from sketchsearch.runtime.embed_ray import check_written

    plan = make_plan(ColourEngine().card, [], tmp_path, GallerySource("folder"))
    refused = (
        "shard-00003.parquet: written by a Ray worker on n1, but is missing on this machine: "
        "--out must be on a file system every node sees"
    )
    with pytest.raises(UsageError, match=refused):
        check_written(tmp_path, plan.spec, 3, "n1")
    other = make_plan(ColourEngine().card, [], tmp_path / "x", GallerySource("folder"))
    write_shard(tmp_path / "shard-00003.parquet", other.spec.header(3, 0), np.zeros((0, 3)), [])
    with pytest.raises(UsageError, match="is another run's"):
        check_written(tmp_path, plan.spec, 3, "n1")
    write_shard(tmp_path / "shard-00003.parquet", plan.spec.header(3, 0), np.zeros((0, 3)), [])
    check_written(tmp_path, plan.spec, 3, "n1")


@pytest.mark.parametrize(
    ("cpus", "largest", "workers", "expected"),
    [
        (2, 2, None, (1, 2)),
        (16, 16, None, (4, 4)),
        (16, 8, 1, (1, 8)),  # 2 nodes of 8: one actor cannot have all 16
        (4, 2, None, (2, 2)),  # 2 nodes of 2: capped actors, so more of them
        (2, 2, 5, (2, 1)),  # at most one actor per CPU
        (12, 8, 2, (2, 6)),
    ],
)
def test_actor_layout_fits_the_largest_node(cpus, largest, workers, expected) -> None:
    from sketchsearch.runtime.embed_ray_cluster import plan_layout

    layout = plan_layout(cpus, largest, workers)
    assert (layout.actors, layout.cpus) == expected


def test_an_onnx_model_with_external_data_is_not_shipped_as_bytes(tmp_path) -> None:
    """Its bytes alone are not the model: the actors open it by its path instead."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from sketchsearch.runtime.embed_ray import has_external_data

    weight = numpy_helper.from_array(np.ones((3,), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save_model(model, str(tmp_path / "whole.onnx"))
    external = {"all_tensors_to_one_file": True, "location": "split.data", "size_threshold": 0}
    onnx.save_model(model, str(tmp_path / "split.onnx"), save_as_external_data=True, **external)
    assert (tmp_path / "split.data").exists()
    assert has_external_data(tmp_path / "split.onnx")
    assert not has_external_data(tmp_path / "whole.onnx")
