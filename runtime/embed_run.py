"""``run_embed``: a collection into embedding shards, on the local or the Ray runner.

The entry point of ``sketchsearch embed`` and of the scale benchmark. It plans (sorted listing,
slicing, fingerprint), checks the shards folder against the plan before embedding anything,
runs the pending shards, and reports counts, failures and images per second. Files that cannot
be embedded are failures, recorded per shard, and the run carries on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sketchsearch.data.errors import UsageError
from sketchsearch.data.regular_file import max_file_bytes
from sketchsearch.gallery.manifest import GallerySource
from sketchsearch.runtime.embed_job import (
    DEFAULT_SHARD_SIZE,
    LISTING_FAILURES,
    EmbedPlan,
    failures_path,
    make_plan,
    prepare_folder,
)
from sketchsearch.runtime.embed_shard import (
    ShardSummary,
    printable,
    read_failures,
    write_failures,
)
from sketchsearch.runtime.engines.table import backend_opening, open_engine
from sketchsearch.runtime.gallery_build import FOLDER_SOURCE, Source, inside_root
from sketchsearch.runtime.model_card import ModelCard
from sketchsearch.runtime.pipeline import Failure

RUNNERS = ("local", "ray")
SHOWN_FAILURES = 100


@dataclass(frozen=True)
class EmbedConfig:
    """How to embed: the model, where shards go, and the runner's settings."""

    engine: Path
    out: Path
    shard_size: int = DEFAULT_SHARD_SIZE
    dtype: str = "float32"
    runner: str = "local"
    workers: int | None = None  # ray: actors (at most the CPUs); local: decoding threads
    ray_address: str | None = None  # None: a new local Ray instance (RAY_ADDRESS is ignored)
    provider: str | None = None
    backend: str | None = None
    threads: int | None = None  # local runner only; a Ray actor's threads are its CPUs
    batch_size: int | None = None
    restart: bool = False  # delete this folder's shards first
    progress: bool | None = None  # None: a bar on a terminal (local runner)


@dataclass
class EmbedReport:
    out: Path
    runner: str
    workers: int = 0  # actors (ray) or decoding threads (local; 0: the pipeline's default)
    images: int = 0  # in the plan
    shards: int = 0  # in the plan
    shards_skipped: int = 0  # finished by an earlier run
    shards_written: int = 0
    embedded: int = 0  # by this run
    failed: int = 0  # files that failed, in this run's shards and the listing
    failed_before: int = 0  # recorded by the shards an earlier run finished
    failures: list[Failure] = field(default_factory=list)  # the first SHOWN_FAILURES
    failure_files: list[Path] = field(default_factory=list)
    seconds: float = 0.0  # the embedding phase, once engines are up
    wall_seconds: float = 0.0
    startup_seconds: float = 0.0  # joining or starting Ray (0 for the local runner)
    embed_seconds: float = 0.0  # inference, summed over workers
    # From the first shard's start to the last one's end on the workers: the embedding work
    # without Ray's start-up and actor creation (worker clocks on a cluster).
    work_seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    @property
    def work_images_per_second(self) -> float:
        """Throughput once the workers are up: what a long run tends to."""
        return self.embedded / self.work_seconds if self.work_seconds > 0 else 0.0


def run_embed(
    config: EmbedConfig,
    sources: Sequence[Source],
    root: Path,
    source: GallerySource = FOLDER_SOURCE,
    refused: Sequence[Failure] = (),
    say: Callable[[str], None] | None = None,
) -> EmbedReport:
    """Embed ``sources`` (under ``root``) into shards in ``config.out``; ``refused``: listed
    files already known to be unusable (outside the root), reported as failures."""
    start = time.perf_counter()
    if config.runner not in RUNNERS:
        raise UsageError(f"--runner {config.runner}: use one of {', '.join(RUNNERS)}")
    max_file_bytes()  # a bad limit is refused before anything starts
    if config.runner == "ray":
        from sketchsearch.runtime.embed_ray_cluster import import_ray

        import_ray()  # missing: refused before the folder is touched
    if config.runner == "ray" and config.threads is not None:
        raise UsageError(
            "--threads is for the local runner; a Ray actor runs as many threads as it has "
            "CPUs (choose how many actors with --workers)"
        )
    kept, escaping = inside_root(root, sources)
    listing_failures = [Failure(printable(f.path), f.problem) for f in [*refused, *escaping]]
    if not kept:
        raise UsageError(_nothing_to_embed(listing_failures))
    card = _card(config)
    plan = make_plan(card, kept, root, source, config.shard_size, config.dtype)
    pending = prepare_folder(config.out, plan, config.restart)
    write_failures(config.out / LISTING_FAILURES, listing_failures)
    report = EmbedReport(config.out, config.runner, config.workers or 0)
    report.images, report.shards = len(plan.sources), plan.shards
    report.shards_skipped = plan.shards - len(pending)
    todo = set(pending)
    report.failed_before = sum(
        len(read_failures(failures_path(config.out, i)))
        for i in range(plan.shards)
        if i not in todo
    )
    _record_failures(report, listing_failures, config.out / LISTING_FAILURES)
    if pending:
        _run(config, plan, pending, report, say or (lambda line: None))
    report.wall_seconds = time.perf_counter() - start
    return report


def _nothing_to_embed(refused: list[Failure]) -> str:
    if not refused:
        return "no images to embed"
    shown = "; ".join(str(f) for f in refused[:3])
    more = f"; and {len(refused) - 3} more" if len(refused) > 3 else ""
    return f"no images to embed: all {len(refused)} listed files were refused ({shown}{more})"


def _card(config: EmbedConfig) -> ModelCard:
    """The model's card, read without starting an inference session where the backend can."""
    if not config.engine.exists():
        raise UsageError(f"--engine {config.engine}: model file not found")
    backend = backend_opening(config.engine, config.backend)
    card = backend.read_card(config.engine)
    if card is None:
        with open_engine(config.engine, backend=config.backend, domain="gallery") as engine:
            card = engine.card
    if not card.embeds("gallery"):
        raise UsageError(
            f"{config.engine}: this file holds the query encoder of a model with separate "
            "encoders; embed with its .gallery.onnx"
        )
    return card


def _run(
    config: EmbedConfig,
    plan: EmbedPlan,
    pending: list[int],
    report: EmbedReport,
    say: Callable[[str], None],
) -> None:
    tick = time.perf_counter()
    session: AbstractContextManager[Any]
    if config.runner == "ray":
        from sketchsearch.runtime.embed_ray import run_ray
        from sketchsearch.runtime.embed_ray_cluster import actor_layout, ray_session

        session = ray_session(config.ray_address)
    else:
        session = nullcontext(None)
    with session as ray:
        report.startup_seconds = time.perf_counter() - tick
        phase = time.perf_counter()
        if ray is not None:
            report.workers = actor_layout(ray, config.workers).actors
            summaries: Iterator[ShardSummary] = run_ray(
                ray,
                config.engine,
                plan,
                pending,
                config.out,
                config.workers,
                config.provider,
                config.backend,
                config.batch_size,
            )
            _collect(summaries, report, config.out, say)
        else:
            _run_local(config, plan, pending, report, say)
        report.seconds = time.perf_counter() - phase


def _run_local(
    config: EmbedConfig,
    plan: EmbedPlan,
    pending: list[int],
    report: EmbedReport,
    say: Callable[[str], None],
) -> None:
    from sketchsearch.runtime.embed_local import run_local

    with open_engine(
        config.engine,
        provider=config.provider,
        threads=config.threads,
        batch_pipeline=True,
        domain="gallery",
        backend=config.backend,
    ) as engine:
        summaries = run_local(
            engine, plan, pending, config.out, config.batch_size, config.workers, config.progress
        )
        _collect(summaries, report, config.out, say)


def _collect(
    summaries: Iterator[ShardSummary], report: EmbedReport, out: Path, say: Callable[[str], None]
) -> None:
    pending = report.shards - report.shards_skipped
    first, last = float("inf"), float("-inf")
    for summary in summaries:
        first, last = min(first, summary.started_at), max(last, summary.ended_at)
        report.work_seconds = last - first
        report.shards_written += 1
        report.embedded += summary.rows
        report.embed_seconds += summary.embed_seconds
        _record_failures(report, list(summary.failures), failures_path(out, summary.index))
        say(
            f"shard {summary.index}: {summary.rows} embedded, {len(summary.failures)} failed, "
            f"{summary.seconds:.1f} s ({report.shards_written}/{pending} of this run)"
        )


def _record_failures(report: EmbedReport, failures: list[Failure], where: Path) -> None:
    if not failures:
        return
    report.failed += len(failures)
    report.failure_files.append(where)
    room = SHOWN_FAILURES - len(report.failures)
    report.failures.extend(failures[: max(0, room)])


def describe_embed(report: EmbedReport) -> str:
    """The closing summary: counts, speed, and where the failures are recorded."""
    lines = [
        f"{report.out}: {report.embedded} embedded in {report.shards_written} shards, "
        f"{report.shards_skipped} shards already done, {report.shards} in all "
        f"({report.images} images); failed {report.failed}"
        + (f" (+{report.failed_before} recorded earlier)" if report.failed_before else "")
        + f"; {report.seconds:.1f} s embedding ({report.images_per_second:.1f} img/s, "
        f"{report.work_images_per_second:.1f} img/s once started, {report.runner} runner), "
        f"{report.wall_seconds:.1f} s in all"
    ]
    lines.extend(f"  failed: {failure}" for failure in report.failures[:20])
    if report.failed > 20:
        lines.append(f"  … and {report.failed - 20} more")
    if report.failure_files:
        shown = ", ".join(str(p) for p in report.failure_files[:5])
        more = len(report.failure_files) - 5
        lines.append(f"  failures recorded in {shown}" + (f" and {more} more" if more > 0 else ""))
    return "\n".join(lines)
