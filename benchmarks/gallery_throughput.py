"""Gallery building throughput against the engine's own batch throughput, side by side.

Target (issue 6): ``build_gallery`` (what `sketchsearch gallery build` runs) reaches at least
0.8× the images/s of the same engine fed pre-decoded batches of the same images at the same
batch size: decoding must overlap inference.

Each repetition measures both, one right after the other, so that load from other processes
hits both alike; the ratio is taken per repetition and its median reported. Diagnostics:
decoding alone; how much slower the engine's own calls get inside the pipeline (CPU
contention) against how long it waits for decoded batches (no overlap); and with ``--sweep``,
other decode worker and prefetch counts and onnxruntime thread settings.

    python benchmarks/gallery_throughput.py [--engine model.onnx] [--images DIR | --synth PX]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sketchsearch.benchmarks.machine_info import machine_facts
from sketchsearch.benchmarks.retrieve_startup import DEMO, DEMO_PHOTOS, ensure_engine
from sketchsearch.data.strict_json import dumps
from sketchsearch.runtime.engines.onnx_engine import OnnxEngine
from sketchsearch.runtime.engines.protocol import Engine
from sketchsearch.runtime.gallery_build import Source, build_gallery, folder_sources
from sketchsearch.runtime.pipeline import embed_paths, load_image

TARGET_RATIO = 0.8


def synth_images(work: Path, size: int, count: int) -> Path:
    """About ``count`` synthetic photos of ``size`` px (JPEG), generated once under ``work``."""
    from sketchsearch.data.layouts import SKETCHY_DEFAULT_VARIANT
    from sketchsearch.data.synth import SynthConfig, generate

    root = work / f"synth-{size}px-{count}"
    photos = root / "photo" / SKETCHY_DEFAULT_VARIANT
    if not photos.is_dir():
        per_category = -(-count // 20)
        config = SynthConfig(categories=20, photos_per_category=per_category, size=size)
        generate(root, config, overwrite=True)
    return photos


def decoded_batches(engine: Engine, sources: list[Source], batch_size: int) -> list[np.ndarray]:
    config = engine.card.preprocess
    images = np.stack([load_image(s.file, config).image for s in sources])  # type: ignore[misc]
    return [images[i : i + batch_size] for i in range(0, len(images), batch_size)]


def engine_seconds(engine: Engine, batches: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for batch in batches:
        engine.embed(batch)
    return time.perf_counter() - start


def decode_ms(engine: Engine, sources: list[Source], workers: int) -> tuple[float, float]:
    """Wall and CPU milliseconds per image of reading, hashing and preprocessing alone."""
    config = engine.card.preprocess
    start, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda source: load_image(source.file, config), sources))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall / len(sources) * 1000, cpu / len(sources) * 1000


def one_repetition(
    engine: Engine, sources: list[Source], root: Path, args: argparse.Namespace
) -> dict[str, float]:
    """Engine alone, then build_gallery, then embed_paths alone: images/s of each."""
    n = len(sources)
    batches = decoded_batches(engine, sources, args.batch_size)
    cpu = time.process_time()
    engine_s = engine_seconds(engine, batches)
    engine_cpu = time.process_time() - cpu
    out = args.work / "gallery-throughput"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    report = build_gallery(engine, out, root, sources, args.batch_size, args.workers, False)
    build_s = time.perf_counter() - start
    if report.embedded != n:
        raise SystemExit(f"build_gallery embedded {report.embedded} of {n}: {report.failed[:3]}")
    files = [s.file for s in sources]
    cpu = time.process_time()
    pipeline = embed_paths(engine, files, args.batch_size, args.workers, progress=False)
    pipeline_cpu = time.process_time() - cpu
    return {
        "engine_ips": n / engine_s,
        "build_ips": n / build_s,
        "build_ips_as_printed": report.images_per_second,
        "embed_paths_ips": pipeline.images_per_second,
        # > 1: the engine's own calls ran slower beside the decoders (they share the cores)
        "engine_slowdown_in_pipeline": pipeline.embed_seconds / engine_s,
        # the part of the pipeline's wall time the engine was not running: waiting for decoding
        "engine_idle_fraction": 1.0 - pipeline.embed_seconds / pipeline.wall_seconds,
        "engine_cpu_ms": engine_cpu / n * 1000,  # CPU time of all threads, per image
        "embed_paths_cpu_ms": pipeline_cpu / n * 1000,
        "ratio": engine_s / build_s,
    }


def with_session_config(engine: OnnxEngine, threads: int | None, entries: dict[str, str]) -> None:
    """Reopen the engine's onnxruntime session with extra session-config entries."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    for key, value in entries.items():
        options.add_session_config_entry(key, value)
    engine.session = ort.InferenceSession(str(engine.path), options, providers=engine.providers)


def sweep(
    model: Path, sources: list[Source], batch_size: int, repeats: int
) -> list[dict[str, Any]]:
    """embed_paths with other decode workers, prefetch and onnxruntime settings. Each row's
    ratio is against the default engine's pre-decoded throughput, measured just before."""
    no_spin = {"session.intra_op.allow_spinning": "0"}
    with ExitStack() as opened:  # every engine is closed, however the sweep ends
        engines = {
            name: opened.enter_context(OnnxEngine(model))
            for name in ("default", "1 thread", "no spinning")
        }
        with_session_config(engines["1 thread"], 1, {})
        with_session_config(engines["no spinning"], None, no_spin)
        for engine in engines.values():
            engine.warmup()
        variants = [("default", w, 2) for w in (1, 2, 4)] + [("default", 2, 8)]
        variants += [("1 thread", 1, 2), ("1 thread", 2, 2), ("no spinning", 2, 2)]
        batches = decoded_batches(engines["default"], sources, batch_size)
        files = [s.file for s in sources]
        samples: dict[tuple[str, int, int], list[tuple[float, float]]] = {v: [] for v in variants}
        for _ in range(repeats):
            for name, workers, prefetch in variants:
                reference = engine_seconds(engines["default"], batches)
                own = engine_seconds(engines[name], batches)
                result = embed_paths(engines[name], files, batch_size, workers, prefetch, False)
                samples[(name, workers, prefetch)].append(
                    (reference / result.wall_seconds, own / result.wall_seconds)
                )
    return [
        {
            "onnxruntime": name,
            "workers": workers,
            "prefetch": prefetch,
            "ratio_vs_default_engine": round(statistics.median(s[0] for s in rows), 3),
            "ratio_vs_own_engine": round(statistics.median(s[1] for s in rows), 3),
        }
        for (name, workers, prefetch), rows in samples.items()
    ]


def median(rows: list[dict[str, float]], key: str, digits: int = 1) -> float:
    return round(statistics.median(row[key] for row in rows), digits)


def choose_sources(args: argparse.Namespace) -> tuple[Path, list[Source]]:
    if args.synth:
        root = synth_images(args.work, args.synth, args.count)
    elif args.images:
        root = args.images
    else:
        root = DEMO_PHOTOS if DEMO_PHOTOS.is_dir() else synth_images(args.work, 256, args.count)
    found = folder_sources(root)
    picked = [found[int(i)] for i in np.linspace(0, len(found) - 1, min(args.count, len(found)))]
    return root, list({s.file: s for s in picked}.values())


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", type=Path, help="ONNX model (default: export --checkpoint)")
    parser.add_argument("--checkpoint", type=Path, default=DEMO / "run" / "best.ckpt")
    parser.add_argument("--images", type=Path, help="image folder (default: the demo photos)")
    parser.add_argument("--synth", type=int, metavar="PX", help="synthetic PX-px JPEGs instead")
    parser.add_argument("--count", type=int, default=400, help="images used (at most)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, help="decode threads (default: embed_paths')")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep", action="store_true", help="also try other settings")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sketchsearch-bench"))
    parser.add_argument("--json", type=Path, help="default: WORK/gallery_throughput.json")
    return parser.parse_args(argv)


def measure_throughput(
    engine: OnnxEngine, model: Path, root: Path, sources: list[Source], args: argparse.Namespace
) -> dict[str, Any]:
    """The report: build_gallery beside the engine alone, and the sweep when asked for."""
    engine.warmup()
    load_before = os.getloadavg()[0]
    rows = [one_repetition(engine, sources, root, args) for _ in range(args.repeats)]
    workers = args.workers or min(4, os.cpu_count() or 1)  # embed_paths' default
    ratio = median(rows, "ratio", 3)
    decode_wall, decode_cpu = decode_ms(engine, sources, 1)
    engine_cpu = median(rows, "engine_cpu_ms", 3)
    report: dict[str, Any] = {
        "benchmark": "gallery_throughput",
        "date": time.strftime("%Y-%m-%d"),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "ratio_median": ratio,
        "ratios": [round(r["ratio"], 3) for r in rows],
        "engine_ips_median": median(rows, "engine_ips"),
        "build_gallery_ips_median": median(rows, "build_ips"),
        "build_gallery_ips_as_printed_median": median(rows, "build_ips_as_printed"),
        "embed_paths_ips_median": median(rows, "embed_paths_ips"),
        "engine_slowdown_in_pipeline": median(rows, "engine_slowdown_in_pipeline", 3),
        "engine_idle_fraction_in_pipeline": median(rows, "engine_idle_fraction", 3),
        "decode_alone_ms_per_image": {
            "wall_1_thread": round(decode_wall, 3),
            f"wall_{workers}_threads": round(decode_ms(engine, sources, workers)[0], 3),
            "cpu": round(decode_cpu, 3),
        },
        "cpu_ms_per_image": {
            "engine_alone": engine_cpu,
            "embed_paths": median(rows, "embed_paths_cpu_ms", 3),
        },
        # the best ratio possible when every core is busy: inference CPU / (it + decoding CPU)
        "cpu_bound_ratio": round(engine_cpu / (engine_cpu + decode_cpu), 3),
        "images": {"folder": str(root), "count": len(sources), "suffix": sources[0].file.suffix},
        "source_px": list(np.asarray(cv2.imread(str(sources[0].file))).shape[:2]),
        "batch_size": args.batch_size,
        "workers": workers,
        "repeats": args.repeats,
        "model": {"path": str(model), "backbone": engine.card.backbone},
        "input_px": engine.card.input_size,
        "onnxruntime_threads": "default (one per core)",
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "environment": machine_facts(),
    }
    if args.sweep:
        report["sweep"] = sweep(model, sources, args.batch_size, args.repeats)
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    model = ensure_engine(args.engine, args.checkpoint, args.work)
    root, sources = choose_sources(args)
    with OnnxEngine(model, spin=False) as engine:  # as `gallery build` opens it
        report = measure_throughput(engine, model, root, sources, args)
    ratio = report["ratio_median"]
    out = args.json or args.work / "gallery_throughput.json"
    out.write_text(dumps(report, indent=1) + "\n")
    print(dumps(report, indent=1))
    print(
        f"build_gallery {report['build_gallery_ips_median']} img/s vs the engine alone "
        f"{report['engine_ips_median']} img/s: ratio {ratio} (target ≥ {TARGET_RATIO}: "
        f"{'met' if report['meets_target'] else 'MISSED'}); CPU bound {report['cpu_bound_ratio']}, "
        f"engine slowdown in the pipeline ×{report['engine_slowdown_in_pipeline']}, "
        f"engine idle {report['engine_idle_fraction_in_pipeline']:.0%}"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
