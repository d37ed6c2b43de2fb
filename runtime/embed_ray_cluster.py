"""The Ray instance an embedding run uses: joined or started, quieted, and the actor pool
sized for it. Separate from the driver in embed_ray.py so that what depends on the cluster (its
CPUs, its nodes, Ray's own settings) is apart from moving shards through the pool; Ray itself
is imported only inside these functions, when the Ray runner is chosen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sketchsearch.data.errors import UsageError
from sketchsearch.runtime.machine import available_cpus

# Enough for the small rows and summaries this runner puts there, and the model's bytes.
OBJECT_STORE_BYTES = 256 * 2**20
# Default CPUs per actor: a few threads per onnxruntime session scale well; more actors
# beyond that keep more cores busy than one wide session does.
DEFAULT_ACTOR_CPUS = 4
# How long the pool may wait for its first actors to be placed: a pool no node can hold fails
# with one line instead of waiting forever (Ray Data's default).
WAIT_FOR_ACTORS_S = 600


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
