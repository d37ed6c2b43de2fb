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
optional extra, imported only here and only when this runner is chosen.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.data.errors import SketchsearchError, UsageError
from sketchsearch.data.strict_json import dumps
from sketchsearch.gallery.errors import GalleryCorruptError
from sketchsearch.gallery.shard_file import read_header, shard_name
from sketchsearch.runtime.embed_job import LISTING_FILE, EmbedPlan, ShardSpec
from sketchsearch.runtime.embed_shard import ShardSummary, embed_shard
from sketchsearch.runtime.gallery_build import Source
from sketchsearch.runtime.machine import available_cpus
from sketchsearch.runtime.pipeline import Failure, default_workers

# Enough for the small rows and summaries this runner puts there, and the model's bytes.
OBJECT_STORE_BYTES = 256 * 2**20
# Default CPUs per actor: a few threads per onnxruntime session scale well; more actors
# beyond that keep more cores busy than one wide session does.
DEFAULT_ACTOR_CPUS = 4
# Suffixes whose file can be the whole model, so it can travel as bytes (unless it keeps its
# weights in external data files: then the path is used).
SELF_CONTAINED = (".onnx",)
# An actor that dies (a crash, the OOM killer) is restarted and its shard retried this many
# times; then the run stops and names the shards left. Ray Data's default retries forever.
ACTOR_RETRIES = 2
# How long the pool may wait for its first actors to be placed: a pool no node can hold fails
# with one line instead of waiting forever (Ray Data's default).
WAIT_FOR_ACTORS_S = 600
SHARED_FS = "--out must be on a file system every node sees"
# Ray's C++ core logs this at error level for every actor pool whose constructor arguments
# Ray Data itself put in the object store; it is advice to Ray's developers, not an error.
RAY_NOISE = re.compile(
    rb"core_worker\.cc:\d+: Actor .* has constructor arguments in the object store"
)
_CAUSE = re.compile(r"^([\w.]+\.)?\w*(Error|Exception|Exit)\b.*: ")


class EmbedWorkerError(SketchsearchError):
    """A Ray worker could not embed or write a shard (its own disk, a crash): one line."""


@dataclass(frozen=True)
class ActorSetup:
    """What each actor needs to open its engine and write shards."""

    spec: ShardSpec
    out: str
    model_name: str
    model_path: str | None  # read on the worker (shared file system) when no bytes travel
    threads: int
    provider: str | None
    backend: str | None
    batch_size: int | None


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError(
            "--runner ray needs Ray Data: pip install 'sketchsearch[ray]' (or use --runner local)"
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Ray, started here (and stopped after) unless this process already joined one.

    Without ``address`` a new local instance is started, whatever ``RAY_ADDRESS`` or a local
    ``ray start`` says: joining one silently would run on someone else's cluster.
    """
    ray = import_ray()
    if ray.is_initialized():
        if address is not None:
            raise UsageError(
                f"--ray-address {address}: this process has already joined a Ray instance; "
                "leave --ray-address out to use it"
            )
        yield ray
        return
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        options.update(
            num_cpus=available_cpus(),
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
        )
    where = f"--ray-address {address}" if address else "a local Ray instance"
    try:
        ray.init(address=address or "local", **options)
    except (ConnectionError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"{where}: cannot start or join Ray ({first})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class ActorLayout:
    actors: int
    cpus: int  # per actor


def actor_layout(ray: Any, workers: int | None) -> ActorLayout:
    """The layout for the cluster ``ray`` joined: see :func:`plan_layout`."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    largest = max((int(n.get("Resources", {}).get("CPU", 0)) for n in nodes), default=cpus)
    return plan_layout(cpus, max(1, largest), workers)


def plan_layout(cpus: int, largest_node: int, workers: int | None) -> ActorLayout:
    """(actors, CPUs per actor) over ``cpus`` CPUs whose largest node has ``largest_node``.

    By default an actor per ``DEFAULT_ACTOR_CPUS`` CPUs (a few threads per onnxruntime
    session scale well; more actors beyond that keep more cores busy). ``workers`` asks for
    that many actors, at most one per CPU. An actor never asks for more CPUs than one node
    has, or no node could place it and the pool would wait for ever.
    """
    asked = max(1, cpus // DEFAULT_ACTOR_CPUS) if workers is None else min(workers, cpus)
    actors = max(1, asked)
    per_actor = max(1, min(cpus // actors, largest_node))
    if workers is None:
        actors = max(actors, cpus // per_actor)
    return ActorLayout(actors, per_actor)


def quiet_ray_data(ray: Any) -> None:
    """No progress bars or execution banners from Ray Data; warnings and errors stay."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    context.verbose_stats_logs = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # It warns that the bars are off, which is what we asked for.
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    context.wait_for_min_actors_s = WAIT_FOR_ACTORS_S


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


class ShardActor:
    """One engine per actor; called with one shard per batch."""

    def __init__(self, setup: ActorSetup, model_ref: list[Any]) -> None:
        from sketchsearch.runtime.engines.table import open_engine

        self.setup = setup
        folder = None
        if setup.model_path is None:
            import ray

            folder = tempfile.mkdtemp(prefix="sketchsearch-model-")
            path = Path(folder) / setup.model_name
            path.write_bytes(ray.get(model_ref[0]))
        else:
            path = Path(setup.model_path)
        self.node = _node_name()
        self.error: SketchsearchError | str | None = None
        try:
            self.engine = open_engine(
                path,
                provider=setup.provider,
                threads=setup.threads,
                batch_pipeline=True,
                domain="gallery",
                backend=setup.backend,
            )
        except SketchsearchError as err:  # a user's error: the driver raises it as one line
            self.error = err
        except Exception as err:  # crosses Ray as one line, not a traceback
            self.error = f"cannot open the model on {self.node}: {type(err).__name__}: {err}"
        finally:  # the session holds the model in memory now
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        done, errors, messages = [], [], []
        spans = zip(batch["index"], batch["offset"], batch["length"], strict=True)
        for index, offset, length in spans:
            summary, error, message = "", b"", ""
            try:
                summary = dumps(asdict(self._shard(int(index), int(offset), int(length))))
            except SketchsearchError as err:  # Ray would wrap it in its own exceptions
                error = pickle.dumps(err)
            except Exception as err:  # disk full, no --out here: one line
                hint = f" ({SHARED_FS})" if isinstance(err, OSError) else ""
                message = (
                    f"shard {int(index)} on Ray node {self.node}: {type(err).__name__}: {err}{hint}"
                )
            done.append(summary)
            errors.append(error)
            messages.append(message)
        return {
            "summary": np.array(done, dtype=object),
            "error": np.array(errors, dtype=object),
            "message": np.array(messages, dtype=object),
            "node": np.array([self.node] * len(done), dtype=object),
        }

    def _shard(self, index: int, offset: int, length: int) -> ShardSummary:
        if isinstance(self.error, str):
            raise EmbedWorkerError(f"shard {index}: {self.error}")
        if self.error is not None:
            raise self.error
        sources = read_listing(Path(self.setup.out), index, offset, length)
        return embed_shard(
            self.engine,
            self.setup.spec,
            index,
            sources,
            Path(self.setup.out),
            batch_size=self.setup.batch_size,
            workers=default_workers(self.setup.threads),
            progress=False,
        )


def _node_name() -> str:
    """This worker's host and Ray node id, for messages."""
    try:
        import ray

        node = str(ray.get_runtime_context().get_node_id())[:12]
    except Exception:  # a name for messages only
        return socket.gethostname()
    return f"{socket.gethostname()} (node {node})"


def write_listing(out: Path, plan: EmbedPlan, pending: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Write the pending shards' sources to ``out/LISTING_FILE`` (one JSON line per shard,
    atomically); returns each shard's (offset, length) in it."""
    target = out / LISTING_FILE
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    spans: dict[int, tuple[int, int]] = {}
    try:
        with open(temporary, "wb") as handle:
            for index in pending:
                line = dumps([index, *map(_listed, plan.shard_sources(index))]).encode() + b"\n"
                spans[index] = (handle.tell(), len(line))
                handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return spans


def read_listing(out: Path, index: int, offset: int, length: int) -> list[Source]:
    """Shard ``index``'s sources from the listing file (an ``OSError`` where ``out`` is not
    this node's to read)."""
    with open(out / LISTING_FILE, "rb") as handle:
        handle.seek(offset)
        raw = json.loads(handle.read(length))
    if not raw or raw[0] != index:
        raise EmbedWorkerError(
            f"{out / LISTING_FILE}: shard {index} is not where the driver wrote it (two runs "
            "into one folder at once?)"
        )
    return [Source(Path(f), p, lab, ins) for f, p, lab, ins in raw[1:]]


def _listed(source: Source) -> list[str | None]:
    return [str(source.file), source.path, source.label, source.instance]


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
