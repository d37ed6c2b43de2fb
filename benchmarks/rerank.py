"""Query-time re-ranking: retrieval quality and added latency of none, aqe and kreciprocal.

    python benchmarks/rerank.py --engine model.onnx --index gallery/ \\
        --split split.json:test --data DATA [--instance] [--rerank-k 100] [--json rerank.json]
    python -m sketchsearch.benchmarks.rerank ...      # the same

The queries are embedded once; each method is then scored by
``runtime.evaluation.evaluate.score_queries``, the code behind
``sketchsearch evaluate --rerank`` (metrics from the HNSW search that serving uses;
exhaustive-search figures in the JSON). Latency is per single query, as ``retrieve`` answers
one: the search (k = 10 without re-ranking, the shortlist K with it), then fetching the
shortlist's vectors by id and re-ranking them; medians over the queries. "added" is the
median total minus that of no re-ranking.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.benchmarks.machine_info import machine_facts
from sketchsearch.data.split_spec import SplitPart, parse_split_spec
from sketchsearch.data.strict_json import dumps
from sketchsearch.gallery.store import GalleryStore
from sketchsearch.gallery.store_table import open_gallery
from sketchsearch.runtime.engines.protocol import Engine
from sketchsearch.runtime.evaluation.evaluate import embed_part_queries, score_queries
from sketchsearch.runtime.rerank import DEFAULT_SHORTLIST, RERANK_METHODS, RerankConfig, rerank

PLAIN_K = 10  # what retrieve returns by default: the search a plain query pays for
SHOWN = ("mAP@all", "mAP@200", "P@1", "recall@5")


@dataclass(frozen=True)
class RerankBenchConfig:
    methods: tuple[str, ...] = RERANK_METHODS
    shortlist: int = DEFAULT_SHORTLIST
    instance: bool = False
    direction: tuple[str, str] | None = None
    latency_queries: int = 200  # the first this many queries are timed one by one
    batch_size: int = 32


def time_one_query(
    gallery: GalleryStore, vector: np.ndarray, reranking: RerankConfig
) -> tuple[float, float]:
    """Seconds for the search, and for fetching the shortlist and re-ranking it."""
    start = time.perf_counter()
    (result,) = gallery.search(vector[None], reranking.shortlist if reranking.active else PLAIN_K)
    searched = time.perf_counter()
    if reranking.active:
        shortlist = gallery.vectors(result.ids)
        rerank(reranking, vector[None], shortlist[None])
    return searched - start, time.perf_counter() - searched


def measure_latency(
    gallery: GalleryStore, vectors: np.ndarray, reranking: RerankConfig
) -> dict[str, float]:
    time_one_query(gallery, vectors[0], reranking)  # warm-up
    samples = [time_one_query(gallery, vector, reranking) for vector in vectors]
    search = [s * 1000 for s, _ in samples]
    reranked = [r * 1000 for _, r in samples]
    return {
        "search_ms_p50": round(statistics.median(search), 4),
        "rerank_ms_p50": round(statistics.median(reranked), 4),
        "rerank_ms_p90": round(float(np.percentile(reranked, 90)), 4),
        "total_ms_p50": round(statistics.median(s + r for s, r in samples) * 1000, 4),
    }


def measure_reranking(
    engine: Engine, gallery: GalleryStore, part: SplitPart, config: RerankBenchConfig
) -> dict[str, Any]:
    """One row per method: metrics through the runtime's evaluation, and latency per query."""
    queries = embed_part_queries(engine, part, config.direction, config.batch_size)
    vectors = queries[2].vectors
    timed = vectors[: config.latency_queries]
    rows = []
    for method in config.methods:
        reranking = RerankConfig(method=method, shortlist=config.shortlist)
        result = score_queries(gallery, queries, config.instance, reranking=reranking)
        rows.append(
            {
                "method": method,
                "rerank": reranking.to_dict(),
                "hnsw": result.hnsw,
                "exact": result.exact,
                "batch_rerank_s": result.seconds.get("rerank", 0.0),
                **measure_latency(gallery, timed, reranking),
            }
        )
    plain = next((row["total_ms_p50"] for row in rows if row["method"] == "none"), None)
    for row in rows:
        row["added_ms_p50"] = None if plain is None else round(row["total_ms_p50"] - plain, 4)
    return {
        "kind": "sketchsearch-rerank",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "environment": machine_facts(numpy=np.__version__),
        "settings": {
            "split": f"{part.source}:{part.part}",
            "match": "instance" if config.instance else "category",
            "queries": len(vectors),
            "timed_queries": len(timed),
            "gallery_items": gallery.manifest.live,
            "shortlist": config.shortlist,
            "engine": str(engine.path),
        },
        "rows": rows,
    }


def table(report: dict[str, Any]) -> str:
    settings = report["settings"]
    lines = [
        f"{settings['split']}, {settings['match']} relevance: {settings['queries']} queries, "
        f"{settings['gallery_items']} gallery items, shortlist {settings['shortlist']} "
        f"(latency over {settings['timed_queries']} single queries, medians)",
        f"  {'method':<12}"
        + "".join(f" {name:>9}" for name in SHOWN)
        + f" {'search ms':>10} {'rerank ms':>10} {'added ms':>9}",
    ]
    for row in report["rows"]:
        metrics = "".join(f" {row['hnsw'][name]:>9.4f}" for name in SHOWN)
        added = "-" if row["added_ms_p50"] is None else f"{row['added_ms_p50']:+.3f}"
        lines.append(
            f"  {row['method']:<12}{metrics} {row['search_ms_p50']:>10.3f} "
            f"{row['rerank_ms_p50']:>10.3f} {added:>9}"
        )
    return "\n".join(lines)


def _direction(option: str | None) -> tuple[str, str] | None:
    if option is None:
        return None
    query, gallery = option.split("2")
    return query, gallery


def _engine_help() -> str:
    """``--engine``'s help: the model files the backend table opens (argparse-escaped)."""
    from sketchsearch.runtime.engines.table import describe_backends

    return f"Model file: {describe_backends()}.".replace("%", "%%")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--engine", type=Path, required=True, help=_engine_help())
    parser.add_argument("--index", type=Path, required=True, help="Gallery folder.")
    parser.add_argument("--split", required=True, metavar="SPLIT:PART", help="Queries.")
    parser.add_argument("--data", type=Path, required=True, help="Data root of --split.")
    parser.add_argument("--instance", action="store_true", help="Instance relevance.")
    parser.add_argument("--direction", choices=("sketch2photo", "photo2sketch"))
    parser.add_argument("--methods", default=",".join(RERANK_METHODS))
    parser.add_argument("--rerank-k", type=int, default=DEFAULT_SHORTLIST, help="Shortlist K.")
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--threads", type=int, help="Inference threads.")
    parser.add_argument("--json", type=Path, help="Write the report as JSON.")
    args = parser.parse_args(argv)
    from sketchsearch.runtime.engines.table import open_engine
    from sketchsearch.runtime.retriever import model_ref

    config = RerankBenchConfig(
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        shortlist=args.rerank_k,
        instance=args.instance,
        direction=_direction(args.direction),
        latency_queries=max(1, args.latency_queries),
    )
    for method in config.methods:  # refuse a bad method or K before embedding anything
        RerankConfig(method=method, shortlist=config.shortlist)
    part = parse_split_spec(args.split, args.data)
    with (
        open_engine(args.engine, threads=args.threads, batch_pipeline=True) as engine,
        open_gallery(args.index, expected_model=model_ref(engine.card)) as gallery,
    ):
        report = measure_reranking(engine, gallery, part, config)
    print(table(report))
    if args.json:
        args.json.write_text(dumps(report, indent=1) + "\n")
        print(f"report: {args.json}")


if __name__ == "__main__":
    main()
