"""The load clients of `benchmarks/serve_load.py`, and its engine-alone batch gain.

A case is a fixed number of searches spread over N client threads (one keep-alive httpx client
each, query files posted as raw bytes round robin), stopped early at a time limit. What it
records (latencies of the 200 answers carrying a retrieve record, every other answer by its
status, the batches the server formed, both sides' CPU time) is kept raw, so that the cases of
several rounds can be pooled.

The engine batch gain is what batching can pay at most on a model and a machine: the engine
alone (no server, no decoding), img/s at batch N over img/s at batch 1, on preprocessed random
uint8 images, in a few rounds whose order alternates; the median of the per-round ratios.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BATCH_METRIC = "sketchsearch_batch_size"  # a histogram: _sum / _count is the mean batch


@dataclass(frozen=True)
class Query:
    name: str
    body: bytes
    content_type: str


@dataclass
class Tally:
    """What the client threads of one case recorded, under one lock."""

    planned: int
    deadline: float = 0.0
    issued: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[dict[str, float]] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_index(self) -> int | None:
        with self.lock:
            if self.issued >= self.planned or time.perf_counter() >= self.deadline:
                return None
            self.issued += 1
            return self.issued - 1


@dataclass(frozen=True)
class CaseRun:
    """One case, once: the raw tally, its wall and CPU time, the batches formed meanwhile."""

    clients: int
    tally: Tally
    wall_s: float
    cpu_s: tuple[float, float]  # (client process, server process)
    batches: tuple[float, float] | None  # (sum of batch sizes, number of batches)

    @property
    def done(self) -> int:
        return len(self.tally.latencies_ms) + sum(self.tally.errors.values())

    @property
    def qps(self) -> float:
        return len(self.tally.latencies_ms) / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cut_short(self) -> bool:
        return self.done < self.tally.planned


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_totals(text: str, name: str) -> tuple[float, float] | None:
    """(sum, count) of a Prometheus histogram ``name``, over its label sets; None if absent."""
    totals = {"_sum": 0.0, "_count": 0.0}
    seen = False
    for line in text.splitlines():
        for suffix in totals:
            if line.startswith(name + suffix + " ") or line.startswith(name + suffix + "{"):
                totals[suffix] += float(line.rsplit(" ", 1)[1])
                seen = True
    return (totals["_sum"], totals["_count"]) if seen else None


def batch_totals(client: Any, base_url: str) -> tuple[float, float] | None:
    answer = client.get(base_url + "metrics")
    return metric_totals(answer.text, BATCH_METRIC) if answer.status_code == 200 else None


def post(client: Any, url: str, query: Query) -> tuple[str | None, dict[str, float]]:
    """One search: (None or the error it counts as, the answer's ``timings_ms``)."""
    import httpx

    try:
        answer = client.post(url, content=query.body, headers={"Content-Type": query.content_type})
    except httpx.HTTPError as err:
        return f"transport {type(err).__name__}", {}
    if answer.status_code != 200:
        with contextlib.suppress(ValueError):
            return f"{answer.status_code} {answer.json().get('kind')}", {}
        return f"{answer.status_code}", {}
    try:
        record = answer.json()
    except ValueError:
        return "200 not JSON", {}
    if record.get("schema") != "sketchsearch.retrieve/1" or record.get("error") is not None:
        return "200 without a retrieve record", {}
    return None, dict(record.get("timings_ms") or {})


def client_loop(client: Any, url: str, queries: Sequence[Query], tally: Tally) -> None:
    while (index := tally.next_index()) is not None:
        start = time.perf_counter()
        error, timings = post(client, url, queries[index % len(queries)])
        elapsed = (time.perf_counter() - start) * 1000.0
        with tally.lock:
            if error is None:
                tally.latencies_ms.append(elapsed)
                tally.server_ms.append(timings)
            else:
                tally.errors[error] += 1


def warm_up(clients: Sequence[Any], url: str, queries: Sequence[Query], count: int) -> None:
    """``count`` untimed requests per client, all clients at once (connections opened)."""
    tally = Tally(planned=count * len(clients), deadline=time.perf_counter() + 120.0)
    threads = [threading.Thread(target=client_loop, args=(c, url, queries, tally)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def load_case(
    base_url: str,
    server_pid: int,
    queries: Sequence[Query],
    clients: int,
    *,
    requests: int,
    time_limit: float,
    warmup: int,
    k: int,
) -> CaseRun:
    """``requests`` searches from ``clients`` threads, bounded by ``time_limit`` seconds."""
    import httpx

    url = f"{base_url}v1/search?k={k}"
    with contextlib.ExitStack() as stack:
        http = [stack.enter_context(httpx.Client(timeout=60.0)) for _ in range(clients)]
        warm_up(http, url, queries, warmup)
        before = batch_totals(http[0], base_url)
        tally = Tally(planned=requests)
        threads = [
            threading.Thread(target=client_loop, args=(c, url, queries, tally)) for c in http
        ]
        cpu = time.process_time(), process_cpu_s(server_pid)
        start = time.perf_counter()
        tally.deadline = start + time_limit
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu[0], process_cpu_s(server_pid) - cpu[1]
        after = batch_totals(http[0], base_url)
    batches = None
    if before is not None and after is not None and after[1] > before[1]:
        batches = (after[0] - before[0], after[1] - before[1])
    return CaseRun(clients, tally, wall, cpu, batches)


def spread(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median, min and max of ``values`` (None each when there are none)."""
    if not values:
        return {"median": None, "min": None, "max": None}
    return {
        "median": round(float(statistics.median(values)), digits),
        "min": round(float(min(values)), digits),
        "max": round(float(max(values)), digits),
    }


def pooled_figures(runs: Sequence[CaseRun]) -> dict[str, Any]:
    """One case over its rounds: latency pooled, QPS the median over rounds (with its range),
    the mean batch over every batch formed in them, counts and times summed."""
    ok = np.asarray([ms for run in runs for ms in run.tally.latencies_ms])
    errors: Counter[str] = Counter()
    for run in runs:
        errors.update(run.tally.errors)
    latency = {
        f"p{q}_ms": round(float(np.percentile(ok, q)), 3) if len(ok) else None for q in (50, 95, 99)
    }
    batch_sum = sum(run.batches[0] for run in runs if run.batches)
    batch_count = sum(run.batches[1] for run in runs if run.batches)
    qps = spread([run.qps for run in runs], 2)
    return {
        "clients": runs[0].clients,
        "rounds": len(runs),
        "requests_planned": sum(run.tally.planned for run in runs),
        "completed": sum(run.done for run in runs),
        "ok": len(ok),
        "errors": dict(sorted(errors.items())),
        "cut_short_by_time_limit": any(run.cut_short for run in runs),
        "wall_s": round(sum(run.wall_s for run in runs), 3),
        "qps": qps["median"] if qps["median"] is not None else 0.0,
        "qps_min": qps["min"],
        "qps_max": qps["max"],
        "qps_per_round": [round(run.qps, 2) for run in runs],
        "latency": {
            **latency,
            "mean_ms": round(float(ok.mean()), 3) if len(ok) else None,
            "max_ms": round(float(ok.max()), 3) if len(ok) else None,
        },
        "server_ms_p50": server_medians([t for run in runs for t in run.tally.server_ms]),
        "mean_batch_size": round(batch_sum / batch_count, 3) if batch_count else None,
        "cpu_s": {
            "clients": round(sum(run.cpu_s[0] for run in runs), 3),
            "server": round(sum(run.cpu_s[1] for run in runs), 3),
        },
    }


def server_medians(timings: Sequence[dict[str, float]]) -> dict[str, float]:
    """Median of each stage the answers report (decode, queue, embed, search, total)."""
    stages = [
        stage for stage in (timings[0] if timings else {}) if all(stage in t for t in timings)
    ]
    return {stage: round(float(np.median([t[stage] for t in timings])), 3) for stage in stages}


def _images_per_s(engine: Any, images: np.ndarray, min_calls: int, min_s: float) -> float:
    """Images per second from the median call over at least ``min_calls`` and ``min_s``."""
    engine.embed(images)  # this batch shape's first call is not timed
    calls: list[float] = []
    began = time.perf_counter()
    while len(calls) < min_calls or time.perf_counter() - began < min_s:
        start = time.perf_counter()
        engine.embed(images)
        calls.append(time.perf_counter() - start)
    return len(images) / statistics.median(calls)


def engine_batch_gain(
    model: Path,
    batch: int,
    *,
    threads: int | None,
    backend: str | None,
    rounds: int = 3,
    min_calls: int = 3,
    min_s: float = 0.4,
) -> dict[str, Any]:
    """img/s at ``batch`` over img/s at batch 1, the engine alone, per round and the median.

    Opened as the server opens it (same file, backend and threads); the order of the two
    batch sizes alternates from round to round.
    """
    from sketchsearch.runtime.engines.table import open_engine

    with open_engine(model, threads=threads, backend=backend) as engine:
        size = engine.card.input_size
        rng = np.random.default_rng(14)
        images = {b: rng.integers(0, 256, (b, size, size, 3), np.uint8) for b in (1, batch)}
        one: list[float] = []
        many: list[float] = []
        start = time.perf_counter()
        for round_ in range(rounds):
            order = (1, batch) if round_ % 2 == 0 else (batch, 1)
            got = {b: _images_per_s(engine, images[b], min_calls, min_s) for b in order}
            one.append(got[1])
            many.append(got[batch])
        wall = time.perf_counter() - start
        used = engine.backend
    ratios = [m / o for m, o in zip(many, one, strict=True)]
    return {
        "batch": batch,
        "threads": threads,
        "backend": used,
        "input_size": size,
        "rounds": rounds,
        "img_per_s_batch_1": [round(x, 1) for x in one],
        "img_per_s_batch_n": [round(x, 1) for x in many],
        "per_round": [round(r, 3) for r in ratios],
        **spread(ratios),
        "wall_s": round(wall, 3),
    }
