"""Gallery ANN benchmark: build time, memory, recall against exact search, QPS and latency.

The vectors are clustered like real embeddings (a mixture of Gaussians around a few hundred
centres, L2-normalised); uniform random vectors would be the unrealistic worst case. Queries
are fresh draws from the same mixture. Recall@k is the fraction of returned scores at least as
good as the true k-th best (distances, not ids, because ties reorder).

    python benchmarks/ann.py --sizes 10000,100000 --json ann.json
    python benchmarks/ann.py --sizes 1000000        # by hand: about 5 GB of RAM

The JSON records the date, the command and the machine (with its fingerprint), so that a
report can tell this machine's results from a file committed on another host.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from sketchsearch.benchmarks.machine_info import machine_facts, run_record
from sketchsearch.data import strict_json
from sketchsearch.gallery import Gallery, GalleryItem, ModelRef
from sketchsearch.gallery.gallery import DEFAULT_EF, DEFAULT_EF_CONSTRUCTION, DEFAULT_M
from sketchsearch.gallery.index import VectorIndex

DIM, CENTRES, SPREAD = 512, 300, 0.6
EF_SWEEP = (10, 16, 32, 64, 128, 256)


def clustered(n: int, seed: int) -> np.ndarray:
    means = np.random.default_rng(0).normal(size=(CENTRES, DIM))
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, 50_000):  # chunks keep the float64 temporaries small
        size = min(50_000, n - start)
        block = means[rng.integers(0, CENTRES, size)] + SPREAD * rng.normal(size=(size, DIM))
        out[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def exact_kth_scores(
    queries: np.ndarray, vectors: np.ndarray, ks: tuple[int, ...]
) -> dict[int, np.ndarray]:
    best = np.full((len(queries), max(ks)), -np.inf, np.float32)
    for start in range(0, len(vectors), 100_000):
        scores = queries @ vectors[start : start + 100_000].T
        best = -np.sort(-np.concatenate([best, scores], axis=1), axis=1)[:, : max(ks)]
    return {k: best[:, k - 1 : k] for k in ks}


def recall(found: np.ndarray, kth: np.ndarray) -> float:
    return float(np.mean(found >= kth - 1e-5))


def build(folder: Path, vectors: np.ndarray) -> dict[str, float]:
    model = ModelRef(family="benchmark", name="synthetic", dim=DIM)
    start = time.perf_counter()
    with Gallery.create(folder, DIM, model=model) as gallery:
        for offset in range(0, len(vectors), 10_000):
            chunk = vectors[offset : offset + 10_000]
            items = [
                GalleryItem(f"img/{offset + i}.jpg", f"{offset + i}") for i in range(len(chunk))
            ]
            gallery.add(chunk, items)
        added = time.perf_counter()
    return {"build_s": round(added - start, 2), "commit_s": round(time.perf_counter() - added, 2)}


_OPEN_PROBE = """
import os, sys, time
from sketchsearch.data.strict_json import dumps
from sketchsearch.gallery import Gallery
def rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
start = time.perf_counter()
gallery = Gallery.open(sys.argv[1])
print(dumps({"open_s": time.perf_counter() - start, "rss": rss() - before}))
"""


def timed_open(folder: Path) -> tuple[float, int]:
    """Median over three fresh processes: open time, and resident memory the open added."""
    probes = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", _OPEN_PROBE, str(folder)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(3)
    ]
    return statistics.median(p["open_s"] for p in probes), int(
        statistics.median(p["rss"] for p in probes)
    )


def latency(gallery: Gallery, queries: np.ndarray, k: int) -> dict[str, float]:
    samples = []
    for query in queries:
        start = time.perf_counter()
        gallery.search(query[None, :], k=k)
        samples.append(time.perf_counter() - start)
    ms = np.array(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def sweep(
    index: VectorIndex, queries: np.ndarray, kth: dict[int, np.ndarray], ids: np.ndarray
) -> list[dict[str, float]]:
    rows = []
    for ef in EF_SWEEP:
        row: dict[str, float] = {"ef": ef, "ef_used_for_k100": max(ef, 100)}  # ef >= k always
        for k in (10, 100):
            _, scores = index.search(queries, k, ef, None, 1, lambda: ids)
            row[f"recall@{k}"] = round(recall(scores, kth[k]), 4)
        for threads in (1, 2):
            start = time.perf_counter()
            index.search(queries, 10, ef, None, threads, lambda: ids)
            row[f"qps_{threads}_thread"] = round(len(queries) / (time.perf_counter() - start))
        rows.append(row)
    return rows


def measure(size: int, queries_n: int, workdir: Path) -> dict[str, Any]:
    vectors, queries = clustered(size, seed=1), clustered(queries_n, seed=2)
    kth = exact_kth_scores(queries, vectors, (10, 100))
    folder = workdir / f"gallery-{size}"
    result: dict[str, Any] = {"n": size, **build(folder, vectors)}
    open_s, rss = timed_open(folder)
    index_bytes = (folder / "index.bin").stat().st_size
    result |= {
        "open_s": round(open_s, 3),
        "index_bytes_per_item": round(index_bytes / size, 1),
        "items_sqlite_bytes_per_item": round((folder / "items.sqlite").stat().st_size / size, 1),
        "rss_bytes_per_item_after_open": round(rss / size, 1),
    }
    with Gallery.open(folder) as gallery:
        found10 = np.array([r.scores for r in gallery.search(queries, k=10)])
        found100 = np.array([r.scores for r in gallery.search(queries, k=100)])
        result["defaults"] = {
            "M": DEFAULT_M,
            "ef_construction": DEFAULT_EF_CONSTRUCTION,
            "ef": DEFAULT_EF,
            "recall@10": round(recall(found10, kth[10]), 4),
            "recall@100": round(recall(found100, kth[100]), 4),
            "single_query_k10": latency(gallery, queries, 10),
        }
        for threads in (1, 2):
            start = time.perf_counter()
            gallery.search(queries, k=10, threads=threads)
            result["defaults"][f"qps_{threads}_thread"] = round(
                queries_n / (time.perf_counter() - start)
            )
    index, _ = VectorIndex.load(
        folder / "index.bin", space="cosine", dim=DIM, M=DEFAULT_M, ef=1, count=size
    )
    result["ef_sweep"] = sweep(index, queries, kth, np.arange(size))
    return result


def environment() -> dict[str, str]:
    return machine_facts(hnswlib=getattr(hnswlib, "__version__", "0.8.0"), numpy=np.__version__)


def run_ann(
    sizes: tuple[int, ...],
    queries: int,
    argv: list[str] | None = None,
    show: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every size measured in a temporary folder; the JSON ann.py writes. ``argv``: the
    command recorded (default: this process's); ``show`` is given each size's results."""
    report: dict[str, Any] = {
        "dim": DIM,
        "centres": CENTRES,
        **run_record(argv),
        "environment": environment(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            run = measure(size, queries, Path(tmp))
            report["runs"].append(run)
            show(strict_json.dumps(run, indent=1))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    command = None if argv is None else ["benchmarks/ann.py", *argv]
    report = run_ann(sizes, args.queries, command)
    if args.json:
        args.json.write_text(strict_json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
