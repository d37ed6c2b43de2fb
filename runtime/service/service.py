"""What every endpoint shares: the live retriever, the batcher, the metrics and readiness.

Built from an open retriever, so that every setup error (a missing model, a mismatched
gallery, an unavailable backend) is the command line's one-line error before any socket is
bound. ``start`` warms the engine in the background; ``/readyz`` answers 200 only after it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import numpy as np

from sketchsearch.data.errors import ImageDecodeError
from sketchsearch.runtime.pipeline import default_workers
from sketchsearch.runtime.preprocess import preprocess_bytes
from sketchsearch.runtime.retriever import Retriever, Threshold
from sketchsearch.runtime.service.batcher import (
    BatchStats,
    DynamicBatcher,
    QueueFull,
    SearchReply,
    SearchRequest,
)
from sketchsearch.runtime.service.errors import ApiError
from sketchsearch.runtime.service.item_images import ItemImages
from sketchsearch.runtime.service.live import LiveRetriever
from sketchsearch.runtime.service.metrics import ServiceMetrics

MiB = 1 << 20
MAX_K = 100  # the most results one search returns


@dataclass(frozen=True)
class ServiceSettings:
    """The serving choices of `sketchsearch serve` (its options, one for one)."""

    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_queue: int = 64
    max_upload_bytes: int = 20 * MiB
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    reload_interval: float = 2.0
    reply_timeout: float = 30.0  # a search not answered by then is a 503, never a hang
    upload_timeout: float = 30.0  # an upload with no data for this long is a 408 (idle limit)
    decode_threads: int = field(default_factory=default_workers)

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queue < 1 or self.max_upload_bytes < 1:
            raise ValueError("max_batch, max_queue and max_upload_bytes must be at least 1")
        if not (math.isfinite(self.max_wait_ms) and self.max_wait_ms >= 0):
            raise ValueError("max_wait_ms must be a finite number >= 0")


class Service:
    def __init__(
        self,
        retriever: Retriever,
        gallery_ref: str | Path,
        settings: ServiceSettings,
        notify: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.settings = settings
        self.notify = notify
        self.engine = retriever.engine
        self.gallery_name = Path(gallery_ref).name
        self.metrics = ServiceMetrics()
        self._labels: tuple[Retriever, list[str]] | None = None  # see labels_of
        self.live = LiveRetriever(
            retriever,
            gallery_ref,
            min_score=retriever.threshold.value
            if retriever.threshold.source == "--min-score"
            else None,
            reranking=retriever.reranking,
            notify=notify,
            on_swap=self._swapped,
            on_reload=lambda outcome: self.metrics.reloads.labels(outcome).inc(),
        )
        self.batcher = DynamicBatcher(
            self.live,
            max_batch=settings.max_batch,
            max_wait=settings.max_wait_ms / 1000,
            max_queue=settings.max_queue,
            on_batch=self._batched,
            in_flight=lambda: self._pending,
        )
        self.metrics.watch_queue(self.batcher.depth)
        self.images = ItemImages(self.engine.card.preprocess.max_pixels)
        self.ready = threading.Event()
        self.warm_error: str | None = None  # why the engine failed its warm-up, if it did
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._limiters: dict[str, anyio.CapacityLimiter] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.batcher.start(first=self._warm)
        self.live.watch(self.settings.reload_interval)

    def _warm(self) -> None:
        """The engine's first calls, at one image and at a full batch, before /readyz.

        Run as the inference thread's first job: no engine is called from two threads (a
        TensorRT engine has one execution context), and searches wait for /readyz anyway."""
        size = self.engine.card.input_size
        try:
            for batch in sorted({1, self.settings.max_batch}):
                blank = np.zeros((batch, size, size, 3), np.uint8)
                for _ in range(2):
                    self.engine.embed(blank)
        except Exception as err:  # /readyz and searches say so (503 engine_failed), for good
            self.warm_error = f"the engine failed its warm-up: {type(err).__name__}: {err}"
            self.notify(f"not ready: {self.warm_error}")
            return
        self.ready.set()

    def close(self) -> None:
        self.batcher.stop()
        self.live.close()

    # ------------------------------------------------------------------ admission
    def admit(self) -> None:
        """Count one search in; 503 when ``max_queue`` searches are in flight already (so
        upload bodies and decoded images held at once stay bounded, not only the queue), or
        before the engine is warmed up."""
        self.check_engine()
        if not self.ready.is_set():
            raise ApiError(503, _NOT_READY, "not_ready", {"Retry-After": "1"})
        with self._pending_lock:
            if self._pending >= self.settings.max_queue:
                raise ApiError(503, _BUSY, "overloaded", {"Retry-After": "1"})
            self._pending += 1

    def check_engine(self) -> None:
        """503 ``engine_failed``, without Retry-After, once the warm-up has failed: retrying
        cannot help, and a supervisor should see the service as never ready."""
        if self.warm_error is not None:
            raise ApiError(503, f"not ready: {self.warm_error}", "engine_failed")

    def release(self) -> None:
        with self._pending_lock:
            self._pending -= 1

    def submit(self, request: SearchRequest) -> Future[SearchReply]:
        try:
            return self.batcher.submit(request)
        except QueueFull as err:
            raise ApiError(503, str(err), "overloaded", {"Retry-After": "1"}) from None

    # ------------------------------------------------------------------ work
    def limiter(self, work: str) -> anyio.CapacityLimiter:
        """The thread limit of ``work`` ("decode" or "images"): ``decode_threads`` each.

        Requests wait for a thread on the event loop, not in a worker thread, so a flood of
        large uploads neither grows memory (a 100 MP photo decodes to 300 MB) nor takes the
        threads that /healthz and the others need. Made on first use, inside the loop."""
        if work not in self._limiters:
            self._limiters[work] = anyio.CapacityLimiter(self.settings.decode_threads)
        return self._limiters[work]

    def decode(self, data: bytes, name: str) -> tuple[np.ndarray, float]:
        """The upload preprocessed as the model card says (run under ``limiter("decode")``)."""
        tick = time.perf_counter()
        try:
            image = preprocess_bytes(data, name, self.engine.card.preprocess)
        except ImageDecodeError as err:
            raise ApiError(422, str(err)) from None
        seconds = time.perf_counter() - tick
        self.metrics.stage_seconds.labels("decode").observe(seconds)
        return image, seconds * 1000

    def threshold_for(self, min_score: float | None) -> Threshold | None:
        return Threshold(float(min_score), "request") if min_score is not None else None

    # ------------------------------------------------------------------ metrics hooks
    def labels_of(self, retriever: Retriever) -> list[str]:
        """The labels of the generation ``retriever`` answers from, read once per generation.

        Keyed by the retriever, not set beside it on a swap: a /v1/info answered while a swap
        is under way must never pair one generation's item count with another's labels."""
        cached = self._labels
        if cached is None or cached[0] is not retriever:
            cached = (retriever, sorted(retriever.gallery.labels()))
            self._labels = cached
        return cached[1]

    def _swapped(self, retriever: Retriever) -> None:
        self.labels_of(retriever)  # read now, not by the first /v1/info after a reload
        manifest = retriever.gallery.manifest
        self.metrics.generation.set(manifest.generation)
        self.metrics.items.set(manifest.live)

    def _batched(self, stats: BatchStats) -> None:
        self.metrics.batch_size.observe(stats.size)
        stage = self.metrics.stage_seconds
        stage.labels("embed").observe(stats.embed_seconds)
        stage.labels("search").observe(stats.search_seconds)
        for waited in stats.queue_seconds:
            stage.labels("queue").observe(waited)


_BUSY = "busy: too many searches in flight (--max-queue); retry shortly"
_NOT_READY = "not ready: warming up the engine; retry shortly"
