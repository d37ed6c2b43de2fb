"""Regenerate every figure, table and image of README.md with one command.

    python tools/readme_figures.py --dry-run                 # list: figure, machine, commands
    python tools/readme_figures.py --out readme-figures      # rerun all (hours on 2 cores)
    python tools/readme_figures.py --only ann-gallery --out readme-figures

Each README figure sits under a marker ``<!-- figure: NAME -->`` and says, visibly, the machine
that produced it and ``python tools/readme_figures.py --only NAME``. FIGURES below is the one
table of those names: their machine and the exact commands. A run writes each figure's outputs
to ``OUT/NAME/`` (``{out}`` in a command is that folder; files a command leaves elsewhere, such
as ``make demo``'s ``demo-output/``, are copied there), prints which README figure each output
belongs to, and records this machine in ``OUT/figures.json``. A test fails when a README figure
has no marker, a marker no entry here, or an entry no marker, so the list cannot rot.

Figures differ from machine to machine, even with the same seed: see README "Measured figures".
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The machines, as the README names them beside each figure.
HOST_A = "host A (2-core AMD EPYC, the earlier host)"
HOST_B = "host B (2-core AMD EPYC, the OpenMoji host)"
ANY_HOST = "any machine (byte-identical output for the seed)"
DEMO = "make demo"


@dataclass(frozen=True)
class Figure:
    """One README figure: the machine that produced the pasted one and how to make it again."""

    name: str
    machine: str
    commands: tuple[str, ...]
    outputs: tuple[str, ...] = ()  # files the commands write outside {out}, copied into it


FIGURES: tuple[Figure, ...] = (
    Figure(
        "synth-contact-sheet",
        ANY_HOST,
        (
            "sketchsearch data synth --out {out}/demo-data --categories 24 "
            "--photos-per-category 12 --sketches-per-photo 2 --size 128 --seed 0 "
            "--contact-sheet {out}/synth-contact-sheet.png",
        ),
    ),
    Figure(
        "ann-gallery",
        HOST_A,
        ("python benchmarks/ann.py --sizes 10000,100000 --json {out}/ann.json",),
    ),
    Figure(
        "demo-training",
        HOST_A,
        (
            DEMO,
            "python benchmarks/train_loader.py --data demo-output/data --split "
            "demo-output/split.json --img-size 48 --loss infonce=1,ce=1 --workers 0,1,2",
        ),
        ("demo-output/run/test_metrics.json",),
    ),
    Figure(
        "openmoji-results",
        HOST_B,
        (
            "make openmoji",
            "make openmoji-baselines",
            "make openmoji-train SEED=0",
            "make openmoji-train SEED=1",
            "make openmoji-train SEED=2",
        ),
        (
            "openmoji/baselines.json",
            "openmoji/quality-seed0.json",
            "openmoji/quality-seed1.json",
            "openmoji/quality-seed2.json",
        ),
    ),
    Figure(
        "openmoji-ablation",
        HOST_B,
        (
            "make openmoji",
            "python -m sketchsearch.benchmarks.real.ablation --rows benchmarks/real/ablation.yaml"
            " --data openmoji/data --split openmoji/split.json --out {out}/ablation",
        ),
    ),
    Figure(
        "openmoji-decode-cache",
        HOST_B,
        (
            "make openmoji",
            "python benchmarks/train_loader.py --data openmoji/data --split openmoji/split.json "
            "--decode-cache both --pseudo-sketches 1 --loss infonce=1,ce=1 --workers 0,1 "
            "--batches 15 --steps 5",
        ),
    ),
    Figure(
        "rerank",
        HOST_B,
        (
            DEMO,
            "make openmoji-train SEED=0",
            "python benchmarks/rerank.py --engine demo-output/model.onnx --index "
            "demo-output/gallery --split demo-output/split.json:test --data demo-output/data "
            "--json {out}/rerank-demo.json",
            "sketchsearch export onnx --checkpoint openmoji/run-seed0/best.ckpt --output "
            "{out}/zs.onnx",
            "sketchsearch gallery build --engine {out}/zs.onnx --split openmoji/split.json:test "
            "--data openmoji/data --domain photo --out {out}/om-gallery --no-default",
            "python benchmarks/rerank.py --engine {out}/zs.onnx --index {out}/om-gallery "
            "--split openmoji/split.json:test --data openmoji/data --json {out}/rerank-om.json",
            "python benchmarks/rerank.py --engine {out}/zs.onnx --index {out}/om-gallery "
            "--split openmoji/split.json:test --data openmoji/data --instance "
            "--json {out}/rerank-om-instance.json",
        ),
    ),
    Figure(
        "int8-calibration",
        HOST_B,
        (
            DEMO,
            "python benchmarks/int8_schemes.py --checkpoint demo-output/run/best.ckpt "
            "--calib-split demo-output/split.json:train --data demo-output/data",
            "sketchsearch export onnx --checkpoint demo-output/run/best.ckpt --output "
            "{out}/m.int8.onnx --precision int8 --calib-images demo-output/data/photo "
            "--calib-count 256",
        ),
    ),
    Figure(
        "export-verification",
        HOST_B,
        (
            DEMO,
            *(
                "sketchsearch export onnx --checkpoint demo-output/run/best.ckpt --output "
                f"{{out}}/model.{precision}.onnx --precision {precision}"
                for precision in ("fp32", "fp16", "int8")
            ),
            "sketchsearch export onnx --checkpoint demo-output/run/best.ckpt --output "
            "{out}/model.legacy.onnx --legacy",
        ),
    ),
    Figure(
        "evaluate-demo",
        HOST_A,
        (
            DEMO,
            "sketchsearch evaluate --engine demo-output/model.onnx --index demo-output/gallery "
            "--split demo-output/split.json:test --data demo-output/data "
            "--json {out}/evaluation.json",
        ),
    ),
    Figure("retrieve-grid", HOST_B, (DEMO,), ("demo-output/retrieve_grid.png",)),
    Figure(
        "bench-demo-cpu",
        HOST_B,
        (
            DEMO,
            "sketchsearch bench --checkpoint demo-output/run/best.ckpt --out {out}/bench "
            "--threads 2 --repeat 2 --ann-size 10000",
        ),
    ),
    Figure(
        "cpu-anchors",
        HOST_B,
        (
            DEMO,
            "python benchmarks/make_checkpoint.py --out {out}/effnet/best.ckpt --backbone "
            "efficientnet_b0 --img-size 224",
            "python benchmarks/cpu_anchors.py --model demo-output/run/best.ckpt --model "
            "{out}/effnet/best.ckpt --batch-sizes 1,8,32 --threads 2 --rounds 5 --iters 20 "
            "--warmup 5 --work {out}/anchors --json {out}/cpu-anchors.json",
        ),
    ),
    Figure(
        "serving",
        HOST_B,
        (
            DEMO,
            "python benchmarks/retrieve_startup.py",
            "python benchmarks/make_checkpoint.py --out {out}/effnet/best.ckpt --backbone "
            "efficientnet_b0 --img-size 224",
            "sketchsearch export onnx --checkpoint {out}/effnet/best.ckpt --output "
            "{out}/effnet.onnx --no-verify",
            "python benchmarks/gallery_throughput.py --case demo-output/model.onnx,demo,400 "
            "--case demo-output/model.onnx,synth96,2000 --case {out}/effnet.onnx,synth320,200 "
            "--repeats 5 --json {out}/gallery-throughput.json",
            "python benchmarks/preprocess_vs_timm.py --engine demo-output/model.onnx",
        ),
    ),
    Figure(
        "serve-page",
        HOST_B,
        (
            "SKETCHSEARCH_SCREENSHOT={out}/serve-page.png python -m pytest -q "
            "tests/runtime/service/test_browser.py",
        ),
    ),
    Figure(
        "serve-demo",
        HOST_B,
        (
            DEMO,
            "python benchmarks/serve_demo_screenshot.py --engine demo-output/model.onnx "
            "--index demo-output/gallery --category house --all --out {out}/serve-demo.png",
        ),
    ),
    Figure(
        "serve-load",
        HOST_B,
        (
            DEMO,
            "python benchmarks/make_checkpoint.py --out {out}/effnet/best.ckpt --backbone "
            "efficientnet_b0 --img-size 224",
            "sketchsearch export onnx --checkpoint {out}/effnet/best.ckpt --output "
            "{out}/effnet.onnx --no-verify",
            "sketchsearch gallery build --engine {out}/effnet.onnx --images "
            "demo-output/data/photo/tx_000000000000 --out {out}/effnet-gallery --no-default "
            "--quiet",
            "python benchmarks/serve_load.py --engine demo-output/model.onnx --index "
            "demo-output/gallery --queries demo-output/data/sketch --clients 1,4,16 "
            "--requests 400 --rounds 3 --json {out}/serve-load-demo.json",
            "python benchmarks/serve_load.py --engine {out}/effnet.onnx --index "
            "{out}/effnet-gallery --queries demo-output/data/sketch --drawing --clients 1,4,16 "
            "--requests 100 --rounds 3 --json {out}/serve-load-effnet.json",
        ),
    ),
    Figure(
        "gradcam-demo",
        HOST_A,
        (
            DEMO,
            "sketchsearch analyze gradcam --checkpoint demo-output/run/best.ckpt --query "
            "demo-output/data/sketch/tx_000000000000/house/house_0019-1.png --match "
            "demo-output/data/photo/tx_000000000000/house/house_0019.jpg "
            "--out {out}/gradcam-demo.png",
        ),
    ),
    Figure(
        "roc-demo",
        HOST_A,
        (
            DEMO,
            "sketchsearch gallery build --engine demo-output/model.onnx --split "
            "demo-output/split.json:val --data demo-output/data --out {out}/gallery-val "
            "--no-default",
            "sketchsearch analyze roc --engine demo-output/model.onnx --index {out}/gallery-val "
            "--split demo-output/split.json:val --data demo-output/data --target-fpr 0.05 "
            "--out {out}/roc-demo.png --json {out}/roc.json",
        ),
    ),
    Figure(
        "measured-figures",
        "the host each row names (host A or host B, both 2-core AMD EPYC)",
        (
            "python benchmarks/data_split.py --json {out}/split-bench.json",
            "sketchsearch data synth --out {out}/synth",
            "python benchmarks/ann.py --sizes 10000,100000 --json {out}/ann.json",
            "python benchmarks/decode_memory.py --json {out}/decode_memory.json",
            "time make demo",
            'd=$(mktemp -d) && git clone . "$d" && (cd "$d" && time make test)',
        ),
    ),
    Figure(
        "beyond-one-machine",
        HOST_B,
        (
            DEMO,
            "sketchsearch gallery push demo-output/gallery --to "
            "'qdrant+local://{out}/qdrant?collection=photos'",
            "sketchsearch evaluate --engine demo-output/model.onnx --index "
            "'qdrant+local://{out}/qdrant?collection=photos' --split demo-output/split.json:test "
            "--data demo-output/data --json {out}/evaluate-qdrant.json",
            "sketchsearch export triton --onnx demo-output/model.onnx --out {out}/models "
            "--preferred-batch 8,16 --max-queue-delay-us 200",
        ),
    ),
    Figure(
        "embed-scale",
        HOST_B,
        (
            DEMO,
            "python benchmarks/embed_scale.py --only embed --images 4000 --shard-size 1000 "
            "--rounds 3 --work {out}/work --json {out}/embed-scale-runners.json",
            "python benchmarks/embed_scale.py --only import --import-items 1000000 "
            "--work {out}/work --json {out}/embed-scale-import.json",
        ),
    ),
)


MARKER = re.compile(r"^<!-- figure: ([\w-]+) -->\s*$", re.MULTILINE)
# A decimal number that is not part of a version (10.13.3.9, >=13.0, 12.x, 10.1-GA).
MEASURED = re.compile(r"(?<![\w.=<>/-])\d+\.\d+(?![\w.-])")
METRIC_OUTPUT = re.compile(r"\b0\.\d{4}\b")  # pasted metrics: 0.4950


def figure_blocks(lines: Sequence[str]) -> list[tuple[int, str]]:
    """(line number, kind) of every figure: an image, a table with measured numbers, a
    plain fenced block with 4-decimal metrics. Headings are ("heading"), markers ("marker")."""
    found, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if line.strip() == "```" and METRIC_OUTPUT.search("\n".join(lines[i + 1 : end])):
                found.append((i + 1, "metrics output"))
            i = end + 1
            continue
        if line.startswith("|"):
            end = next(
                (j for j in range(i, len(lines)) if not lines[j].startswith("|")), len(lines)
            )
            if MEASURED.search("\n".join(lines[i + 2 : end])):
                found.append((i + 1, "table"))
            i = end
            continue
        if line.startswith("!["):
            found.append((i + 1, "image"))
        elif line.startswith("#"):
            found.append((i + 1, "heading"))
        elif MARKER.search(line):
            found.append((i + 1, "marker"))
        i += 1
    return found


def check_readme(text: str) -> list[str]:
    """Every way README.md and FIGURES disagree, one line each; [] when they agree.

    A figure needs a marker above it in its section (a heading ends a marker's reach); after
    the marker, a visible line must name the figure's machine and its regeneration command."""
    lines = text.splitlines()
    known = {figure.name: figure for figure in FIGURES}
    problems, current = [], None
    for number, kind in figure_blocks(lines):
        if kind == "heading":
            current = None
        elif kind == "marker":
            current = MARKER.search(lines[number - 1]).group(1)  # type: ignore[union-attr]
            figure = known.get(current)
            visible = lines[number] if number < len(lines) else ""
            if figure is None:
                problems.append(f"README.md:{number}: figure {current!r} is not in FIGURES")
            elif f"`python tools/readme_figures.py --only {current}`" not in visible or (
                figure.machine not in visible
            ):
                problems.append(
                    f"README.md:{number + 1}: figure {current!r} must be followed by "
                    f"'*Produced on {figure.machine}; regenerate: `python "
                    f"tools/readme_figures.py --only {current}`.*'"
                )
        elif current is None:
            problems.append(f"README.md:{number}: {kind} without a <!-- figure: NAME --> marker")
    marked = MARKER.findall(text)
    problems += [
        f"FIGURES: {name!r} has no marker in README.md" for name in known if name not in marked
    ]
    problems += [
        f"README.md: figure {name!r} is marked twice"
        for name in set(marked)
        if marked.count(name) > 1
    ]
    return problems


def figure_names() -> list[str]:
    return [figure.name for figure in FIGURES]


def unknown_names(only: Sequence[str]) -> list[str]:
    return [name for name in only if name not in figure_names()]


def select(only: Sequence[str]) -> list[Figure]:
    """The figures named, in FIGURES' order (all when none are named)."""
    return [figure for figure in FIGURES if not only or figure.name in only]


def commands_of(figure: Figure, out: Path) -> list[str]:
    return [command.replace("{out}", str(out / figure.name)) for command in figure.commands]


def describe(figures: Sequence[Figure], out: Path) -> str:
    """The dry run: each figure, the machine of the README's copy, and its commands."""
    lines = []
    for figure in figures:
        lines.append(
            f"README figure {figure.name} (pasted from {figure.machine}) -> {out}/{figure.name}/"
        )
        lines += [f"    {command}" for command in commands_of(figure, out)]
        lines += [f"    copy {path}" for path in figure.outputs]
    return "\n".join(lines)


def regenerate(figure: Figure, out: Path) -> str | None:
    """Run one figure's commands; None when all succeeded, else the failing command."""
    folder = out / figure.name
    folder.mkdir(parents=True, exist_ok=True)
    for command in commands_of(figure, out):
        print(f"[{figure.name}] $ {command}", flush=True)
        if subprocess.run(command, shell=True, cwd=REPO, check=False).returncode != 0:
            return command
    for path in figure.outputs:
        shutil.copy2(REPO / path, folder / Path(path).name)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("readme-figures"))
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--dry-run", action="store_true", help="List, run nothing.")
    parser.add_argument("--check", action="store_true", help="Check README.md's markers.")
    args = parser.parse_args(argv)
    if args.check:
        problems = check_readme((REPO / "README.md").read_text())
        print("\n".join(problems or ["README.md: every figure is marked and listed"]))
        return 1 if problems else 0
    unknown = unknown_names(args.only)
    if unknown:
        parser.error(f"unknown figure {', '.join(unknown)}: known are {', '.join(figure_names())}")
    figures = select(args.only)
    if args.dry_run:
        print(describe(figures, args.out))
        return 0
    from sketchsearch.benchmarks.machine_info import machine_facts, run_record
    from sketchsearch.data import strict_json

    failed = {figure.name: regenerate(figure, args.out) for figure in figures}
    for name, command in failed.items():
        outcome = "FAILED at " + command if command else "done"
        print(f"README figure {name}: {args.out / name}/ ({outcome})")
    record = {**run_record(), "machine": machine_facts(), "figures": failed}
    (args.out / "figures.json").write_text(strict_json.dumps(record, indent=1) + "\n")
    return 1 if any(failed.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
