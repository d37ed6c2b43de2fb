"""The service's Prometheus metrics, in a registry of its own (never the process-global one,
so two services in one process, as in tests, do not share counts).

Names: ``sketchsearch_requests_total{route,method,status}``,
``sketchsearch_request_seconds{route}``, ``sketchsearch_stage_seconds{stage}`` (decode, queue,
embed, search), ``sketchsearch_batch_size`` (images per engine call),
``sketchsearch_queue_depth``, ``sketchsearch_gallery_generation``, ``sketchsearch_gallery_items``
and ``sketchsearch_gallery_reloads_total{outcome}``. Routes are the endpoint templates
(``/v1/items/{id}/image``), never raw paths, so a client cannot grow the label set.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
_ROUTES = ("/v1/search", "/v1/info", "/healthz", "/readyz", "/metrics", "/", "/docs")
_ITEM_IMAGE = re.compile(r"^/v1/items/[^/]+/image$")


def route_of(path: str) -> str:
    """The endpoint template a path belongs to; "other" for anything unknown."""
    if path in _ROUTES:
        return path
    if _ITEM_IMAGE.match(path):
        return "/v1/items/{id}/image"
    if path.startswith("/static/"):
        return "/static"
    if path == "/openapi.json":
        return path
    return "other"


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sketchsearch_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "sketchsearch_request_seconds",
            "Time from the request's arrival to its answer, by route template.",
            ["route"],
            buckets=SECONDS,
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "sketchsearch_stage_seconds",
            "Time per stage of a search: decode, queue (waiting for a batch), embed (the engine "
            "call of the request's batch), search (gallery look-up).",
            ["stage"],
            buckets=SECONDS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "sketchsearch_batch_size",
            "Images per engine call (dynamic batching).",
            buckets=BATCH_SIZES,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "sketchsearch_queue_depth",
            "Decoded searches waiting for the engine.",
            registry=self.registry,
        )
        self.generation = Gauge(
            "sketchsearch_gallery_generation",
            "The gallery generation answering searches.",
            registry=self.registry,
        )
        self.items = Gauge(
            "sketchsearch_gallery_items",
            "Live items in the gallery answering searches.",
            registry=self.registry,
        )
        self.reloads = Counter(
            "sketchsearch_gallery_reloads",
            "Gallery reloads after a new generation was committed, by outcome.",
            ["outcome"],
            registry=self.registry,
        )

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(lambda: float(depth()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
