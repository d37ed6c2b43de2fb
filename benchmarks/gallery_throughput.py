"""Gallery building throughput against the engine's own batch throughput, side by side.

Target (issue 17): ``build_gallery`` (what `sketchsearch gallery build` runs) reaches at least
0.9× the images/s of the same engine fed pre-decoded batches of the same images at the same
batch size, for the demo model and for efficientnet_b0: decoding must overlap inference.

Each repetition measures every case (model and images) both ways, one right after the
other, so that load from other processes hits both alike; the ratio is taken per repetition
and its median reported. Beside it, the ceiling measured in the same run: on a machine whose
cores the pipeline keeps busy, the ratio cannot exceed the engine's CPU time per image over
``build_gallery``'s (decoding, hashing and the index included). Diagnostics: ``embed_paths``
alone (the pipeline without the gallery: what the index and its commits cost), decoding
alone, the engine's slowdown inside the pipeline, its idle time, and with ``--sweep`` other
decode worker and prefetch counts and onnxruntime thread settings.

    python benchmarks/gallery_throughput.py [--engine model.onnx] [--images DIR | --synth PX]
    python benchmarks/gallery_throughput.py --case demo-output/model.onnx,demo,400 \\
        --case effnet/model.onnx,synth320,200
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sketchsearch.benchmarks.machine_info import machine_facts, run_record
from sketchsearch.benchmarks.retrieve_startup import DEMO, DEMO_PHOTOS, ensure_engine
from sketchsearch.data.strict_json import dumps
from sketchsearch.runtime.engines.onnx_engine import OnnxEngine
from sketchsearch.runtime.engines.protocol import Engine
from sketchsearch.runtime.gallery_build import Source, build_gallery, folder_sources
from sketchsearch.runtime.pipeline import embed_paths, load_image, pipeline_sizes

TARGET_RATIO = 0.9


@dataclass(frozen=True)
class Case:
    """One model and the images it indexes; sizes resolved as ``build_gallery`` resolves them."""

    model: Path
    root: Path
    sources: list[Source]
    batch_size: int
    workers: int


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


def one_repetition(engine: Engine, case: Case, work: Path) -> dict[str, float]:
    """Engine alone, then build_gallery, then embed_paths alone: images/s and CPU of each."""
    n, batch_size, workers = len(case.sources), case.batch_size, case.workers
    batches = decoded_batches(engine, case.sources, batch_size)
    cpu = time.process_time()
    engine_s = engine_seconds(engine, batches)
    engine_cpu = time.process_time() - cpu
    out = work / "gallery-throughput"
    shutil.rmtree(out, ignore_errors=True)
    cpu, start = time.process_time(), time.perf_counter()
    report = build_gallery(engine, out, case.root, case.sources, batch_size, workers, False)
    build_s, build_cpu = time.perf_counter() - start, time.process_time() - cpu
    if report.embedded != n:
        raise SystemExit(f"build_gallery embedded {report.embedded} of {n}: {report.failed[:3]}")
    files = [s.file for s in case.sources]
    cpu = time.process_time()
    pipeline = embed_paths(engine, files, batch_size, workers, progress=False)
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
        "build_cpu_ms": build_cpu / n * 1000,
        "ratio": engine_s / build_s,
        # the same without the gallery (its index, item database and commits)
        "embed_paths_ratio": engine_s / pipeline.wall_seconds,
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


def images_folder(spec: str | None, work: Path, count: int) -> Path:
    """``demo`` (or nothing): the demo photos; ``synthPX``: synthetic PX-px JPEGs; a folder."""
    if spec in (None, "demo"):
        return DEMO_PHOTOS if DEMO_PHOTOS.is_dir() else synth_images(work, 256, count)
    if spec.startswith("synth") and spec[5:].isdigit():
        return synth_images(work, int(spec[5:]), count)
    return Path(spec)


def make_case(
    model: Path, root: Path, count: int, batch_size: int | None, workers: int | None
) -> Case:
    """``count`` images spread over the folder, with the sizes ``build_gallery`` would pick."""
    found = folder_sources(root)
    picked = [found[int(i)] for i in np.linspace(0, len(found) - 1, min(count, len(found)))]
    sources = list({s.file: s for s in picked}.values())
    with OnnxEngine(model) as engine:
        input_size = engine.card.input_size
    sizes = pipeline_sizes(input_size, len(sources), batch_size, workers)
    return Case(model, root, sources, sizes.batch_size, sizes.workers)


def choose_cases(args: argparse.Namespace) -> list[Case]:
    """``--case MODEL,IMAGES[,COUNT]`` each; else one case of ``--engine`` and ``--images``."""
    if not args.case:
        model = ensure_engine(args.engine, args.checkpoint, args.work)
        spec = f"synth{args.synth}" if args.synth else str(args.images) if args.images else None
        root = images_folder(spec, args.work, args.count)
        return [make_case(model, root, args.count, args.batch_size, args.workers)]
    cases = []
    for text in args.case:
        model, spec, *rest = text.split(",")
        count = int(rest[0]) if rest else args.count
        root = images_folder(spec, args.work, count)
        cases.append(make_case(Path(model), root, count, args.batch_size, args.workers))
    return cases


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", type=Path, help="ONNX model (default: export --checkpoint)")
    parser.add_argument("--checkpoint", type=Path, default=DEMO / "run" / "best.ckpt")
    parser.add_argument("--images", type=Path, help="image folder (default: the demo photos)")
    parser.add_argument("--synth", type=int, metavar="PX", help="synthetic PX-px JPEGs instead")
    parser.add_argument(
        "--case",
        action="append",
        metavar="MODEL,IMAGES[,COUNT]",
        help="a model and its images (a folder, 'demo' or 'synthPX'), measured side by side "
        "with the other cases in each repetition; repeatable, replaces --engine and --images",
    )
    parser.add_argument("--count", type=int, default=400, help="images used (at most)")
    parser.add_argument("--batch-size", type=int, help="default: build_gallery's choice")
    parser.add_argument("--workers", type=int, help="decode threads (default: build_gallery's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep", action="store_true", help="also try other settings")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sketchsearch-bench"))
    parser.add_argument("--json", type=Path, help="default: WORK/gallery_throughput.json")
    return parser.parse_args(argv)


def case_report(engine: OnnxEngine, case: Case, rows: list[dict[str, float]]) -> dict[str, Any]:
    """One case's medians, its decoding alone, and its CPU ceilings."""
    ratio = median(rows, "ratio", 3)
    decode_wall, decode_cpu = decode_ms(engine, case.sources, 1)
    engine_cpu = median(rows, "engine_cpu_ms", 3)
    build_cpu = median(rows, "build_cpu_ms", 3)
    sources = case.sources
    return {
        "model": {"path": str(case.model), "backbone": engine.card.backbone},
        "input_px": engine.card.input_size,
        "images": {
            "folder": str(case.root),
            "count": len(sources),
            "suffix": sources[0].file.suffix,
        },
        "source_px": list(np.asarray(cv2.imread(str(sources[0].file))).shape[:2]),
        "batch_size": case.batch_size,
        "workers": case.workers,
        "meets_target": ratio >= TARGET_RATIO,
        "ratio_median": ratio,
        "ratios": [round(r["ratio"], 3) for r in rows],
        "engine_ips_median": median(rows, "engine_ips"),
        "build_gallery_ips_median": median(rows, "build_ips"),
        "build_gallery_ips_as_printed_median": median(rows, "build_ips_as_printed"),
        "embed_paths_ips_median": median(rows, "embed_paths_ips"),
        "embed_paths_ratio_median": median(rows, "embed_paths_ratio", 3),
        "engine_slowdown_in_pipeline": median(rows, "engine_slowdown_in_pipeline", 3),
        "engine_idle_fraction_in_pipeline": median(rows, "engine_idle_fraction", 3),
        "decode_alone_ms_per_image": {
            "wall_1_thread": round(decode_wall, 3),
            f"wall_{case.workers}_threads": round(decode_ms(engine, sources, case.workers)[0], 3),
            "cpu": round(decode_cpu, 3),
        },
        "cpu_ms_per_image": {
            "engine_alone": engine_cpu,
            "embed_paths": median(rows, "embed_paths_cpu_ms", 3),
            "build_gallery": build_cpu,
        },
        # The best ratio possible when every core is busy: the engine's CPU per image over
        # build_gallery's (decoding, hashing, the index and its commit included) ...
        "cpu_bound_ratio": round(engine_cpu / build_cpu, 3),
        # ... and over the engine's plus decoding alone (the index left out).
        "cpu_bound_ratio_decoding_only": round(engine_cpu / (engine_cpu + decode_cpu), 3),
    }


def measure_throughput(cases: list[Case], args: argparse.Namespace) -> dict[str, Any]:
    """Every case each repetition, one after the other; then the report, with the sweep."""
    load_before = os.getloadavg()[0]
    with ExitStack() as opened:
        engines = [opened.enter_context(OnnxEngine(c.model, spin=False)) for c in cases]
        for engine in engines:  # spin=False: as `gallery build` opens it
            engine.warmup()
        rows: list[list[dict[str, float]]] = [[] for _ in cases]
        for _ in range(args.repeats):
            for engine, case, samples in zip(engines, cases, rows, strict=True):
                samples.append(one_repetition(engine, case, args.work))
        reports = [case_report(*each) for each in zip(engines, cases, rows, strict=True)]
    report: dict[str, Any] = {
        "benchmark": "gallery_throughput",
        **run_record(),
        "target_ratio": TARGET_RATIO,
        "meets_target": all(case["meets_target"] for case in reports),
        "cases": reports,
        "repeats": args.repeats,
        "onnxruntime_threads": "default (one per core)",
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "environment": machine_facts(),
    }
    if args.sweep:
        report["sweep"] = [sweep(c.model, c.sources, c.batch_size, args.repeats) for c in cases]
    return report


def table(report: dict[str, Any]) -> str:
    """The cases as a Markdown table, as the README shows them."""
    lines = [
        "| model | input | images | batch | workers | engine img/s | build img/s | ratio "
        "| CPU ceiling | embedding alone |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in report["cases"]:
        images = case["images"]
        lines.append(
            f"| {case['model']['backbone']} | {case['input_px']} px | {images['count']} × "
            f"{case['source_px'][0]} px {images['suffix']} | {case['batch_size']} | "
            f"{case['workers']} | {case['engine_ips_median']:,} | "
            f"{case['build_gallery_ips_median']:,} | {case['ratio_median']:.2f} | "
            f"{case['cpu_bound_ratio']:.2f} | {case['embed_paths_ratio_median']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    report = measure_throughput(choose_cases(args), args)
    out = args.json or args.work / "gallery_throughput.json"
    out.write_text(dumps(report, indent=1) + "\n")
    print(dumps(report, indent=1))
    print(table(report))
    for case in report["cases"]:
        print(
            f"{case['model']['backbone']}: build_gallery {case['build_gallery_ips_median']} img/s "
            f"vs the engine alone {case['engine_ips_median']} img/s: ratio {case['ratio_median']} "
            f"(target ≥ {TARGET_RATIO}: {'met' if case['meets_target'] else 'MISSED'}); CPU "
            f"ceiling {case['cpu_bound_ratio']} ({case['cpu_bound_ratio_decoding_only']} with "
            f"decoding alone), engine slowdown in the pipeline "
            f"×{case['engine_slowdown_in_pipeline']}, engine idle "
            f"{case['engine_idle_fraction_in_pipeline']:.0%}"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
