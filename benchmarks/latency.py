"""Embedding latency and throughput per model file, backend and batch size, and the end-to-end
single query split into decode+preprocess, embed and search.

    python benchmarks/latency.py --model run/best.ckpt --model model.onnx --model model.plan \\
        --batch-sizes 1,8,32 --warmup 10 --iters 100 --threads 2 --json latency.json

Backends: a ``.ckpt`` runs in torch eager on the CPU (the reference), and with ``cuda`` among
``--providers`` also on CUDA in fp32 and with fp16 autocast; an ``.onnx`` runs in onnxruntime
with each of ``--providers`` (cpu, cuda, tensorrt: the TensorRT execution provider); a
``.plan`` runs in native TensorRT. A backend that cannot run here is a row with status
"unavailable" and the reason; one that breaks is "failed" with the error. No row is dropped
and none gets numbers it did not measure.

Timing: every engine call returns host memory (numpy), so it has finished when it returns;
on CUDA the torch engine is also synchronised (``Engine.synchronize``, a no-op for the other
engines, whose ``embed`` waits for the device itself) before and after each timed call, so no
asynchronous work leaks into or out of a sample. Inputs are seeded random uint8 images.
``--repeat 2`` measures everything twice, re-opening every engine, and reports the spread of
the batch-1 p50 between the runs.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.benchmarks.targets import (
    Target,
    environment,
    list_targets,
    measure_row,
    model_help,
    parse_providers,
)
from sketchsearch.data.errors import UsageError
from sketchsearch.data.strict_json import dumps
from sketchsearch.gallery import GalleryItem, GalleryStore, create_gallery, open_gallery
from sketchsearch.runtime.engines.protocol import (
    Engine,
)
from sketchsearch.runtime.pipeline import load_image
from sketchsearch.runtime.retriever import model_ref

STATS = ("min_ms", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms")


@dataclass(frozen=True)
class LatencyConfig:
    models: tuple[Path, ...]
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    warmup: int = 10
    iters: int = 100
    threads: int | None = None
    providers: tuple[str, ...] = ("cpu", "cuda", "tensorrt")
    gallery: Path | None = None  # None: random unit vectors of each model's family
    gallery_size: int = 5000
    query_image: Path | None = None  # None: a synthetic 256 px JPEG
    repeat: int = 1
    k: int = 10
    recommend: bool = False  # write <model>.backends.json beside each model measured


def summarize(samples_ms: np.ndarray, batch_size: int) -> dict[str, float]:
    """min/mean/p50/p90/p95/p99 in ms and images per second (from the mean)."""
    mean = float(np.mean(samples_ms))
    stats = {
        "min_ms": float(np.min(samples_ms)),
        "mean_ms": mean,
        **{f"p{q}_ms": float(np.percentile(samples_ms, q)) for q in (50, 90, 95, 99)},
        "images_per_s": batch_size * 1000.0 / mean if mean > 0 else 0.0,
    }
    return {name: round(value, 4) for name, value in stats.items()}


def measure_embed(engine: Engine, batch_size: int, warmup: int, iters: int) -> dict[str, float]:
    """Latency of ``engine.embed`` on one seeded uint8 batch, after ``warmup`` calls."""
    size = engine.card.input_size
    rng = np.random.default_rng(batch_size)
    images = rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8)
    sync = engine.synchronize
    for _ in range(warmup):
        engine.embed(images)
    samples = np.empty(iters)
    for i in range(iters):
        sync()
        start = time.perf_counter()
        engine.embed(images)
        sync()
        samples[i] = time.perf_counter() - start
    return summarize(samples * 1000.0, batch_size)


def measure_end_to_end(
    engine: Engine, gallery: GalleryStore, image: Path, warmup: int, iters: int, k: int = 10
) -> dict[str, dict[str, float]]:
    """One query file at a time: read+decode+preprocess, embed (batch 1), search top-k."""
    sync = engine.synchronize
    samples = np.empty((iters, 3))
    for i in range(warmup + iters):
        loaded = load_image(image, engine.card.preprocess)
        if loaded.image is None:
            raise UsageError(f"--query-image {image}: {loaded.problem}")
        sync()
        start = time.perf_counter()
        vector = engine.embed(loaded.image[None])
        sync()
        embedded = time.perf_counter()
        gallery.search(vector, k)
        if i >= warmup:
            samples[i - warmup] = (loaded.seconds, embedded - start, time.perf_counter() - embedded)
    ms = samples * 1000.0
    stages = {"decode_preprocess": ms[:, 0], "embed": ms[:, 1], "search": ms[:, 2]}
    stages["total"] = ms.sum(axis=1)
    return {
        name: {
            "p50_ms": round(float(np.percentile(v, 50)), 4),
            "mean_ms": round(float(v.mean()), 4),
        }
        for name, v in stages.items()
    }


def random_gallery(folder: Path, engine: Engine, size: int, seed: int = 0) -> Path:
    """A gallery of ``size`` random unit vectors recorded as made by ``engine``'s model family."""
    card = engine.card
    vectors = np.random.default_rng(seed).normal(size=(size, card.embed_dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [GalleryItem(f"random/{i}.jpg", f"{i:08x}", f"label_{i % 50}") for i in range(size)]
    with create_gallery(folder, card.embed_dim, model=model_ref(card)) as gallery:
        gallery.add(vectors, items)
    return folder


def query_image(folder: Path, seed: int = 0) -> Path:
    """A 256 px JPEG with smooth colour and edges: decoding costs what a photo's would."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = cv2.resize(small, (256, 256), interpolation=cv2.INTER_CUBIC)
    cv2.circle(image, (128, 128), 60, (20, 20, 20), 6)
    path = folder / "query.jpg"
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def measure_target(
    target: Target, config: LatencyConfig, scratch: Path, galleries: dict[str, Path]
) -> dict[str, Any]:
    """One row: status, per-batch statistics and the end-to-end split, or why there are none."""
    return measure_row(
        target, config.threads, lambda engine: measure_engine(engine, config, scratch, galleries)
    )


def measure_engine(
    engine: Engine, config: LatencyConfig, scratch: Path, galleries: dict[str, Path]
) -> dict[str, Any]:
    """Per-batch statistics and the end-to-end split of one open engine."""
    batches = {
        str(b): measure_embed(engine, b, config.warmup, config.iters) for b in config.batch_sizes
    }
    folder = config.gallery or galleries.get(engine.card.family)
    if folder is None:
        folder = random_gallery(scratch / f"gallery-{len(galleries)}", engine, config.gallery_size)
        galleries[engine.card.family] = folder
    image = config.query_image or query_image(scratch)
    with open_gallery(folder, expected_model=model_ref(engine.card)) as gallery:
        end_to_end = measure_end_to_end(
            engine, gallery, image, config.warmup, config.iters, config.k
        )
    return {"batches": batches, "end_to_end": end_to_end}


def measure_all(config: LatencyConfig) -> list[dict[str, Any]]:
    targets = list_targets(config.models, config.providers)
    with tempfile.TemporaryDirectory(prefix="latency-") as tmp:
        galleries: dict[str, Path] = {}
        return [measure_target(t, config, Path(tmp), galleries) for t in targets]


def spread(values: Sequence[float]) -> float:
    """(max - min) / min: 0.05 means the slowest run was 5% slower than the fastest."""
    return round((max(values) - min(values)) / min(values), 4) if min(values) > 0 else 0.0


# Which torch eager row a backend is compared with: the same checkpoint on the same device.
REFERENCE_OF = {
    "ort-cpu": "torch-cpu",
    "torch-cuda-fp16": "torch-cuda",
    "ort-cuda": "torch-cuda",
    "ort-tensorrt": "torch-cuda",
    "tensorrt": "torch-cuda",
}


def ratios(rows: list[dict[str, Any]], batch: str) -> list[dict[str, Any]]:
    """p50 (and min) over the torch eager row of the same checkpoint on the same device."""
    measured = [r for r in rows if r["status"] == "ok" and batch in r["batches"]]
    reference = {
        (r["family"], r["backend"]): r for r in measured if r["backend"] in REFERENCE_OF.values()
    }
    out = []
    for row in measured:
        base = reference.get((row["family"], REFERENCE_OF.get(row["backend"], "")))
        if base is None:
            continue
        stats, base_stats = row["batches"][batch], base["batches"][batch]
        out.append(
            {
                "row": f"{row['file']}:{row['backend']}",
                "reference": f"{base['file']}:{base['backend']}",
                "batch": int(batch),
                "p50_ms": stats["p50_ms"],
                "reference_p50_ms": base_stats["p50_ms"],
                "ratio": round(stats["p50_ms"] / base_stats["p50_ms"], 4),
                "min_ratio": round(stats["min_ms"] / base_stats["min_ms"], 4),
            }
        )
    return out


def run_latency(config: LatencyConfig) -> dict[str, Any]:
    """Measure ``config.repeat`` times; the first run's rows, with the p50 spread when repeated."""
    if config.repeat < 1 or config.iters < 1 or config.warmup < 0:
        raise UsageError("--repeat and --iters must be at least 1, --warmup at least 0")
    runs = [measure_all(config) for _ in range(config.repeat)]
    rows = runs[0]
    batch = str(min(config.batch_sizes))
    if config.repeat > 1:
        for position, row in enumerate(rows):
            if all(run[position]["status"] == "ok" for run in runs):
                p50s = [run[position]["batches"][batch]["p50_ms"] for run in runs]
                row["repeat"] = {"batch": int(batch), "p50_ms": p50s, "p50_spread": spread(p50s)}
    return {
        "kind": "sketchsearch-latency",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "environment": environment(config.threads),
        "settings": {
            "batch_sizes": list(config.batch_sizes),
            "warmup": config.warmup,
            "iters": config.iters,
            "threads": config.threads,
            "providers": list(config.providers),
            "gallery": str(config.gallery) if config.gallery else f"random:{config.gallery_size}",
            "k": config.k,
            "repeat": config.repeat,
        },
        "rows": rows,
        "ratios_vs_torch_eager": ratios(rows, batch),
    }


def parse_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"{text!r}: expected comma-separated integers, e.g. 1,8,32") from None
    if not values or min(values) < 1:
        raise UsageError(f"{text!r}: expected positive integers, e.g. 1,8,32")
    return values


def parse_args(argv: Sequence[str] | None) -> tuple[LatencyConfig, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--model", type=Path, action="append", required=True, help=model_help())
    add("--batch-sizes", default="1,8,32")
    add("--warmup", type=int, default=10)
    add("--iters", type=int, default=100)
    add("--threads", type=int, help="Intra-op threads for onnxruntime and torch.")
    add("--providers", default="cpu,cuda,tensorrt", help="onnxruntime providers to try.")
    add("--gallery", type=Path, help="Gallery for the end-to-end search (default: random).")
    add("--gallery-size", type=int, default=5000)
    add("--query-image", type=Path, help="Image for the end-to-end split (default: synthetic).")
    add("--repeat", type=int, default=1, help="Measure N times; report the p50 spread.")
    add("--json", type=Path, help="Write the results here.")
    add(
        "--recommend",
        action="store_true",
        help="Write MODEL.backends.json beside each model: the fastest backend for single "
        "queries (batch 1) and for batches (>= 8), engine alone, which retrieve and gallery "
        "build then use. A backend other than the file's default must first embed as it does "
        "(parity on real photos, cosine >= 0.9999; checked here, needs scikit-image).",
    )
    args = parser.parse_args(argv)
    config = LatencyConfig(
        models=tuple(args.model),
        batch_sizes=parse_ints(args.batch_sizes),
        warmup=args.warmup,
        iters=args.iters,
        threads=args.threads,
        providers=parse_providers(args.providers),
        gallery=args.gallery,
        gallery_size=args.gallery_size,
        query_image=args.query_image,
        repeat=args.repeat,
        recommend=args.recommend,
    )
    return config, args.json


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config, json_path = parse_args(argv)
    report = run_latency(config)
    for row in report["rows"]:
        print(describe_row(row))
    if json_path is not None:
        json_path.write_text(dumps(report, indent=1) + "\n")
    if config.recommend:
        from sketchsearch.benchmarks.backend_recommendation import (
            check_candidates,
            write_recommendations,
        )

        parity, checks = check_candidates(report, config.threads)
        for check in checks:
            print(describe_parity(check))
        for path in write_recommendations(report, parity):
            print(f"recommendation: {path}")
    return report


def describe_parity(check: dict[str, Any]) -> str:
    """One line per parity check run for ``--recommend``: its cosine, or why there is none."""
    head = f"parity {Path(check['model']).name} on {check['backend']}:"
    if check["status"] != "ok":
        return f"{head} {check['status']}: {check['reason']}"
    bar = check["threshold"]  # the file's bar: PARITY_COSINE, or int8's export bar
    verdict = "may be recommended" if check["min_cosine"] >= bar else "not recommended"
    return f"{head} cosine min {check['min_cosine']:.6f} ({verdict}, needs >= {bar})"


def describe_row(row: dict[str, Any]) -> str:
    head = f"{row['file']:<28} {row['backend']:<16} {row['precision']:<14}"
    if row["status"] != "ok":
        return f"{head} {row['status']}: {row['reason']}"
    parts = [
        f"b{b}: p50 {s['p50_ms']:.2f} ms, {s['images_per_s']:.0f} img/s"
        for b, s in row["batches"].items()
    ]
    return f"{head} " + "; ".join(parts)


if __name__ == "__main__":
    main()
