"""The actor side of the Ray runner: what each actor in the pool is given, and the actor
that opens one engine and embeds and writes whole shards on its node. Separate from the
driver because Ray pickles ``ShardActor`` by reference to this module and imports it on every
worker: it holds only what a worker runs, and imports Ray only inside its methods.
"""

from __future__ import annotations

import pickle
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.data.errors import SketchsearchError
from sketchsearch.data.strict_json import dumps
from sketchsearch.runtime.embed_job import ShardSpec
from sketchsearch.runtime.embed_ray_listing import EmbedWorkerError, read_listing
from sketchsearch.runtime.embed_shard import ShardSummary, embed_shard
from sketchsearch.runtime.pipeline import default_workers

SHARED_FS = "--out must be on a file system every node sees"


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
