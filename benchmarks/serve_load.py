"""`sketchsearch serve` under load: latency and QPS with dynamic batching on and off, side by side.

Targets (issue 14): one drawing client (canvas-like sketch PNGs, the demo model) answers with
p95 < 100 ms; with 16 clients, batching on serves at least 1.5x the QPS of batch 1 on a model
where batching pays (efficientnet_b0 at 224 px).

    python benchmarks/serve_load.py --engine demo-output/model.onnx --index demo-output/gallery \\
        --queries demo-output/data/sketch [--clients 1,4,16] [--rounds 3] [--requests 200] \\
        [--time-limit 60] [--max-batch 16] [--max-wait-ms 5] [--threads N] [--json load.json]

Both settings of the real server run at once, each on its own free loopback port
(`sketchsearch serve --port 0`: batching on with --max-batch/--max-wait-ms, off with
--max-batch 1); only one is loaded at a time. On a shared machine the load from other
processes drifts, so the two are measured side by side in rounds (the method of
`benchmarks/cpu_anchors.py`): each round runs every client count on both servers back to
back, the one that goes first alternating by round and by client count, then the drawing case
on the batching server. QPS is the median over rounds with its range; the batching / batch 1
ratio is taken within a round, and the median over rounds (with its range) is the figure the
target is checked on. Latency percentiles pool every round's answers.

Each case is --requests searches per round spread over N client threads (one keep-alive httpx
client each, query files posted as raw bytes round robin), stopped early at --time-limit, which
the report says. The drawing client posts --drawing sketches (default: the demo's) re-encoded
as the white --canvas-px canvas PNG a browser page sends. Latency is end to end at the client;
warm-up requests are not timed; only 200 answers carrying a retrieve record count, every other
answer is reported by its status (and the exit code is 1). The mean batch the server formed
comes from its /metrics. The clients share the machine's cores with the server: their CPU time
and the server's are recorded beside each case.

Whether batching can pay at all on this model and machine is measured in the same run, while
both servers idle: the engine alone (the server's file, backend and --threads), img/s at batch
--max-batch over batch 1, on preprocessed random images, median over a few rounds (the "engine
batch gain"). Where it is below the 1.5x target, the target line says the target is not
reachable here instead of a bare MISSED.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.benchmarks.machine_info import machine_facts, run_record
from sketchsearch.benchmarks.serve_load_clients import (
    CaseRun,
    Query,
    engine_batch_gain,
    load_case,
    pooled_figures,
    spread,
)
from sketchsearch.data.errors import UsageError
from sketchsearch.data.hashing import file_sha256
from sketchsearch.data.strict_json import dumps
from sketchsearch.runtime.machine import available_cpus

TARGET_DRAWING_P95_MS = 100.0
TARGET_BATCHING_RATIO = 1.5
BATCHING_MODEL = ("efficientnet_b0", 224)  # where the issue states the batching target
DEMO_SKETCHES = Path("demo-output/data/sketch")
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
SERVING = re.compile(r"serving (http://\S+/)")
SERVE = Path(sys.executable).parent / "sketchsearch"
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class LoadConfig:
    """One benchmark run: the server's model and gallery, the load, and the two settings."""

    engine: Path
    index: Path
    queries: tuple[Path, ...]
    drawing: tuple[Path, ...] = ()  # sketch PNGs for the drawing client; () skips that case
    canvas_px: int = 512  # drawings re-encoded as a white N x N canvas PNG; 0 posts them as-is
    clients: tuple[int, ...] = (1, 4, 16)
    rounds: int = 3  # every case once per round, batching on and off side by side
    requests: int = 200  # per case per round
    time_limit: float = 60.0
    warmup: int = 3  # untimed requests per client before each case
    max_batch: int = 16
    max_wait_ms: float = 5.0
    threads: int | None = None
    host: str = "127.0.0.1"
    k: int = 10
    ready_timeout: float = 120.0


@dataclass
class Server:
    """A running `sketchsearch serve`: its base URL and process."""

    url: str
    process: subprocess.Popen[bytes]
    args: tuple[str, ...]


def content_type(data: bytes, name: str) -> str:
    """The image type by its first bytes, as a browser would label the upload."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, kind in MAGIC:
        if data.startswith(magic):
            return kind
    raise UsageError(f"{name}: not a PNG, JPEG, WebP, BMP or TIFF file: pass image files")


def image_files(paths: Sequence[Path], option: str) -> list[Path]:
    """Image files of ``paths`` (folders searched recursively), sorted; refused when none."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"{option} {path}: no such file or folder")
    if not found:
        raise UsageError(f"{option} {' '.join(map(str, paths))}: no image files found")
    return found


def read_queries(paths: Sequence[Path], option: str, limit: int = 256) -> list[Query]:
    """Up to ``limit`` files, spread evenly over the sorted list, read into memory."""
    files = image_files(paths, option)
    chosen = [files[int(i)] for i in np.linspace(0, len(files) - 1, min(limit, len(files)))]
    queries = []
    for path in chosen:
        data = path.read_bytes()
        queries.append(Query(path.name, data, content_type(data, str(path))))
    return queries


def canvas_png(query: Query, px: int) -> Query:
    """The sketch as a browser canvas would post it: a white ``px`` x ``px`` PNG."""
    import cv2

    image = cv2.imdecode(np.frombuffer(query.body, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UsageError(f"--drawing {query.name}: cannot be decoded")
    scale = px / max(image.shape[:2])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    canvas = np.full((px, px, 3), 255, np.uint8)
    canvas[: size[1], : size[0]] = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    ok, encoded = cv2.imencode(".png", canvas)
    if not ok:
        raise UsageError(f"--drawing {query.name}: cannot be encoded as PNG")
    return Query(query.name, encoded.tobytes(), "image/png")


def check_loopback(host: str, where: str) -> None:
    if host not in LOOPBACK:
        raise UsageError(
            f"{where} {host!r}: the load benchmark runs the server on loopback only; "
            "use 127.0.0.1 (or ::1)"
        )


def serve_args(config: LoadConfig, max_batch: int, max_wait_ms: float) -> list[str]:
    args = [str(SERVE), "serve", "--engine", str(config.engine), "--index", str(config.index)]
    args += ["--host", config.host, "--port", "0", "--max-batch", str(max_batch)]
    if max_batch > 1:
        args += ["--max-wait-ms", f"{max_wait_ms:g}"]
    if config.threads is not None:
        args += ["--threads", str(config.threads)]
    return args


def first_line(stdout: Path, process: subprocess.Popen[bytes], timeout: float) -> str:
    """The server's first stdout line, once written; refused when it exits or never says it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = stdout.read_text(errors="replace")
        if "\n" in text:
            return text.split("\n", 1)[0]
        if process.poll() is not None:
            break
        time.sleep(0.05)
    return ""


def wait_ready(server: Server, stderr: Path, timeout: float) -> None:
    """Poll /readyz until it answers 200 (the server warms up first)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(server.url + "readyz", timeout=5).status_code == 200:
                return
        time.sleep(0.1)
    tail = stderr.read_text(errors="replace")[-2000:]
    raise UsageError(f"`{' '.join(server.args)}` never became ready:\n{tail}")


@contextlib.contextmanager
def running_server(config: LoadConfig, max_batch: int, max_wait_ms: float) -> Iterator[Server]:
    """`sketchsearch serve` on a free loopback port, ready; stopped on exit."""
    check_loopback(config.host, "--host")
    args = serve_args(config, max_batch, max_wait_ms)
    env = {k: v for k, v in os.environ.items() if k != "SKETCHSEARCH_API_KEY"}
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(args, stdout=stdout, stderr=stderr, env=env)
        try:
            line = first_line(out, process, config.ready_timeout)
            found = SERVING.match(line)
            if found is None:
                tail = err.read_text(errors="replace")[-2000:]
                raise UsageError(f"`{' '.join(args)}` did not print 'serving URL':\n{line}{tail}")
            server = Server(found.group(1), process, tuple(args))
            check_loopback(re.sub(r"^http://(.*):\d+/$", r"\1", server.url), "server URL host")
            wait_ready(server, err, config.ready_timeout)
            yield server
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_case(
    server: Server, queries: Sequence[Query], clients: int, config: LoadConfig
) -> dict[str, Any]:
    """One case, once, on ``server``: its figures (as one round)."""
    return pooled_figures([case_run(server, queries, clients, config)])


def case_run(server: Server, queries: Sequence[Query], clients: int, config: LoadConfig) -> CaseRun:
    return load_case(
        server.url, server.process.pid, queries, clients, requests=config.requests,
        time_limit=config.time_limit, warmup=config.warmup, k=config.k,
    )  # fmt: skip


def settings(config: LoadConfig) -> list[tuple[str, int, float]]:
    return [("batching", config.max_batch, config.max_wait_ms), ("batch 1", 1, 0.0)]


def server_info(server: Server, max_batch: int) -> dict[str, Any]:
    """/v1/info, checked: the server runs the batching asked for."""
    import httpx

    info = httpx.get(server.url + "v1/info", timeout=30).raise_for_status().json()
    served = info.get("batching", {}).get("max_batch")
    if served != max_batch:
        raise UsageError(f"asked the server for --max-batch {max_batch}, /v1/info says {served}")
    return dict(info)


def round_row(run: CaseRun, round_: int, position: int) -> dict[str, Any]:
    """What one round of a case was, for the report (its latencies are pooled elsewhere)."""
    batch = round(run.batches[0] / run.batches[1], 3) if run.batches else None
    return {
        "round": round_, "position": position, "qps": round(run.qps, 2),
        "wall_s": round(run.wall_s, 3), "ok": len(run.tally.latencies_ms),
        "errors": sum(run.tally.errors.values()), "mean_batch_size": batch,
        "cut_short_by_time_limit": run.cut_short,
    }  # fmt: skip


def measure(config: LoadConfig) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Both servers at once; the engine's batch gain while they idle; then ``config.rounds``
    rounds, each running every client count on both servers back to back (which goes first
    alternates by round and by client count) and the drawing case on the batching server.

    Returns the cases pooled over rounds, the batching server's /v1/info, and the engine gain.
    """
    queries = read_queries(config.queries, "--queries")
    drawings = read_queries(config.drawing, "--drawing") if config.drawing else []
    if config.canvas_px:
        drawings = [canvas_png(q, config.canvas_px) for q in drawings]
    runs: dict[tuple[str, int], list[CaseRun]] = {}
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with contextlib.ExitStack() as stack:
        servers = {}
        for name, max_batch, max_wait_ms in settings(config):
            server = stack.enter_context(running_server(config, max_batch, max_wait_ms))
            servers[name] = (server, server_info(server, max_batch))  # checks the setting took
        info = servers["batching"][1]
        gain = None
        if config.max_batch > 1:
            print("measuring the engine alone (servers idle) ...", flush=True)
            gain = engine_batch_gain(
                config.engine, config.max_batch, threads=config.threads,
                backend=(info.get("engine") or {}).get("backend"), rounds=max(3, config.rounds),
            )  # fmt: skip
            print(f"engine batch gain: {gain_text(gain)}", flush=True)
        for round_ in range(config.rounds):
            for j, clients in enumerate(config.clients):
                order = ["batching", "batch 1"]
                if (round_ + j) % 2:
                    order.reverse()
                for position, name in enumerate(order):
                    run = case_run(servers[name][0], queries, clients, config)
                    runs.setdefault((name, clients), []).append(run)
                    rows.setdefault((name, clients), []).append(round_row(run, round_, position))
                    say = f"round {round_ + 1}: {name}, {clients} client(s): {run.qps:.2f} QPS"
                    print(say, flush=True)
            if drawings and config.max_batch > 1:
                run = case_run(servers["batching"][0], drawings, 1, config)
                runs.setdefault(("drawing", 1), []).append(run)
                rows.setdefault(("drawing", 1), []).append(round_row(run, round_, 0))
                p95 = np.percentile(run.tally.latencies_ms, 95) if run.tally.latencies_ms else 0
                print(f"round {round_ + 1}: drawing, 1 client: p95 {p95:.1f} ms", flush=True)
    batch = {name: (max_batch, max_wait_ms) for name, max_batch, max_wait_ms in settings(config)}
    batch["drawing"] = batch["batching"]
    cases = []
    for (name, clients), case_runs in runs.items():
        max_batch, max_wait_ms = batch[name]
        head = {"setting": name, "max_batch": max_batch, "max_wait_ms": max_wait_ms}
        source = "--drawing" if name == "drawing" else "--queries"
        figures = pooled_figures(case_runs)
        cases.append({**head, "queries": source, **figures, "per_round": rows[name, clients]})
    rank = {"batching": 0, "batch 1": 1, "drawing": 2}
    cases.sort(key=lambda c: (rank[c["setting"]], c["clients"]))
    return cases, info, gain or {}


def qps_ratios(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """batching / batch 1 QPS per client count: per round (side by side), median and range."""
    at = {(c["setting"], c["clients"]): c for c in cases}
    out = []
    for (name, clients), on in at.items():
        off = at.get(("batch 1", clients))
        if name != "batching" or off is None:
            continue
        pairs = zip(on["qps_per_round"], off["qps_per_round"], strict=True)
        per_round = [a / b for a, b in pairs if b > 0]
        out.append({"clients": clients, "per_round": [round(r, 3) for r in per_round]})
        out[-1].update(spread(per_round))
    return out


def targets(
    cases: list[dict[str, Any]],
    ratios: list[dict[str, Any]],
    info: dict[str, Any],
    gain: dict[str, Any],
) -> list[dict[str, Any]]:
    """Each target of the issue: the figure measured, met or not, and the model measured."""
    model = info.get("model", {})
    this = f"{model.get('backbone')} at {model.get('input_size')} px"
    stated = (model.get("backbone"), model.get("input_size")) == BATCHING_MODEL
    at = {(c["setting"], c["clients"]): c for c in cases}
    out: list[dict[str, Any]] = []
    if ("drawing", 1) in at:
        drawing = at["drawing", 1]
        p95 = drawing["latency"]["p95_ms"]
        met = p95 is not None and p95 < TARGET_DRAWING_P95_MS and not drawing["errors"]
        target = f"< {TARGET_DRAWING_P95_MS:g} ms (the demo model)"
        out.append({"name": "one drawing client p95", "target": target, "value": p95, "met": met})
        out[-1].update(model=this, rounds=drawing["rounds"], pooled_requests=drawing["ok"])
    if ratios:
        most = max(ratios, key=lambda r: r["clients"])
        clients = most["clients"]
        errors = at["batching", clients]["errors"] or at["batch 1", clients]["errors"]
        ratio = most["median"]
        met = ratio is not None and ratio >= TARGET_BATCHING_RATIO and not errors
        target = f">= {TARGET_BATCHING_RATIO:g}x ({BATCHING_MODEL[0]} at {BATCHING_MODEL[1]} px)"
        name = f"batching / batch 1 QPS at {clients} clients (median of rounds)"
        engine = gain.get("median")
        reachable = engine is None or engine >= TARGET_BATCHING_RATIO
        out.append({"name": name, "target": target, "value": ratio, "met": met})
        out[-1].update(range=[most["min"], most["max"]], per_round=most["per_round"])
        out[-1].update(engine_batch_gain=engine, reachable_here=reachable)
        out[-1]["model"] = this if stated else f"{this}: not the model this target is stated for"
    return out


def run_load(config: LoadConfig) -> dict[str, Any]:
    if config.requests < 1 or config.time_limit <= 0 or config.warmup < 0 or config.rounds < 1:
        raise UsageError(
            "--requests and --rounds must be at least 1, --time-limit above 0, --warmup >= 0"
        )
    check_loopback(config.host, "--host")
    start = time.perf_counter()
    cases, info, gain = measure(config)
    ratios = qps_ratios(cases)
    return {
        "benchmark": "serve_load",
        **run_record(),
        "environment": machine_facts(),
        "cpus": available_cpus(),
        "model": {
            "path": str(config.engine),
            "sha256_prefix": file_sha256(config.engine)[:12],
            **{key: info.get("model", {}).get(key) for key in ("backbone", "input_size")},
            "engine": info.get("engine"),
        },
        "gallery": {"path": str(config.index), "items": info.get("gallery", {}).get("items")},
        "settings": {
            "clients": list(config.clients),
            "rounds": config.rounds,
            "requests_per_case": config.requests,
            "requests_per_case_means": "per case per round",
            "time_limit_s": config.time_limit,
            "warmup_per_client": config.warmup,
            "max_batch": config.max_batch,
            "max_wait_ms": config.max_wait_ms,
            "threads": config.threads,
            "canvas_px": config.canvas_px,
            "k": config.k,
        },
        "rounds": config.rounds,
        "cases": cases,
        "qps_ratio": ratios,
        "engine_batch_gain": gain or None,
        "targets": targets(cases, ratios, info, gain),
        "wall_s": round(time.perf_counter() - start, 1),
    }


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def row(case: dict[str, Any]) -> str:
    lat = case["latency"]
    qps = f"{case['qps']} ({_cell(case['qps_min'])}–{_cell(case['qps_max'])})"
    cells = [case["setting"], case["max_batch"], case["clients"], case["rounds"], case["ok"]]
    cells += [sum(case["errors"].values()), qps, lat["p50_ms"], lat["p95_ms"], lat["p99_ms"]]
    cells += [case["mean_batch_size"], "yes" if case["cut_short_by_time_limit"] else ""]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def gain_text(gain: dict[str, Any]) -> str:
    return (
        f"{gain['median']}x ({gain['min']}–{gain['max']} over {gain['rounds']} rounds; "
        f"img/s at batch {gain['batch']} over batch 1, {gain['backend']}, "
        f"threads {gain['threads'] or 'default'})"
    )


def table(report: dict[str, Any]) -> str:
    lines = [
        "| setting | max batch | clients | rounds | ok | errors | QPS median (min–max) | p50 ms "
        "| p95 ms | p99 ms | mean batch | cut short |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [row(case) for case in report["cases"]]
    lines += ["", "| clients | batching / batch 1 QPS, median (min–max) | per round |"]
    lines += ["|---|---|---|"]
    for ratio in report["qps_ratio"]:
        spread_ = f"{_cell(ratio['median'])} ({_cell(ratio['min'])}–{_cell(ratio['max'])})"
        per_round = ", ".join(str(r) for r in ratio["per_round"])
        lines.append(f"| {ratio['clients']} | {spread_} | {per_round} |")
    return "\n".join(lines)


def verdict(target: dict[str, Any]) -> str:
    if target["met"]:
        return "met"
    if not target.get("reachable_here", True):
        engine = target["engine_batch_gain"]
        return f"not reachable here: the engine itself gains only {engine}x from batching"
    return "MISSED"


def target_line(target: dict[str, Any]) -> str:
    text = f"{target['name']}: {target['value']}"
    if "range" in target:
        low, high = target["range"]
        per_round = ", ".join(map(str, target["per_round"]))
        text += f" (range {_cell(low)}–{_cell(high)}; per round {per_round})"
    if "pooled_requests" in target:
        text += f" (pooled over {target['rounds']} rounds, {target['pooled_requests']} answers)"
    text += f"; target {target['target']}: {verdict(target)}"
    if "engine_batch_gain" in target:
        text += f"; engine batch gain {_cell(target['engine_batch_gain'])}x"
    return f"{text}; {target['model']}"


def parse_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise UsageError(f"--clients {text!r}: expected positive integers, e.g. 1,4,16")
    return values


def parse(argv: Sequence[str] | None) -> tuple[LoadConfig, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--engine", type=Path, required=True, help="model file the server loads")
    add("--index", type=Path, required=True, help="gallery the server searches")
    add("--queries", type=Path, nargs="+", required=True, help="query images or folders")
    add(
        "--drawing",
        type=Path,
        nargs="*",
        help="sketch PNGs for the one drawing client (default: the demo's; none: no such case)",
    )
    add("--canvas-px", type=int, default=512, help="drawings as N px canvas PNGs (0: as-is)")
    add("--clients", default="1,4,16")
    add("--rounds", type=int, default=3, help="rounds; each runs every case once")
    add("--requests", type=int, default=200, help="timed requests per case per round")
    add("--time-limit", type=float, default=60.0, help="seconds per case per round at most")
    add("--warmup", type=int, default=3, help="untimed requests per client before each case")
    add("--max-batch", type=int, default=16, help="the batching-on setting")
    add("--max-wait-ms", type=float, default=5.0, help="the batching-on setting")
    add("--threads", type=int, help="the server's (and the engine gain's) inference threads")
    add("--host", default="127.0.0.1", help="loopback only")
    add("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    drawing = args.drawing
    if drawing is None:
        drawing = [DEMO_SKETCHES] if DEMO_SKETCHES.is_dir() else []
    config = LoadConfig(
        engine=args.engine, index=args.index, queries=tuple(args.queries),
        drawing=tuple(drawing), canvas_px=args.canvas_px, clients=parse_ints(args.clients),
        rounds=args.rounds, requests=args.requests, time_limit=args.time_limit,
        warmup=args.warmup, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
        threads=args.threads, host=args.host,
    )  # fmt: skip
    return config, args.json


def main(argv: Sequence[str] | None = None) -> int:
    config, json_path = parse(argv)
    report = run_load(config)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(dumps(report, indent=1) + "\n")
    print(table(report))
    if report["engine_batch_gain"]:
        print(f"engine batch gain: {gain_text(report['engine_batch_gain'])}")
    for target in report["targets"]:
        print(target_line(target))
    failed = [c for c in report["cases"] if c["errors"]]
    for case in failed:
        print(
            f"errors in {case['setting']}, {case['clients']} clients: {case['errors']}",
            file=sys.stderr,
        )
    print(f"took {report['wall_s']} s")
    if json_path is not None:
        print(f"wrote {json_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UsageError as err:
        sys.exit(f"error: {err}")
