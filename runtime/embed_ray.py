"""The Ray runner: shards embedded by a pool of Ray Data actors, one engine in each.

One Ray row is one pending shard (its index, and where its file list is in the listing file
the driver writes into the shards folder). ``map_batches`` runs an actor pool
(``ActorPoolStrategy``); each actor opens one engine with as many inference threads as it has
CPUs, decodes with the same pipeline as the local runner, and writes whole shards with
``write_shard`` into the shards folder, returning a small summary. So on a cluster the shards
folder and the images must be on a file system every node sees (the driver checks each shard
it is told about); the model need not be: a self-contained ``.onnx`` file travels to the
actors through Ray's object store. Any error on a worker comes back as one line naming the
shard and the node; an actor that dies is restarted a bounded number of times. Ray is an
optional extra, imported only by the Ray runner's modules and only when this runner is chosen.

This module is the driver; the Ray instance and the pool's layout are in embed_ray_cluster.py,
the actor in embed_ray_actor.py, the listing file in embed_ray_listing.py.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sketchsearch.data.errors import UsageError
from sketchsearch.gallery.errors import GalleryCorruptError
from sketchsearch.gallery.shard_file import read_header, shard_name
from sketchsearch.runtime.embed_job import LISTING_FILE, EmbedPlan, ShardSpec
from sketchsearch.runtime.embed_ray_actor import SHARED_FS, ActorSetup, ShardActor
from sketchsearch.runtime.embed_ray_cluster import actor_layout, quiet_ray_data
from sketchsearch.runtime.embed_ray_listing import EmbedWorkerError, write_listing
from sketchsearch.runtime.embed_shard import ShardSummary
from sketchsearch.runtime.pipeline import Failure

# Suffixes whose file can be the whole model, so it can travel as bytes (unless it keeps its
# weights in external data files: then the path is used).
SELF_CONTAINED = (".onnx",)
# An actor that dies (a crash, the OOM killer) is restarted and its shard retried this many
# times; then the run stops and names the shards left. Ray Data's default retries forever.
ACTOR_RETRIES = 2
# Ray's C++ core logs this at error level for every actor pool whose constructor arguments
# Ray Data itself put in the object store; it is advice to Ray's developers, not an error.
RAY_NOISE = re.compile(
    rb"core_worker\.cc:\d+: Actor .* has constructor arguments in the object store"
)
_CAUSE = re.compile(r"^([\w.]+\.)?\w*(Error|Exception|Exit)\b.*: ")


def run_ray(
    ray: Any,
    model: Path,
    plan: EmbedPlan,
    pending: Sequence[int],
    out: Path,
    workers: int | None = None,
    provider: str | None = None,
    backend: str | None = None,
    batch_size: int | None = None,
) -> Iterator[ShardSummary]:
    """Embed the pending shards on an actor pool; yields summaries as shards are written."""
    if not pending:
        return
    quiet_ray_data(ray)
    layout = actor_layout(ray, workers)
    ships_bytes = model.suffix.lower() in SELF_CONTAINED and not has_external_data(model)
    setup = ActorSetup(
        spec=plan.spec,
        out=str(out.resolve()),
        model_name=model.name,
        model_path=None if ships_bytes else str(model.resolve()),
        threads=layout.cpus,
        provider=provider,
        backend=backend,
        batch_size=batch_size,
    )
    # Wrapped in a list so Ray passes the reference, and each actor fetches the bytes itself.
    model_ref = [ray.put(model.read_bytes())] if ships_bytes else []
    # The pending shards' file lists go to one file in the (shared) shards folder, written
    # line by line; a Ray row is only (shard, offset, length), so neither the driver nor the
    # object store holds the listing a second time, whatever the collection's size.
    spans = write_listing(out, plan, pending)
    rows = [{"index": i, "offset": o, "length": n} for i, (o, n) in spans.items()]
    with warnings.catch_warnings():
        # Ray Data 2.60 names no parameter for actor restarts; its generic remote arguments
        # still work but warn that they are deprecated.
        warnings.filterwarnings("ignore", message=".*ray_remote_args. is deprecated")
        shards = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            ShardActor,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(layout.actors, len(rows))),
            num_cpus=layout.cpus,
            fn_constructor_kwargs={"setup": setup, "model_ref": model_ref},
            max_restarts=ACTOR_RETRIES,
            max_task_retries=ACTOR_RETRIES,
        )
    left = set(pending)
    try:
        with _without_lines(RAY_NOISE):
            yield from _summaries(shards, out, plan.spec, left)
    except ray.exceptions.RayError as err:
        raise EmbedWorkerError(_ray_failure(err, sorted(left))) from None
    (out / LISTING_FILE).unlink(missing_ok=True)  # every shard written: no longer needed


def _summaries(shards: Any, out: Path, spec: ShardSpec, left: set[int]) -> Iterator[ShardSummary]:
    """Each written shard's summary, checked; ``left`` keeps the shards not reported yet."""
    for row in shards.iter_rows():
        if row["error"]:
            raise pickle.loads(row["error"])  # our own actors' exception, our Ray
        if row["message"]:
            raise EmbedWorkerError(row["message"])
        summary = _summary(json.loads(row["summary"]))
        check_written(out, spec, summary.index, str(row.get("node", "?")))
        left.discard(summary.index)
        yield summary


@contextmanager
def _without_lines(noise: re.Pattern[bytes]) -> Iterator[None]:
    """Drop the lines matching ``noise`` from this process's stderr (file descriptor 2, where
    Ray's C++ core writes) while the block runs; every other line passes on unchanged."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded use): nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as source:
            for line in iter(source.readline, b""):
                if not noise.search(line):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the pump reads to its end
        thread.join(timeout=5)
        if not thread.is_alive():
            os.close(saved)


def has_external_data(model: Path) -> bool:
    """Whether an ``.onnx`` file keeps tensors in files beside it (then its bytes alone are
    not the model). Without the ``onnx`` package, assume it might: the path is then used."""
    try:
        import onnx
        from onnx.external_data_helper import uses_external_data
    except ImportError:
        return True
    try:
        proto = onnx.load_model(str(model), load_external_data=False)
    except Exception:  # unreadable here: the engine reports it in one line
        return False
    graphs = [proto.graph]
    while graphs:
        graph = graphs.pop()
        if any(uses_external_data(t) for t in graph.initializer):
            return True
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.t is not None and uses_external_data(attribute.t):
                    return True
                graphs.extend(attribute.graphs)
                if attribute.HasField("g"):
                    graphs.append(attribute.g)
    return False


def check_written(out: Path, spec: ShardSpec, index: int, node: str = "?") -> None:
    """The driver's check that a worker's shard is where the driver reads: on a cluster, a
    worker whose ``--out`` is its own disk writes shards nobody else sees."""
    path = out / shard_name(index)
    problem = None
    if not path.is_file():
        problem = "is missing"
    else:
        try:
            header = read_header(path)
        except GalleryCorruptError:
            problem = "is not readable here"
        else:
            if header.plan != spec.fingerprint or header.index != index:
                problem = "is another run's"
    if problem is not None:
        raise UsageError(
            f"{path}: written by a Ray worker on {node}, but {problem} on this machine: {SHARED_FS}"
        )


def _ray_failure(err: Exception, left: list[int]) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    # Ray's message is a traceback and advice; the line naming the first cause says most.
    causes = [line for line in lines if _CAUSE.match(line) and "UserCodeException" not in line]
    reason = (causes or lines or [type(err).__name__])[-1]
    shown = ", ".join(map(str, left[:10])) + (
        f" and {len(left) - 10} more" if len(left) > 10 else ""
    )
    return (
        f"Ray stopped the run ({type(err).__name__}: {reason[:300]}); a worker that dies is "
        f"restarted {ACTOR_RETRIES} times per shard; shards not written: {shown or 'none'} "
        "(rerun to embed them)"
    )


def _summary(raw: dict[str, Any]) -> ShardSummary:
    return ShardSummary(
        index=int(raw["index"]),
        rows=int(raw["rows"]),
        failures=tuple(Failure(str(f["path"]), str(f["problem"])) for f in raw["failures"]),
        seconds=float(raw["seconds"]),
        embed_seconds=float(raw["embed_seconds"]),
        started_at=float(raw["started_at"]),
        ended_at=float(raw["ended_at"]),
    )
