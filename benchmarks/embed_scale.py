"""Embedding and importing at scale: the local runner against Ray, and a 1M-vector import.

Figure 1 (issue 15: Ray's overhead at equal cores is at most 25%): images per second of
``run_embed`` (what `sketchsearch embed` runs) over one synthetic image set with the local
runner (all cores) and the Ray runner with 1 actor (all cores) and 2 actors (half each), so
every runner has the machine's cores. Each round runs every runner once, into a fresh shards
folder, in an order rotated round to round, so that load from other processes hits all alike;
overheads are taken per round and their median reported, for two rates: the embedding phase
(``EmbedReport.seconds``: from the engines being up, so Ray's actor start and scheduling
count) and the steady rate (``work_images_per_second``: first shard's start to last shard's
end). Ray's start-up (``ray.init``) is reported beside them, and so are the rates over the
whole call.

Figure 2: the time and peak memory of `sketchsearch gallery import` (a child process: its
peak RSS from ``wait4``) over ``--import-items`` synthetic 128-d unit vectors, written as
shards first. Real embeddings have a low intrinsic dimension, so the vectors do too: 300
clusters in a 16-d latent space (spread 0.6, as benchmarks/ann.py), mapped into 128-d by a
random orthonormal map, plus a little isotropic noise. (Isotropic 128-d noise around a few
centres would be HNSW's worst case, and its recall and build time would be misread.) Beside
them: the shard and gallery bytes, the gallery's HNSW parameters, and recall@10 of the
imported gallery against exact search over the shards, so a broken index cannot pass.

The JSON's ``loaded`` is true when the 1-minute load average before the run was above half the
cores: the figures of such a run are not the machine's (a warning is printed). The load at the
end is recorded too, but it includes this run's own work, so it does not decide.

    python benchmarks/embed_scale.py                      # both figures (1M import: minutes)
    python benchmarks/embed_scale.py --only embed --images 600 --rounds 3
    python benchmarks/embed_scale.py --only import --import-items 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.benchmarks.gallery_throughput import synth_images
from sketchsearch.benchmarks.machine_info import machine_facts, run_record
from sketchsearch.benchmarks.retrieve_startup import DEMO, ensure_engine
from sketchsearch.data.strict_json import dumps

TARGET_OVERHEAD = 0.25
RUNNERS = {"local": ("local", None), "ray-1": ("ray", 1), "ray-2": ("ray", 2)}
IMPORT_DIM = 128
LATENT_DIM, CENTRES, SPREAD, NOISE = 16, 300, 0.6, 0.05
RECALL_QUERIES = 200


# --------------------------------------------------------------------------- figure 1
def embed_once(
    engine: Path, photos: Path, runner: str, out: Path, shard_size: int
) -> dict[str, float]:
    """One run of ``run_embed`` into a fresh folder: its rates and timings."""
    from sketchsearch.runtime.embed_run import EmbedConfig, run_embed
    from sketchsearch.runtime.gallery_build import folder_sources

    kind, workers = RUNNERS[runner]
    shutil.rmtree(out, ignore_errors=True)
    sources = folder_sources(photos)
    config = EmbedConfig(
        engine=engine, out=out, shard_size=shard_size, runner=kind, workers=workers, progress=False
    )
    report = run_embed(config, sources, photos)
    if report.embedded != len(sources) or report.failed:
        raise SystemExit(f"{runner}: embedded {report.embedded} of {len(sources)}")
    shutil.rmtree(out, ignore_errors=True)
    return {
        "images_per_second": report.images_per_second,
        # from the first shard's start to the last shard's end on the workers: the steady rate,
        # without the actors' start and Ray Data's scheduling before the first shard
        "work_images_per_second": report.work_images_per_second,
        "wall_images_per_second": report.embedded / report.wall_seconds,
        "seconds": report.seconds,
        "wall_seconds": report.wall_seconds,
        "startup_seconds": report.startup_seconds,
    }


def measure_runners(args: argparse.Namespace, engine: Path) -> dict[str, Any]:
    photos = args.image_folder or synth_images(args.work, args.size, args.images)
    count = sum(1 for p in photos.rglob("*") if p.is_file())
    runners = list(args.runners)
    rounds: list[dict[str, dict[str, float]]] = []
    for number in range(args.rounds):
        order = runners[number % len(runners) :] + runners[: number % len(runners)]
        measured = {}
        for runner in order:
            out = args.work / f"embed-scale-{runner}"
            measured[runner] = embed_once(engine, photos, runner, out, args.shard_size)
            print(f"round {number + 1}: {runner} {measured[runner]['images_per_second']:.1f} img/s")
        rounds.append(measured)
    summary = {
        runner: {
            key: statistics.median(r[runner][key] for r in rounds) for key in rounds[0][runner]
        }
        for runner in runners
    }
    overheads = ray_overheads(rounds, runners)
    return {
        "engine": str(engine),
        "images": count,
        "image_folder": str(photos),
        "shard_size": args.shard_size,
        "rounds": args.rounds,
        "order": "rotated each round",
        "runners": {r: {"runner": RUNNERS[r][0], "actors": RUNNERS[r][1]} for r in runners},
        "median": summary,
        "per_round": rounds,
        "target_overhead": TARGET_OVERHEAD,
        "ray_overhead_at_equal_cores": overheads,
    }


def ray_overheads(
    rounds: list[dict[str, dict[str, float]]], runners: list[str]
) -> dict[str, dict[str, Any]]:
    """Per rate, per Ray runner: 1 - its rate / the local runner's, per round (the same
    round's local run, which met the same load) and their median against the target."""
    overheads: dict[str, dict[str, Any]] = {}
    if "local" not in runners:
        return overheads
    for rate in ("images_per_second", "work_images_per_second"):
        for runner in (r for r in runners if r != "local"):
            per_round = [1 - r[runner][rate] / r["local"][rate] for r in rounds]
            median = statistics.median(per_round)
            overheads.setdefault(rate, {})[runner] = {
                "median": median,
                "per_round": per_round,
                "meets_target": median <= TARGET_OVERHEAD,
            }
    return overheads


def is_loaded(load_at_start: float, cores: int) -> bool:
    """Whether other work was using the cores when the run began: a 1-minute load average above
    half of them. (The load at the end counts this run's own processes, so it cannot tell.)"""
    return load_at_start > cores / 2


# --------------------------------------------------------------------------- figure 2
@dataclass(frozen=True)
class Mixture:
    """The synthetic vectors' model: clusters in a low-dimensional latent space, mapped up."""

    centres: np.ndarray  # [CENTRES, LATENT_DIM]
    basis: np.ndarray  # [IMPORT_DIM, LATENT_DIM], orthonormal columns

    @classmethod
    def new(cls, seed: int) -> Mixture:
        rng = np.random.default_rng(seed)
        centres = rng.normal(size=(CENTRES, LATENT_DIM))
        basis, _ = np.linalg.qr(rng.normal(size=(IMPORT_DIM, LATENT_DIM)))
        return cls(centres, basis)

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` unit vectors and the cluster each was drawn from."""
        which = rng.integers(0, CENTRES, n)
        latent = self.centres[which] + SPREAD * rng.normal(size=(n, LATENT_DIM))
        points = latent @ self.basis.T + NOISE * rng.normal(size=(n, IMPORT_DIM))
        points /= np.linalg.norm(points, axis=1, keepdims=True)
        return points.astype(np.float32), which

    @staticmethod
    def describe() -> dict[str, Any]:
        return {
            "kind": "clusters in a low-dimensional latent space, mapped up, plus noise",
            "latent_dim": LATENT_DIM,
            "centres": CENTRES,
            "spread": SPREAD,
            "map": f"random {IMPORT_DIM}x{LATENT_DIM} orthonormal",
            "noise": NOISE,
            "dim": IMPORT_DIM,
        }


def write_import_shards(folder: Path, items: int, shard_size: int, seed: int) -> Mixture:
    """``items`` unit vectors drawn from ``Mixture.new(seed)``, as shards; returns it."""
    from sketchsearch.gallery.manifest import GallerySource, ModelRef
    from sketchsearch.gallery.shard_file import ShardHeader, ShardRow, shard_name, write_shard

    mixture = Mixture.new(seed)
    rng = np.random.default_rng(seed + 1)
    model = ModelRef(family="synthetic-" + "0" * 54, name="synthetic", dim=IMPORT_DIM)
    folder.mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, items, shard_size)):
        n = min(shard_size, items - start)
        vectors, clusters = mixture.draw(n, rng)
        rows = [
            ShardRow(
                path=f"c{cluster:03d}/{i:08d}.jpg",
                sha256=hashlib.sha256(i.to_bytes(8, "little")).hexdigest(),
                size=40_000 + i % 1000,
                label=f"c{cluster:03d}",
            )
            for i, cluster in zip(range(start, start + n), clusters.tolist(), strict=True)
        ]
        header = ShardHeader(
            model=model,
            preprocess={"synthetic": True},
            root="/synthetic",
            source=GallerySource(kind="folder"),
            dtype="float32",
            index=index,
            plan="synthetic",
            rows=n,
        )
        write_shard(folder / shard_name(index), header, vectors, rows)
    return mixture


def run_import(shards: Path, gallery: Path) -> dict[str, Any]:
    """`sketchsearch gallery import` in a child process: its wall and CPU time, peak RSS.

    Its output goes to files, not pipes: ``wait4`` (for the peak RSS) must not wait on a child
    blocked on a full pipe; the exit code ``wait4`` read is handed to ``Popen``, which reaped
    nothing itself."""
    command = [sys.executable, "-m", "sketchsearch.cli", "gallery", "import", str(shards)]
    command += ["--out", str(gallery)]
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        printed, complaint = stdout.read(), stderr.read()
    if child.returncode != 0:
        raise SystemExit(f"gallery import failed (exit {child.returncode}): {complaint.strip()}")
    return {
        "command": " ".join(["sketchsearch", *command[3:]]),
        "seconds": seconds,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # kilobytes on Linux
        # with the wall time: on a loaded machine the CPU time is the steadier figure
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "printed": printed.strip(),
    }


def import_recall(
    shards: Path, gallery: Path, mixture: Mixture, efs: tuple[int, ...] = (), k: int = 10
) -> dict[str, float]:
    """recall@k of the gallery's search against exact search over the shards (by path), at
    the gallery's own ef and at each of ``efs``: recall that rises with ef is an index that
    works on hard data; a broken one stays near zero."""
    from sketchsearch.gallery.gallery import Gallery
    from sketchsearch.gallery.shard_file import list_shards, read_shard

    queries, _ = mixture.draw(RECALL_QUERIES, np.random.default_rng(12345))
    best = np.full((len(queries), k), -np.inf, np.float32)
    best_paths = np.full((len(queries), k), "", object)
    for path in list_shards(shards):
        for _, vectors, rows in read_shard(path):
            scores = queries @ vectors.T
            paths = np.array([row.path for row in rows], object)
            merged = np.concatenate([best, scores], axis=1)
            merged_paths = np.concatenate([best_paths, np.broadcast_to(paths, scores.shape)], 1)
            top = np.argsort(-merged, axis=1)[:, :k]
            best = np.take_along_axis(merged, top, 1)
            best_paths = np.take_along_axis(merged_paths, top, 1)
    recalls = {}
    with Gallery.open(gallery) as opened:
        for ef in (opened.manifest.ef, *efs):
            hits = opened.search(queries, k, ef=ef)
            found = sum(
                len({row.path for row in hit.items} & set(best_paths[q]))
                for q, hit in enumerate(hits)
            )
            recalls[f"ef={ef}"] = found / (len(queries) * k)
    return recalls


def measure_import(args: argparse.Namespace) -> dict[str, Any]:
    work = args.work / f"import-{args.import_items}"
    shutil.rmtree(work, ignore_errors=True)
    shards, gallery = work / "shards", work / "gallery"
    start = time.perf_counter()
    mixture = write_import_shards(shards, args.import_items, args.import_shard_size, seed=0)
    written = time.perf_counter() - start
    result = run_import(shards, gallery)
    recall = import_recall(shards, gallery, mixture, efs=(256, 1024))
    outcome = {
        "items": args.import_items,
        "dim": IMPORT_DIM,
        "data_model": Mixture.describe(),
        "hnsw": hnsw_parameters(gallery),
        "shard_size": args.import_shard_size,
        "shards": len(list(shards.glob("shard-*.parquet"))),
        "shards_written_seconds": written,
        **result,
        "items_per_second": args.import_items / result["seconds"],
        "shard_bytes": _bytes(shards),
        "gallery_bytes": _bytes(gallery),
        # the first is the gallery's default ef, as `retrieve` searches
        f"recall_at_10_vs_exact_{RECALL_QUERIES}_queries": recall,
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return outcome


def hnsw_parameters(gallery: Path) -> dict[str, int]:
    """The imported gallery's HNSW parameters, as its manifest records them."""
    from sketchsearch.gallery.gallery import Gallery

    with Gallery.open(gallery) as opened:
        manifest = opened.manifest
    return {"M": manifest.M, "ef_construction": manifest.ef_construction, "ef": manifest.ef}


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- command
def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("embed", "import"), help="one figure only")
    parser.add_argument("--engine", type=Path, help="ONNX model (default: the demo's)")
    parser.add_argument("--checkpoint", type=Path, default=DEMO / "run" / "best.ckpt")
    parser.add_argument("--image-folder", type=Path, help="images (default: synthetic)")
    parser.add_argument("--images", type=int, default=600, help="synthetic images to make")
    parser.add_argument("--size", type=int, default=96, help="synthetic image size, px")
    parser.add_argument("--shard-size", type=int, default=200, help="rows per embedding shard")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--runners", type=lambda s: s.split(","), default=list(RUNNERS), help="local,ray-1,ray-2"
    )
    parser.add_argument("--import-items", type=int, default=1_000_000)
    parser.add_argument("--import-shard-size", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the import's shards and gallery")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sketchsearch-bench"))
    parser.add_argument("--json", type=Path, help="default: WORK/embed-scale.json")
    args = parser.parse_args(argv)
    unknown = set(args.runners) - set(RUNNERS)
    if unknown:
        parser.error(f"--runners: unknown {sorted(unknown)}; use {','.join(RUNNERS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    import onnxruntime
    import pyarrow

    report: dict[str, Any] = {
        "benchmark": "embed_scale",
        **run_record(argv if argv is None else ["benchmarks/embed_scale.py", *argv]),
        "load_average_1min_at_start": os.getloadavg()[0],
        "environment": machine_facts(
            onnxruntime=onnxruntime.__version__, pyarrow=pyarrow.__version__, **_ray_version()
        ),
    }
    if args.only in (None, "embed"):
        engine = ensure_engine(args.engine, args.checkpoint, args.work)
        report["embed"] = measure_runners(args, engine)
    if args.only in (None, "import"):
        report["import"] = measure_import(args)
    report["load_average_1min_at_end"] = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    report["loaded"] = is_loaded(report["load_average_1min_at_start"], cores)
    if report["loaded"]:
        print(
            f"warning: load average above {cores / 2:g} (half of {cores} cores) at the start: "
            "other work shared the machine, these figures are not its own",
            file=sys.stderr,
        )
    out = args.json or args.work / "embed-scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dumps(report, indent=1) + "\n")
    print(dumps(report, indent=1))
    return 0


def _ray_version() -> dict[str, str]:
    try:
        import ray
    except ImportError:
        return {}
    return {"ray": str(ray.__version__)}


if __name__ == "__main__":
    sys.exit(main())
