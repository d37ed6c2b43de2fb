"""CPU anchors: torch eager, onnxruntime and OpenVINO on the same model, side by side, against
the CPU's own limit.

    python benchmarks/cpu_anchors.py --model demo-output/run/best.ckpt \\
        --model /tmp/effnet/best.ckpt --batch-sizes 1,8 --threads 2 --rounds 5 \\
        --json benchmarks/results/cpu-anchors.json

Each checkpoint is exported once to fp32 ONNX (the uint8 graph `sketchsearch export onnx`
writes), and the checkpoint (torch eager) and that file (onnxruntime, OpenVINO) are measured in
interleaved rounds: every round times each backend at each batch size, in an order that
rotates, so that load from other processes hits all of them alike. A ratio is taken within a
round and the median over rounds reported, with its range: on a shared machine only ratios
measured side by side mean anything.

**The limit.** A model's forward pass needs a known number of floating-point operations
(counted by torch's ``FlopCounterMode`` on the checkpoint: 2 per multiply-add of every
convolution and matrix product). The CPU can do at most cores × clock × FLOPs per cycle of
them per second; with AVX2 and FMA (two 256-bit FMA units, as on AMD Zen 2-4 and Intel since
Haswell) that is 32 fp32 FLOPs per cycle per core. The limit is the time the model's FLOPs
would take at that rate, and a backend's "share of peak" is that time over its measured p50.
The clock is the one the kernel reports (under a hypervisor, the nominal clock; boost clocks
make the true peak higher), so the share is an upper estimate. Small models at batch 1 stay far
from the limit: their time goes to memory traffic and per-operator overhead, not to arithmetic.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.benchmarks.latency import parse_ints
from sketchsearch.benchmarks.machine_info import run_record
from sketchsearch.benchmarks.targets import environment
from sketchsearch.data.strict_json import dumps
from sketchsearch.runtime.engines.backend import OpenOptions
from sketchsearch.runtime.engines.protocol import BackendUnavailableError, Engine
from sketchsearch.runtime.engines.table import backend_named

# (row key, backend table name, which file it runs)
BACKENDS = (
    ("torch eager", "torch", "checkpoint"),
    ("onnxruntime", "onnxruntime", "onnx"),
    ("OpenVINO", "openvino", "onnx"),
)
REFERENCE = "torch eager"


@dataclass(frozen=True)
class CpuPeak:
    """This CPU's fp32 peak, from what the kernel reports and one stated assumption."""

    cores: int
    ghz: float
    flops_per_cycle: int
    basis: str

    @property
    def gflops(self) -> float:
        return self.cores * self.ghz * self.flops_per_cycle


def cpu_peak(threads: int, cpuinfo: str | None = None) -> CpuPeak:
    """Peak fp32 GFLOP/s of the cores ``threads`` threads run on: clock from /proc/cpuinfo,
    vector width from its flags, physical cores from its "siblings" and "cpu cores".

    Two hyperthreads of one core share its FMA units, so ``threads`` on an SMT machine count
    as ``ceil(threads / SMT)`` cores. AVX-512 is counted at the AVX2 rate on AMD (Zen 4 splits
    it into two 256-bit halves) and at twice that on Intel (two 512-bit FMA units on server
    parts). A clock the kernel does not report (some ARM and virtual machines) gives 0: no
    limit, rather than a made-up one.
    """
    text = cpuinfo if cpuinfo is not None else ""
    if cpuinfo is None:
        with contextlib.suppress(OSError):
            text = Path("/proc/cpuinfo").read_text()
    fields: dict[str, str] = {}
    clocks = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "cpu MHz":
            with contextlib.suppress(ValueError):
                clocks.append(float(value))
        fields.setdefault(key, value.strip())
    flags = fields.get("flags", "").split()
    intel = fields.get("vendor_id") == "GenuineIntel"
    if "avx512f" in flags and intel:
        per_cycle, basis = 64, "AVX-512: 2 FMA units x 16 fp32 lanes x 2"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, basis = 32, "AVX2+FMA: 2 FMA units x 8 fp32 lanes x 2"
    else:
        per_cycle, basis = 16, "SSE/AVX without FMA: assumed 16"
    try:
        smt = max(1, int(fields["siblings"]) // max(1, int(fields["cpu cores"])))
    except (KeyError, ValueError):
        smt = 1
    cores = -(-threads // smt)
    ghz = max(clocks) / 1000 if clocks else 0.0
    where = f"{basis}, clock {ghz:.2f} GHz as the kernel reports it, {smt} thread(s) per core"
    return CpuPeak(cores, ghz, per_cycle, where)


def forward_flops(engine: Engine) -> int:
    """FLOPs of one image through the torch engine's model (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    size = engine.card.input_size
    counter = FlopCounterMode(display=False)
    with counter:
        engine.embed(np.zeros((1, size, size, 3), np.uint8))
    return int(counter.get_total_flops())


def export_fp32(checkpoint: Path, work: Path) -> Path:
    """The checkpoint's fp32 uint8 ONNX export, made once per work folder and checkpoint content
    (named by its digest, so a retrained checkpoint at the same path is exported again)."""
    import hashlib

    from sketchsearch.export.pipeline import ExportOptions, export_onnx

    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:16]
    out = work / f"{checkpoint.stem}-{digest}.fp32.onnx"
    if not out.is_file():
        export_onnx(ExportOptions(checkpoint=checkpoint, output=out, verify=False))
    return out


def open_backends(
    checkpoint: Path, onnx: Path, threads: int
) -> tuple[dict[str, Engine], dict[str, str]]:
    """Every backend that opens here, and the reason for each that does not."""
    engines: dict[str, Engine] = {}
    missing: dict[str, str] = {}
    for key, name, runs in BACKENDS:
        path = checkpoint if runs == "checkpoint" else onnx
        try:
            engines[key] = backend_named(name).open(path, OpenOptions(threads=threads))
        except BackendUnavailableError as err:
            missing[key] = str(err)
        except (
            Exception
        ) as err:  # the table itself lacks it (no such backend): a reason, not a crash
            missing[key] = f"{type(err).__name__}: {err}"
    return engines, missing


def time_calls(engine: Engine, images: np.ndarray, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        engine.embed(images)
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        engine.embed(images)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def measure_model(
    checkpoint: Path, onnx: Path, args: argparse.Namespace, peak: CpuPeak
) -> dict[str, Any]:
    engines, missing = open_backends(checkpoint, onnx, args.threads)
    try:
        if REFERENCE not in engines:
            raise SystemExit(f"{checkpoint}: torch eager cannot open it: {missing.get(REFERENCE)}")
        reference = engines[REFERENCE]
        flops = forward_flops(reference)
        size = reference.card.input_size
        keys = list(engines)
        # p50 per round, per (batch size, backend)
        p50: dict[tuple[int, str], list[float]] = {
            (b, k): [] for b in args.batch_sizes for k in keys
        }
        for round_ in range(args.rounds):
            for batch in args.batch_sizes:
                images = np.random.default_rng(batch).integers(
                    0, 256, (batch, size, size, 3), np.uint8
                )
                order = keys[round_ % len(keys) :] + keys[: round_ % len(keys)]
                for key in order:
                    samples = time_calls(engines[key], images, args.warmup, args.iters)
                    p50[(batch, key)].append(statistics.median(samples))
        parity = onnx_parity(engines, size)
    finally:
        for engine in engines.values():
            engine.close()
    rows = []
    for batch in args.batch_sizes:
        limit_ms = flops * batch / (peak.gflops * 1e9) * 1000 if peak.gflops else None
        for key in keys:
            rounds = p50[(batch, key)]
            ratios = [mine / ref for mine, ref in zip(rounds, p50[(batch, REFERENCE)], strict=True)]
            ort = p50.get((batch, "onnxruntime"))
            vs_ort = [m / o for m, o in zip(rounds, ort, strict=True)] if ort else None
            median = statistics.median(rounds)
            rows.append(
                {
                    "batch": batch,
                    "backend": key,
                    "p50_ms": round(median, 3),
                    "p50_ms_per_round": [round(x, 3) for x in rounds],
                    "images_per_s": round(batch * 1000 / median, 1),
                    "vs_torch": _spread(ratios),
                    "vs_onnxruntime": _spread(vs_ort) if vs_ort else None,
                    "limit_ms": round(limit_ms, 4) if limit_ms else None,
                    "share_of_peak": round(limit_ms / median, 4) if limit_ms else None,
                }
            )
    return {
        "checkpoint": str(checkpoint),
        "onnx": str(onnx),
        "family": reference.card.family,
        "backbone": reference.card.backbone,
        "input_size": size,
        "gflops_per_image": round(flops / 1e9, 4),
        "unavailable": missing,
        "parity_cosine_min": parity,
        "rows": rows,
    }


def onnx_parity(engines: dict[str, Engine], size: int) -> dict[str, float]:
    """Each backend's least cosine against onnxruntime on one seeded batch (unit vectors)."""
    if "onnxruntime" not in engines:
        return {}
    images = np.random.default_rng(7).integers(0, 256, (8, size, size, 3), np.uint8)
    reference = engines["onnxruntime"].embed(images)
    return {
        key: round(float(np.min(np.sum(engine.embed(images) * reference, axis=1))), 6)
        for key, engine in engines.items()
        if key != "onnxruntime"
    }


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def markdown(results: dict[str, Any]) -> str:
    peak = results["peak"]
    lines = [
        f"CPU limit: {peak['cores']} cores x {peak['ghz']:.2f} GHz x {peak['flops_per_cycle']} "
        f"FLOPs/cycle = {peak['gflops']:.0f} GFLOP/s fp32 ({peak['basis']})",
        "",
        "| model | GFLOPs/img | batch | backend | p50 ms | img/s | / torch eager | / onnxruntime | "
        "limit ms | share of peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in results["models"]:
        name = f"{model['backbone']} ({model['input_size']} px)"
        for row in model["rows"]:
            vs_ort = row["vs_onnxruntime"]
            lines.append(
                f"| {name} | {model['gflops_per_image']:.3f} | {row['batch']} | {row['backend']} "
                f"| {row['p50_ms']:.2f} | {row['images_per_s']:.0f} "
                f"| {_cell(row['vs_torch'])} | {_cell(vs_ort) if vs_ort else '—'} "
                f"| {_number(row['limit_ms'], '.3f')} | {_number(row['share_of_peak'], '.1%')} |"
            )
        for key, reason in model["unavailable"].items():
            lines.append(f"| {name} | | | {key} | unavailable: {reason} | | | | | |")
    lines.append("")
    for model in results["models"]:
        for key, cosine in model["parity_cosine_min"].items():
            lines.append(f"- {model['backbone']}: {key} vs onnxruntime, least cosine {cosine}")
    return "\n".join(lines)


def _number(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _plain(value: Any) -> Any:
    """Paths (also inside --model's list) as strings, for JSON."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _cell(spread: dict[str, float]) -> str:
    return f"{spread['median']:.2f} ({spread['min']:.2f}–{spread['max']:.2f})"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, action="append", required=True, help="A .ckpt.")
    parser.add_argument("--batch-sizes", type=parse_ints, default=(1, 8))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument(
        "--work", type=Path, help="Where the ONNX exports go (default: a temp dir)."
    )
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    peak = cpu_peak(args.threads)
    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        models = []
        for checkpoint in args.model:
            onnx = export_fp32(checkpoint, work)
            print(f"measuring {checkpoint} ...", file=sys.stderr)
            models.append(measure_model(checkpoint, onnx, args, peak))
    results = {
        **run_record(None if argv is None else ["benchmarks/cpu_anchors.py", *argv]),
        "environment": environment(args.threads),
        "config": {k: _plain(v) for k, v in vars(args).items()},
        "peak": {**asdict(peak), "gflops": round(peak.gflops, 2)},
        "models": models,
    }
    if args.json:  # first: a report that fails to print loses no measurement
        args.json.write_text(dumps(results, indent=2))
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
