"""The local runner: the shards of a plan one after another, in this process.

Each shard runs through the thread-pool pipeline (``embed_paths``): decoding threads feed one
engine. Shards go in order, so a killed run loses only the shard it was writing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from sketchsearch.runtime.embed_job import EmbedPlan
from sketchsearch.runtime.embed_shard import ShardSummary, embed_shard
from sketchsearch.runtime.engines.protocol import Engine


def run_local(
    engine: Engine,
    plan: EmbedPlan,
    pending: Sequence[int],
    out: Path,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> Iterator[ShardSummary]:
    """Embed and write each pending shard; yields each one's summary as it is written."""
    for index in pending:
        yield embed_shard(
            engine,
            plan.spec,
            index,
            plan.shard_sources(index),
            out,
            batch_size=batch_size,
            workers=workers,
            progress=progress,
        )
