"""`sketchsearch embed` with the local runner: shards equal to the pipeline's and `gallery
build`'s vectors, per-file failures recorded per shard, resumable after kill -9, reruns that
embed nothing, and folders of another plan or model family refused before any embedding."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from colour_engine import ColourEngine, colour_onnx, colour_split, solid

from sketchsearch.data.errors import ExitCode, UsageError
from sketchsearch.gallery.errors import GalleryCorruptError
from sketchsearch.gallery.shard_file import list_shards, read_header, read_shard
from sketchsearch.gallery.store_table import open_gallery
from sketchsearch.runtime.embed_run import EmbedConfig, run_embed
from sketchsearch.runtime.engines.table import open_engine
from sketchsearch.runtime.gallery_build import (
    FOLDER_SOURCE,
    folder_sources,
    split_source,
    split_sources,
)
from sketchsearch.runtime.model_card import read_onnx_card
from sketchsearch.runtime.pipeline import embed_paths
from sketchsearch.runtime.retriever import model_ref

TIMEOUT_S = 120


def cli(*args: str | Path, check_rc: int | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sketchsearch.cli", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if check_rc is not None:
        assert done.returncode == check_rc, done.stdout + done.stderr
    return done


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    """15 colour photos in two labels, a text file named .png, and the colour model."""
    folder = tmp_path / "photos"
    for i in range(7):
        solid(folder / "red" / f"r{i}.png", (255, 20 * i, 0))
        solid(folder / "green" / f"g{i}.png", (0, 255, 20 * i))
    solid(folder / "loose.png", (10, 10, 200))
    (folder / "green" / "bad.png").write_text("not a png")
    return {"photos": folder, "engine": colour_onnx(tmp_path / "colour.onnx")}


def shard_rows(folder: Path) -> dict[str, tuple[np.ndarray, dict[str, object]]]:
    """path -> (vector, the rest of its row) over every shard in ``folder``."""
    found = {}
    for shard in list_shards(folder):
        for _, vectors, rows in read_shard(shard):
            for vector, row in zip(vectors, rows, strict=True):
                found[row.path] = (
                    vector,
                    {"sha": row.sha256, "size": row.size, "label": row.label},
                )
    return found


def test_local_shards_hold_the_pipelines_vectors_and_the_rows_facts(photos, tmp_path) -> None:
    out = tmp_path / "shards"
    sources = folder_sources(photos["photos"])
    config = EmbedConfig(engine=photos["engine"], out=out, shard_size=4)
    report = run_embed(config, sources, photos["photos"])
    assert (report.images, report.shards, report.embedded, report.failed) == (16, 4, 15, 1)
    assert [p.name for p in list_shards(out)] == [f"shard-0000{i}.parquet" for i in range(4)]
    rows = shard_rows(out)
    assert len(rows) == 15 and "green/bad.png" not in rows
    with open_engine(photos["engine"], domain="gallery") as engine:
        direct = embed_paths(engine, [s.file for s in sources])
    for position, vector in zip(direct.done, direct.vectors, strict=True):
        source = sources[position]
        stored, facts = rows[source.path]
        np.testing.assert_allclose(stored, vector, rtol=0, atol=1e-6)
        data = source.file.read_bytes()
        assert facts == {
            "sha": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "label": None if source.path == "loose.png" else source.path.split("/")[0],
        }
    header = read_header(out / "shard-00002.parquet")
    card = read_onnx_card(photos["engine"])
    assert (header.model, header.preprocess) == (model_ref(card), card.preprocess.to_dict())
    assert (header.root, header.source, header.index, header.rows) == (
        str(photos["photos"].resolve()),
        FOLDER_SOURCE,
        2,
        4,
    )
    (failure,) = [json.loads(line) for line in (out / "failures-00000.jsonl").open()]
    assert failure["path"] == "green/bad.png" and "not an image" in failure["problem"]


def test_cli_equals_gallery_build_and_a_rerun_embeds_nothing(photos, tmp_path) -> None:
    out, gallery = tmp_path / "shards", tmp_path / "gallery"
    common = ("--engine", photos["engine"], "--images", photos["photos"])
    first = cli("embed", *common, "--out", out, "--shard-size", "5", check_rc=1)
    assert "15 embedded in 4 shards" in first.stdout and "failed 1" in first.stdout
    assert "failures-" in first.stdout
    cli("gallery", "build", *common, "--out", gallery, "--no-default", check_rc=1)
    with open_gallery(gallery) as built:
        exported = built.export_vectors()
    rows = shard_rows(out)
    assert {item.path for item in exported.items} == set(rows)
    for item, vector in zip(exported.items, exported.vectors, strict=True):
        np.testing.assert_allclose(rows[item.path][0], vector, rtol=0, atol=1e-6)
        assert rows[item.path][1]["sha"] == item.sha256
    stamps = {p: p.stat().st_mtime_ns for p in list_shards(out)}
    again = cli("embed", *common, "--out", out, "--shard-size", "5", check_rc=1)
    assert "0 embedded in 0 shards, 4 shards already done" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in list_shards(out)} == stamps


def test_float16_shards_hold_the_vectors_at_half_precision(photos, tmp_path) -> None:
    sources = folder_sources(photos["photos"])
    full, half = tmp_path / "f32", tmp_path / "f16"
    run_embed(EmbedConfig(engine=photos["engine"], out=full), sources, photos["photos"])
    config = EmbedConfig(engine=photos["engine"], out=half, dtype="float16")
    run_embed(config, sources, photos["photos"])
    ((header, vectors, _),) = read_shard(list_shards(half)[0])
    assert header.dtype == "float16"
    exact = np.stack([v for v, _ in shard_rows(full).values()])
    assert np.abs(vectors - exact).max() < 1e-3  # float16 keeps ~3 digits
    assert not np.array_equal(vectors, exact)  # and it did round


def test_special_truncated_and_all_failed_shards_are_recorded(photos, tmp_path) -> None:
    folder = photos["photos"]
    whole = (folder / "red" / "r1.png").read_bytes()
    (folder / "red" / "r1.png").write_bytes(whole[: len(whole) // 2])  # a truncated PNG
    (folder / "red" / "r2.png").unlink()
    os.mkfifo(folder / "red" / "r2.png")  # a FIFO: must not block the run
    listing = tmp_path / "files.txt"  # a folder scan skips a FIFO; a list names it
    listing.write_text("\n".join(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")))
    out = tmp_path / "shards"
    done = cli("embed", "--engine", photos["engine"], "--list", listing, "--root", folder,
               "--out", out, "--shard-size", "2", check_rc=1)  # fmt: skip
    failures = {}
    for path in out.glob("failures-*.jsonl"):
        failures.update({f["path"]: f["problem"] for f in map(json.loads, path.open())})
    assert set(failures) == {"green/bad.png", "red/r1.png", "red/r2.png"}, done.stdout
    assert "FIFO" in failures["red/r2.png"]
    # red/r1.png and red/r2.png are 10th and 11th of the sorted paths: shard 5 at two a shard,
    # written with no rows, so that a rerun does not retry them forever.
    empty = out / "shard-00005.parquet"
    assert (read_header(empty).rows, list(read_shard(empty))) == (0, [])
    assert "failed 3" in done.stdout


def test_a_run_killed_after_its_first_shard_resumes_to_the_same_shards(photos, tmp_path) -> None:
    folder = photos["photos"]
    for i in range(200):  # enough shards that the run is still going when the first appears,
        solid(folder / "blue" / f"b{i:03d}.png", (i, 0, 255))  # even on a loaded machine
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    args = ("embed", "--engine", photos["engine"], "--images", folder, "--shard-size", "2",
            "--batch-size", "1", "--workers", "1", "--quiet")  # fmt: skip
    command = [sys.executable, "-m", "sketchsearch.cli", *map(str, args), "--out", str(resumed)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + TIMEOUT_S
    while not list((resumed).glob("shard-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_with = len(list_shards(resumed))
    assert 1 <= killed_with < 108, "the run finished before it was killed: add images"
    again = cli(*args, "--out", resumed, check_rc=1)
    assert f"{killed_with} shards already done" in again.stdout
    cli(*args, "--out", whole, check_rc=1)
    assert [p.name for p in list_shards(resumed)] == [p.name for p in list_shards(whole)]
    assert not [p for p in resumed.iterdir() if p.name.endswith(".tmp")]
    ours, theirs = shard_rows(resumed), shard_rows(whole)
    assert ours.keys() == theirs.keys() and len(ours) == 215
    for path, (vector, facts) in theirs.items():
        np.testing.assert_allclose(ours[path][0], vector, rtol=0, atol=1e-6)
        assert ours[path][1] == facts


def test_another_plan_is_refused_and_restart_starts_over(photos, tmp_path) -> None:
    out = tmp_path / "shards"
    common = ("embed", "--engine", photos["engine"], "--images", photos["photos"], "--out", out)
    cli(*common, "--shard-size", "4", check_rc=1)
    refused = cli(*common, "--shard-size", "5", check_rc=int(ExitCode.USAGE))
    assert "holds another embed run" in refused.stderr and "--restart" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert len(list_shards(out)) == 4  # nothing touched
    cli(*common, "--shard-size", "5", "--restart", check_rc=1)
    # 16 images, 5 a shard (green/bad.png, first, fails): 4, 5, 5, 1 rows (3, 4, 4, 4 before)
    headers = [read_header(p) for p in list_shards(out)]
    assert [h.rows for h in headers] == [4, 5, 5, 1]
    plan = json.loads((out / "embed-run.json").read_text())["plan"]
    assert {h.plan for h in headers} == {plan}
    assert len(shard_rows(out)) == 15


def test_shards_of_another_model_family_are_refused_before_embedding(photos, tmp_path) -> None:
    from sketchsearch.gallery.shard_file import write_shard
    from sketchsearch.runtime.embed_job import make_plan

    out = tmp_path / "shards"
    out.mkdir()
    card = read_onnx_card(photos["engine"])
    other = dataclasses.replace(card, family="f" * 64)
    plan = make_plan(other, folder_sources(photos["photos"]), photos["photos"], FOLDER_SOURCE)
    write_shard(out / "shard-00007.parquet", plan.spec.header(7, 0), np.zeros((0, 3)), [])
    done = cli("embed", "--engine", photos["engine"], "--images", photos["photos"],
               "--out", out, check_rc=int(ExitCode.MISMATCH))  # fmt: skip
    assert "different model families" in done.stderr
    assert [p.name for p in list_shards(out)] == ["shard-00007.parquet"]
    assert not (out / "embed-run.json").exists()


def test_list_paths_outside_the_root_fail_and_the_rest_are_embedded(photos, tmp_path) -> None:
    folder = photos["photos"]
    outside = solid(tmp_path / "elsewhere" / "x.png", (1, 2, 3))
    listing = folder / "files.txt"
    listing.write_text(f"red/r0.png\n# a comment\n\n{folder / 'green' / 'g1.png'}\n{outside}\n")
    out = tmp_path / "shards"
    done = cli("embed", "--engine", photos["engine"], "--list", listing, "--out", out,
               check_rc=1)  # fmt: skip
    assert "2 embedded" in done.stdout and "failed 1" in done.stdout
    assert set(shard_rows(out)) == {"red/r0.png", "green/g1.png"}
    assert shard_rows(out)["red/r0.png"][1]["label"] == "red"
    (refused,) = map(json.loads, (out / "failures-listing.jsonl").open())
    assert refused["path"] == str(outside) and "not under the root" in refused["problem"]


def test_a_splits_part_keeps_its_labels_and_records_the_split(tmp_path) -> None:
    part = colour_split(tmp_path)
    model = colour_onnx(tmp_path / "colour.onnx")
    config = EmbedConfig(engine=model, out=tmp_path / "shards")
    report = run_embed(config, split_sources(part, "photo"), part.root, split_source(part, "photo"))
    assert (report.embedded, report.failed) == (4, 0)
    ((header, _, rows),) = read_shard(tmp_path / "shards" / "shard-00000.parquet")
    assert header.source == split_source(part, "photo") and header.source.kind == "split"
    expected = {(i.path, i.category, i.instance) for i in part.items("photo")}
    assert {(r.path, r.label, r.instance) for r in rows} == expected


# --- review fixes -------------------------------------------------------------------------


class ScaledColourEngine(ColourEngine):
    """The colour engine, with a hand-picked output for some colours: NaN for pure blue and
    values beyond float16's range for pure green (as a model could give for one image)."""

    def embed(self, images: np.ndarray) -> np.ndarray:
        vectors = super().embed(images)
        colours = images.reshape(len(images), -1, 3).mean(axis=1)
        vectors[np.all(colours == (0, 0, 255), axis=1)] = np.nan
        vectors[np.all(colours == (0, 255, 0), axis=1)] *= 1e5
        return vectors


class DeletingColourEngine(ColourEngine):
    """The colour engine, deleting every file once its batch was read: a file removed while
    the run goes on. Its row must still say how many bytes were hashed."""

    def __init__(self, files: list[Path]) -> None:
        super().__init__()
        self.files = files

    def embed(self, images: np.ndarray) -> np.ndarray:
        for file in self.files:
            file.unlink(missing_ok=True)
        return super().embed(images)


def one_shard(
    engine: ColourEngine,
    folder: Path,
    out: Path,
    dtype: str = "float32",
    batch_size: int | None = None,
):
    from sketchsearch.runtime.embed_job import make_plan
    from sketchsearch.runtime.embed_shard import embed_shard

    sources = folder_sources(folder)
    plan = make_plan(engine.card, sources, folder, FOLDER_SOURCE, dtype=dtype)
    out.mkdir(parents=True, exist_ok=True)
    return embed_shard(engine, plan.spec, 0, plan.shard_sources(0), out, batch_size=batch_size)


def test_a_changed_root_with_the_same_names_is_another_plan(tmp_path) -> None:
    model = colour_onnx(tmp_path / "colour.onnx")
    for version, green in (("v1", 0), ("v2", 200)):
        for i in range(3):
            solid(tmp_path / version / "red" / f"r{i}.png", (255, green, i))
    out = tmp_path / "shards"
    config = EmbedConfig(engine=model, out=out)
    run_embed(config, folder_sources(tmp_path / "v1"), tmp_path / "v1")
    before = shard_rows(out)
    with pytest.raises(UsageError, match=r"holds another embed run .*under .*v1"):
        run_embed(config, folder_sources(tmp_path / "v2"), tmp_path / "v2")
    assert {p: r[1]["sha"] for p, r in shard_rows(out).items()} == {
        p: r[1]["sha"] for p, r in before.items()
    }
    report = run_embed(
        dataclasses.replace(config, restart=True), folder_sources(tmp_path / "v2"), tmp_path / "v2"
    )
    assert report.embedded == 3
    v2 = tmp_path / "v2" / "red" / "r0.png"
    assert shard_rows(out)["red/r0.png"][1]["sha"] == hashlib.sha256(v2.read_bytes()).hexdigest()


def test_restart_deletes_only_embeds_own_files(photos, tmp_path) -> None:
    folder, out = photos["photos"], tmp_path / "shards"
    config = EmbedConfig(engine=photos["engine"], out=out, shard_size=4)
    sources = folder_sources(folder)
    out.mkdir()
    (out / "embed-run.json").write_text('{"my": "settings"}')  # someone else's file
    for restart in (False, True):
        with pytest.raises(UsageError, match=r"not an embed folder") as refused:
            run_embed(dataclasses.replace(config, restart=restart), sources, folder)
        assert "--restart" not in str(refused.value)
    assert (out / "embed-run.json").read_text() == '{"my": "settings"}'
    (out / "embed-run.json").unlink()
    (out / "failures-listing.jsonl").write_text("my notes\n")  # a name embed writes
    with pytest.raises(UsageError, match=r"failures-listing.jsonl: not an embed failures"):
        run_embed(dataclasses.replace(config, restart=True), sources, folder)
    assert (out / "failures-listing.jsonl").read_text() == "my notes\n"
    (out / "failures-listing.jsonl").unlink()
    run_embed(config, sources, folder)
    keep = {
        "failures-old.jsonl": "not ours by name\n",
        "shard-1.parquet": "not a shard name\n",
        "notes.txt": "mine\n",
        ".shard-00001.parquet.tmp": "not our temporary name\n",
    }
    for name, text in keep.items():
        (out / name).write_text(text)
    report = run_embed(dataclasses.replace(config, restart=True), sources, folder)
    assert report.shards_written == 4  # everything redone
    assert {name: (out / name).read_text() for name in keep} == keep
    (out / "shard-00009.parquet").write_text("not parquet")  # a shard name, not a shard
    with pytest.raises(GalleryCorruptError, match=r"shard-00009.parquet.*delete that shard"):
        run_embed(dataclasses.replace(config, restart=True), sources, folder)
    assert (out / "shard-00009.parquet").read_text() == "not parquet"


def test_a_stale_failures_file_and_temporaries_of_a_pending_shard_are_redone(
    photos, tmp_path
) -> None:
    folder, out = photos["photos"], tmp_path / "shards"
    config = EmbedConfig(engine=photos["engine"], out=out, shard_size=4)
    sources = folder_sources(folder)
    run_embed(config, sources, folder)
    whole = shard_rows(out)
    # A run killed between a shard's failures file and its rename, and during writes.
    (out / "shard-00001.parquet").unlink()
    (out / "failures-00001.jsonl").write_text('{"path": "ghost.png", "problem": "old"}\n')
    token = "0123456789abcdef"
    temporaries = [f".shard-00001.parquet.{token}.tmp", f".failures-00001.jsonl.{token}.tmp"]
    for name in temporaries:
        (out / name).write_bytes(b"half")
    report = run_embed(config, sources, folder)
    assert (report.shards_written, report.shards_skipped, report.failed_before) == (1, 3, 1)
    assert not (out / "failures-00001.jsonl").exists()  # shard 1 (green/g3-g6) failed nothing
    assert not [name for name in temporaries if (out / name).exists()]
    assert shard_rows(out).keys() == whole.keys()


def test_a_shard_under_another_shards_name_is_refused(photos, tmp_path) -> None:
    folder, out = photos["photos"], tmp_path / "shards"
    config = EmbedConfig(engine=photos["engine"], out=out, shard_size=2)
    run_embed(config, folder_sources(folder), folder)
    os.replace(out / "shard-00003.parquet", out / "shard-00005.parquet")
    refused = r"shard-00005.parquet: its header says it is shard 3; delete that shard"
    with pytest.raises(GalleryCorruptError, match=refused):
        run_embed(config, folder_sources(folder), folder)


def test_a_damaged_shard_or_failures_file_names_the_file_to_delete(photos, tmp_path) -> None:
    folder, out = photos["photos"], tmp_path / "shards"
    config = EmbedConfig(engine=photos["engine"], out=out, shard_size=4)
    run_embed(config, folder_sources(folder), folder)
    damaged = out / "failures-00000.jsonl"
    damaged.write_text('{"path": "green/bad.png", "problem"')
    done = cli("embed", "--engine", photos["engine"], "--images", folder, "--out", out,
               "--shard-size", "4", check_rc=int(ExitCode.BAD_INPUT))  # fmt: skip
    (line,) = done.stderr.strip().splitlines()
    assert "failures-00000.jsonl" in line and "delete it and its shard" in line
    damaged.unlink()
    (out / "shard-00002.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(GalleryCorruptError, match=r"shard-00002.parquet.*delete that shard"):
        run_embed(config, folder_sources(folder), folder)


def test_unstorable_rows_are_failures_of_their_file(tmp_path) -> None:
    folder = tmp_path / "photos"
    solid(folder / "red" / "r.png", (255, 0, 0))
    solid(folder / "blue" / "nan.png", (0, 0, 255))
    solid(folder / "green" / "big.png", (0, 255, 0))
    odd = os.fsencode(folder / "red") + b"/caf\xe9.png"  # a name that is not UTF-8
    with open(odd, "wb") as handle:
        handle.write((folder / "red" / "r.png").read_bytes())
    half = one_shard(ScaledColourEngine(), folder, tmp_path / "f16", dtype="float16")
    problems = {f.path: f.problem for f in half.failures}
    assert set(problems) == {"red/caf\\xe9.png", "blue/nan.png", "green/big.png"}
    assert "not UTF-8" in problems["red/caf\\xe9.png"]
    assert "non-finite" in problems["blue/nan.png"]
    assert "float16's range" in problems["green/big.png"]
    assert set(shard_rows(tmp_path / "f16")) == {"red/r.png"}
    full = one_shard(ScaledColourEngine(), folder, tmp_path / "f32")  # float32 holds 1e5
    assert set(shard_rows(tmp_path / "f32")) == {"red/r.png", "green/big.png"}
    assert len(full.failures) == 2
    recorded = (tmp_path / "f32" / "failures-00000.jsonl").read_text()
    assert "caf\\\\xe9.png" in recorded  # readable JSON text, as the terminal shows it


def test_float16_overflow_is_refused_by_the_shard_writer(tmp_path) -> None:
    from sketchsearch.gallery.shard_file import ShardRow, write_shard
    from sketchsearch.runtime.embed_job import make_plan

    engine = ColourEngine()
    plan = make_plan(engine.card, [], tmp_path, FOLDER_SOURCE, dtype="float16")
    row = ShardRow("a.png", "0" * 64, 1)
    with pytest.raises(ValueError, match=r"non-finite float16"):
        write_shard(tmp_path / "s.parquet", plan.spec.header(0, 1), np.full((1, 3), 1e5), [row])
    assert not list(tmp_path.iterdir())


def test_a_rows_size_is_the_size_of_the_bytes_hashed(tmp_path) -> None:
    folder = tmp_path / "photos"
    files = [solid(folder / "red" / f"r{i}.png", (255, i, 0)) for i in range(3)]
    expected = {f"red/{f.name}": len(f.read_bytes()) for f in files}
    # one batch: every file is read before the engine's first call deletes them all
    summary = one_shard(DeletingColourEngine(files), folder, tmp_path / "shards", batch_size=3)
    assert summary.rows == 3 and not any(f.exists() for f in files)  # gone before the rows
    assert {p: r[1]["size"] for p, r in shard_rows(tmp_path / "shards").items()} == expected
    with open_engine(colour_onnx(tmp_path / "colour.onnx"), domain="gallery") as engine:
        solid(folder / "x.png", (1, 2, 3))
        result = embed_paths(engine, [folder / "x.png"])
    assert result.sizes == [len((folder / "x.png").read_bytes())]


def test_every_listed_line_refused_says_why_and_names_keep_their_spaces(photos, tmp_path) -> None:
    folder = photos["photos"]
    solid(folder / " spaced.png", (255, 1, 1))
    listing = tmp_path / "files.txt"
    listing.write_text(f"{tmp_path / 'elsewhere.png'}\n/nowhere/x.png\n")
    with pytest.raises(UsageError, match=r"all 2 listed files were refused .*not under the root"):
        run_embed(
            EmbedConfig(engine=photos["engine"], out=tmp_path / "a"), *_listed(listing, folder)
        )
    listing.write_text(" spaced.png\n")
    report = run_embed(
        EmbedConfig(engine=photos["engine"], out=tmp_path / "b"), *_listed(listing, folder)
    )
    assert report.embedded == 1 and set(shard_rows(tmp_path / "b")) == {" spaced.png"}


def _listed(listing: Path, root: Path) -> tuple:
    from sketchsearch.runtime.embed_listing import list_sources

    base, sources, refused = list_sources(listing, root)
    return sources, base, FOLDER_SOURCE, refused


def test_a_query_encoder_is_refused(tmp_path) -> None:
    import onnx

    from sketchsearch.runtime.model_card import CARD_KEY

    model = colour_onnx(tmp_path / "colour.onnx")
    proto = onnx.load(str(model))
    card = dataclasses.replace(read_onnx_card(model), domain="query")
    onnx.helper.set_model_props(proto, {CARD_KEY: card.to_json()})
    onnx.save(proto, str(tmp_path / "colour.query.onnx"))
    solid(tmp_path / "photos" / "r.png", (255, 0, 0))
    config = EmbedConfig(engine=tmp_path / "colour.query.onnx", out=tmp_path / "shards")
    with pytest.raises(UsageError, match=r"query encoder .* embed with its .gallery.onnx"):
        run_embed(config, folder_sources(tmp_path / "photos"), tmp_path / "photos")
    assert not (tmp_path / "shards").exists()


def test_the_split_files_spelling_is_not_part_of_the_plan(tmp_path) -> None:
    from sketchsearch.runtime.embed_job import make_plan

    part = colour_split(tmp_path)
    card, sources = ColourEngine().card, split_sources(part, "photo")
    source = split_source(part, "photo")
    plans = [
        make_plan(card, sources, part.root, dataclasses.replace(source, split_file=spelling))
        for spelling in ("split.json", "./split.json")
    ]
    assert plans[0].spec.fingerprint == plans[1].spec.fingerprint


def test_options_that_would_be_ignored_are_refused(photos, tmp_path) -> None:
    common = ("embed", "--engine", photos["engine"], "--images", photos["photos"],
              "--out", tmp_path / "shards")  # fmt: skip
    domain = cli(*common, "--domain", "sketch", check_rc=int(ExitCode.USAGE))
    assert "--domain goes with --split" in domain.stderr
    threads = cli(*common, "--runner", "ray", "--threads", "2", check_rc=int(ExitCode.USAGE))
    assert "--threads is for the local runner" in threads.stderr
    assert not (tmp_path / "shards").exists()
    from sketchsearch.runtime.embed_job import DEFAULT_SHARD_SIZE

    shown = cli("embed", "--help", check_rc=0).stdout
    assert f"[default: {DEFAULT_SHARD_SIZE:,}]" in " ".join(shown.split())
