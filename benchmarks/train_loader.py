"""Does loading starve the model? Training-loader and training-step throughput, measured apart.

(a) loader: samples/s of the real training DataLoader (`RetrievalDataModule.train_dataloader`:
    read, decode, augment and collate query/positive/negative triplets) for each ``--workers``
    value, over ``--batches`` batches. Each epoch starts a fresh loader (the trainer reloads its
    loaders every epoch for a new draw of triplets), so worker start-up is counted, and shown
    apart as the time to the first batch.
(b) step: samples/s of `RetrievalModule.training_step` + backward + optimizer step on batches
    already in memory, for the configured model, input size, loss and batch size.

Both come from `sketchsearch.train.run.prepare()`, exactly as `sketchsearch train` builds them.
If the loader's rate at the workers you train with is below the step's, the model waits for
data: add workers or lighten ``--augment``. On a CPU-only machine the loader workers and the
model share the cores, so a real run is slower than either figure alone.

    python benchmarks/train_loader.py                       # demo data, resnet10t at 64 px
    python benchmarks/train_loader.py --data ROOT --split split.json --model efficientnet_b3a \\
        --img-size 224 --batch-size 32 --workers 0,2,4,8 --batches 30 --steps 10 --device cuda
    python benchmarks/train_loader.py --batches 4 --steps 3 --workers 0,1 --json out.json
    python benchmarks/train_loader.py --data openmoji/data --split openmoji/split.json \
        --decode-cache both --pseudo-sketches 1 --stroke-augment   # the cache's gain, side by side

Without ``--data``/``--split`` it writes the demo synthetic set (24 categories x 30 photos x 2
sketches, 96 px) and its split into a temporary folder, removed afterwards. ``--device cuda``
times the step under 16-bit autocast, as the trainer's default precision on a GPU does.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings
from collections.abc import Generator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sketchsearch.benchmarks.machine_info import machine_facts
from sketchsearch.data.layouts import scan
from sketchsearch.data.split_file import build_split_file, save_split
from sketchsearch.data.splits import SplitConfig, make_split
from sketchsearch.data.strict_json import dumps
from sketchsearch.data.synth import SynthConfig, generate
from sketchsearch.train.config import TrainConfig
from sketchsearch.train.datamodule import RetrievalDataModule
from sketchsearch.train.retrieval_module import RetrievalModule
from sketchsearch.train.run import prepare

DEMO = SynthConfig(categories=24, photos_per_category=30, sketches_per_photo=2, size=96)
Batch = dict[str, Tensor]


def make_demo_data(folder: Path) -> tuple[Path, Path]:
    """The demo synthetic set and a default (80/10/10, soft) split of it."""
    root = folder / "data"
    generate(root, DEMO)
    collection = scan(root)
    config = SplitConfig(seed=0)
    split = build_split_file(collection, config, make_split(collection, config))
    return root, save_split(split, folder / "split.json")


def batches(data: RetrievalDataModule, workers: int) -> Generator[Batch, None, None]:
    """Training batches without end, a fresh loader per epoch as in training."""
    data.workers = workers
    epoch = 0
    while True:
        assert data.train_set is not None
        data.train_set.set_epoch(epoch)
        yield from data.train_dataloader()
        epoch += 1


def measure_loader(data: RetrievalDataModule, workers: int, count: int) -> dict[str, Any]:
    start = time.perf_counter()
    stream = batches(data, workers)
    samples, first = 0, 0.0
    for n, batch in enumerate(stream, start=1):
        samples += int(batch["query"].shape[0])
        if n == 1:
            first = time.perf_counter() - start
        if n == count:
            break
    stream.close()  # shuts the workers down
    seconds = time.perf_counter() - start
    return {
        "workers": workers,
        "batches": count,
        "samples": samples,
        "seconds": round(seconds, 3),
        "first_batch_s": round(first, 3),
        "samples_per_s": round(samples / seconds, 1),
    }


def measure_step(
    module: RetrievalModule, loaded: list[Batch], steps: int, warmup: int, device: torch.device
) -> dict[str, Any]:
    cuda = device.type == "cuda"
    module.to(device).train()
    optimizer = module.configure_optimizers()["optimizer"]
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    on_device = [{k: v.to(device, non_blocking=True) for k, v in b.items()} for b in loaded]

    def step(index: int) -> int:
        batch = on_device[index % len(on_device)]
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            loss = module.training_step(batch, index)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return int(batch["query"].shape[0])

    with warnings.catch_warnings():
        # training_step logs its losses; without a Trainer, Lightning warns and drops them.
        warnings.filterwarnings("ignore", message=".*self.log.*")
        for index in range(warmup):
            step(index)
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        samples = sum(step(warmup + index) for index in range(steps))
        if cuda:
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    return {
        "steps": steps,
        "warmup_steps": warmup,
        "samples": samples,
        "seconds": round(seconds, 3),
        "samples_per_s": round(samples / seconds, 1),
        "needs_negatives": module.loss.needs_negatives,
    }


def measure(args: argparse.Namespace, root: Path, split_path: Path) -> dict[str, Any]:
    caches = {"off": [False], "on": [True], "both": [False, True]}[args.decode_cache]
    config = TrainConfig(
        data=str(root),
        split=str(split_path),
        model=args.model,
        img_size=args.img_size,
        embed_dim=args.embed_dim,
        batch_size=args.batch_size,
        loss=args.loss,
        augment=args.augment,
        workers=0,
        seed=args.seed,
        pseudo_sketches=args.pseudo_sketches,
        stroke_augment=args.stroke_augment,
    )
    loader = []
    with tempfile.TemporaryDirectory() as cache_dir:
        for cached in caches:
            run = replace(config, decode_cache=cached, cache_dir=cache_dir)
            split, module, data = prepare(run)
            started = time.perf_counter()
            data.setup("fit")
            built = time.perf_counter() - started  # the one-off decode into the cache
            for workers in args.workers:
                row = measure_loader(data, workers, args.batches)
                row["decode_cache"] = cached
                row["cache_build_s"] = round(built, 2) if cached else 0.0
                loader.append(row)
    assert data.train_set is not None
    stream = batches(data, 0)
    loaded = [next(stream) for _ in range(min(args.steps, 4))]
    stream.close()
    device = torch.device(args.device)
    step = measure_step(module, loaded, args.steps, args.warmup, device)
    for row in loader:
        estimate = estimated_rate(row["samples_per_s"], step["samples_per_s"], row["workers"])
        row["estimated_training_samples_per_s"] = round(estimate, 1)
        row["estimated_epochs_per_min"] = round(60 * estimate / len(data.train_set), 2)
    return {
        "data": str(root),
        "split": str(split_path),
        "triplets_per_epoch": len(data.train_set),
        "categories": len(split.categories),
        "model": config.model,
        "img_size": module.model.config.img_size,
        "batch_size": config.batch_size,
        "loss": config.loss,
        "augment": config.augment,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "loader": loader,
        "step": step,
        "machine": machine_facts(torch=torch.__version__),
    }


def estimated_rate(loader_rate: float, step_rate: float, workers: int) -> float:
    """Training samples/s if nothing else competed: serial without workers, overlapped with."""
    if workers == 0:
        return 1.0 / (1.0 / loader_rate + 1.0 / step_rate)
    return min(loader_rate, step_rate)


def table(figures: dict[str, Any]) -> str:
    step = figures["step"]
    lines = [
        f"data {figures['data']}: {figures['triplets_per_epoch']} training triplets per epoch, "
        f"{figures['categories']} categories",
        f"model {figures['model']} at {figures['img_size']} px, batch {figures['batch_size']}, "
        f"loss {figures['loss']}, augment {figures['augment']}, device {figures['device']}, "
        f"{figures['torch_threads']} torch threads",
        "",
        f"  {'stage':<11} {'cache':>5} {'workers':>7} {'batches':>7} {'samples/s':>10} "
        f"{'first batch s':>13} {'est. training samples/s':>24} {'est. epochs/min':>15}",
    ]
    for row in figures["loader"]:
        lines.append(
            f"  {'loader':<11} {'on' if row['decode_cache'] else 'off':>5} {row['workers']:>7} "
            f"{row['batches']:>7} {row['samples_per_s']:>10.1f} {row['first_batch_s']:>13.3f} "
            f"{row['estimated_training_samples_per_s']:>24.1f} "
            f"{row['estimated_epochs_per_min']:>15.2f}"
        )
    lines.append(
        f"  {'train step':<11} {'-':>5} {'-':>7} {step['steps']:>7} "
        f"{step['samples_per_s']:>10.1f} {'-':>13} {'-':>24} {'-':>15}"
    )
    best = max(figures["loader"], key=lambda row: row["estimated_training_samples_per_s"])
    estimate, workers = best["estimated_training_samples_per_s"], best["workers"]
    if estimate >= 0.95 * step["samples_per_s"]:
        verdict = f"with --workers {workers}, loading keeps up with the model"
    else:
        verdict = (
            f"loading starves the model: at best {estimate:.1f} of the step's "
            f"{step['samples_per_s']:.1f} samples/s (--workers {workers}); add workers or "
            "lighten --augment"
        )
    lines += [
        "",
        verdict,
        "est.: without workers, loading and the step take turns; with workers they overlap "
        "(on a CPU-only machine they also share its cores)",
    ]
    return "\n".join(lines)


def worker_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give worker counts such as 0,1,2")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="data root (default: demo synthetic set)")
    parser.add_argument("--split", type=Path, help="split file of --data")
    parser.add_argument("--model", default="resnet10t")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--embed-dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--loss", default="contrastive=1,ce=1")
    parser.add_argument("--augment", default="basic", choices=("none", "basic", "randaugment"))
    parser.add_argument("--workers", type=worker_counts, default=[0, 1, 2], help="e.g. 0,1,2")
    parser.add_argument("--batches", type=int, default=10, help="loader batches per setting")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--decode-cache",
        choices=("off", "on", "both"),
        default="off",
        help="measure the loader without, with, or without and with the decoded-image cache",
    )
    parser.add_argument("--pseudo-sketches", type=float, default=0.0)
    parser.add_argument("--stroke-augment", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if (args.data is None) != (args.split is None):
        parser.error("give --data and --split together, or neither for the demo set")
    if min(args.batches, args.steps) < 1 or args.warmup < 0:
        parser.error("--batches and --steps must be at least 1, --warmup at least 0")
    if not math.isfinite(args.pseudo_sketches) or args.pseudo_sketches < 0:  # float("nan") parses
        parser.error(f"--pseudo-sketches {args.pseudo_sketches}: must be a number of at least 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="train-loader-") as tmp:
        if args.data is None:
            root, split_path = make_demo_data(Path(tmp))
        else:
            root, split_path = args.data, args.split
        figures = measure(args, root, split_path)
    print(table(figures))
    if args.json:
        args.json.write_text(dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
