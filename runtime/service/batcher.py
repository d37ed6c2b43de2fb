"""Dynamic batching: concurrent searches gathered into one engine call.

Requests wait in a bounded queue; one inference thread takes the first, then whatever
arrives within ``max_wait`` seconds, up to ``max_batch`` images, and embeds them in one call.
A CPU engine with a batch of 8 answers several times more images per second than eight calls
of one, so under load each request waits less in total. The queue is bounded: ``submit``
raises :class:`QueueFull` instead of holding unbounded memory, and the service answers 503.
With ``max_batch=1`` every request is its own engine call (batching off).

Inference runs in this thread only, off the event loop; each request is then answered with
its own ``k``, label filter and threshold from one shared embedding call.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from sketchsearch.runtime.retriever import Answer, Retriever, Threshold
from sketchsearch.runtime.service.live import LiveRetriever


class QueueFull(Exception):
    """The batching queue holds ``max_queue`` searches already."""


@dataclass(frozen=True)
class SearchRequest:
    """One decoded query, ready for the engine."""

    image: np.ndarray  # uint8 S×S×3, preprocessed by the model card
    name: str
    k: int
    labels: tuple[str, ...] | None = None
    threshold: Threshold | None = None  # None: the gallery's (or none)
    decode_ms: float = 0.0
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class SearchReply:
    """A request's answer and the generation and threshold that produced it."""

    answer: Answer
    retriever: Retriever  # what answered (its gallery may be closed by now: read facts only)
    generation: int
    items: int
    threshold: Threshold
    queue_ms: float
    batch_size: int


@dataclass(frozen=True)
class BatchStats:
    """What one engine call did, for the metrics."""

    size: int
    embed_seconds: float
    search_seconds: float
    queue_seconds: list[float]


_STOP = object()


class DynamicBatcher:
    def __init__(
        self,
        live: LiveRetriever,
        max_batch: int = 8,
        max_wait: float = 0.005,
        max_queue: int = 64,
        on_batch: Callable[[BatchStats], None] = lambda _: None,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait < 0:
            raise ValueError("max_batch and max_queue must be >= 1, max_wait >= 0")
        self.live = live
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._in_flight = in_flight
        self._queue: queue.Queue[tuple[SearchRequest, Future[SearchReply]] | object] = queue.Queue(
            maxsize=max_queue
        )
        self._thread = threading.Thread(target=self._run, name="sketchsearch-inference")
        self._thread.daemon = True
        self._started = False
        self._first: Callable[[], None] | None = None

    def start(self, first: Callable[[], None] | None = None) -> None:
        """Start the inference thread; ``first`` runs in it before any search (warm-up)."""
        if not self._started:
            self._started = True
            self._first = first
            self._thread.start()

    def stop(self) -> None:
        """Answer what is queued, then end the inference thread."""
        if self._started:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)

    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, request: SearchRequest) -> Future[SearchReply]:
        """Queue one search; its future is answered by the inference thread."""
        future: Future[SearchReply] = Future()
        try:
            self._queue.put_nowait((request, future))
        except queue.Full:
            raise QueueFull(
                f"busy: {self.max_queue} searches are waiting (--max-queue); retry shortly"
            ) from None
        return future

    def _run(self) -> None:
        if self._first is not None:
            self._first()
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = self._gather(batch)
            self._answer(batch)  # type: ignore[arg-type]
            if stop:
                return

    def _gather(self, batch: list[object]) -> bool:
        """Add what arrives within ``max_wait`` of the first, up to ``max_batch``; True when
        the stop mark was taken (the batch is answered first)."""
        deadline = time.perf_counter() + self.max_wait
        while len(batch) < min(self.max_batch, self._expected()):
            remaining = deadline - time.perf_counter()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            batch.append(item)
        return False

    def _expected(self) -> int:
        """How many searches a batch could still gather: those in flight (uploading,
        decoding or queued) when the service counts them, else ``max_batch``. A lone
        request is then answered at once instead of waiting ``max_wait`` for company."""
        return self._in_flight() if self._in_flight is not None else self.max_batch

    def _answer(self, batch: list[tuple[SearchRequest, Future[SearchReply]]]) -> None:
        live = [
            (request, future) for request, future in batch if future.set_running_or_notify_cancel()
        ]
        if not live:
            return
        started = time.perf_counter()
        try:
            with self.live.lease() as retriever:
                replies, stats = _search(retriever, [request for request, _ in live], started)
        except Exception as err:  # the engine or the gallery failed: every request hears it
            for _, future in live:
                future.set_exception(err)
            return
        self._on_batch(stats)
        for (_, future), reply in zip(live, replies, strict=True):
            future.set_result(reply)


def _search(
    retriever: Retriever, requests: list[SearchRequest], started: float
) -> tuple[list[SearchReply], BatchStats]:
    """One engine call for every request, then one search per group of equal parameters."""
    tick = time.perf_counter()
    vectors = retriever.engine.embed(np.stack([request.image for request in requests]))
    embedded = time.perf_counter()
    embed_ms = (embedded - tick) * 1000
    answers = [Answer(request.name, decode_ms=request.decode_ms) for request in requests]
    groups: dict[tuple[int, tuple[str, ...] | None, Threshold | None], list[int]] = {}
    for position, request in enumerate(requests):
        groups.setdefault((request.k, request.labels, request.threshold), []).append(position)
    for (k, labels, threshold), positions in groups.items():
        retriever.answer_vectors(
            [answers[p] for p in positions],
            vectors[positions],
            k,
            labels=list(labels) if labels is not None else None,
            threshold=threshold,
            embed_ms=embed_ms,
        )
    searched = time.perf_counter()
    manifest = retriever.gallery.manifest
    queue_seconds = [started - request.queued_at for request in requests]
    replies = [
        SearchReply(
            answer=answer,
            retriever=retriever,
            generation=manifest.generation,
            items=manifest.live,
            threshold=request.threshold or retriever.threshold,
            queue_ms=waited * 1000,
            batch_size=len(requests),
        )
        for answer, request, waited in zip(answers, requests, queue_seconds, strict=True)
    ]
    stats = BatchStats(len(requests), embedded - tick, searched - embedded, queue_seconds)
    return replies, stats
