"""The recipe ablation on the OpenMoji zero-shot protocol: one training run per row, one table.

Each row of ``benchmarks/real/ablation.yaml`` is a set of ``sketchsearch train`` options on top
of the file's ``base``. Every row is trained on the benchmark's zero-shot split (its test
subgroups are never seen in training), scored by ``quality.py`` beside the best no-learning
baseline, and timed; the table says, per row, whether the change helped against the row it
changes (``against``).

    python -m sketchsearch.benchmarks.real.ablation --rows benchmarks/real/ablation.yaml \\
        --data openmoji/data --split openmoji/split.json --out openmoji/ablation
    python -m sketchsearch.benchmarks.real.ablation ... --report-only   # the table from runs

A row's run folder is reused when it holds a finished run of the same options, so an
interrupted ablation continues where it stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sketchsearch.data.errors import UsageError
from sketchsearch.data.strict_json import dumps


@dataclass(frozen=True)
class AblationRow:
    name: str
    change: str  # what the row changes, in words
    against: str | None  # the row it is compared with
    options: dict[str, Any]


def read_rows(path: Path) -> tuple[dict[str, Any], list[AblationRow]]:
    import yaml

    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("rows"), list):
        raise UsageError(f"{path}: expected `base:` options and a `rows:` list")
    rows = [
        AblationRow(
            str(row["name"]), str(row.get("change", "")), row.get("against"), row.get("set", {})
        )
        for row in raw["rows"]
    ]
    names = [row.name for row in rows]
    unknown = [r.against for r in rows if r.against is not None and r.against not in names]
    if unknown or len(set(names)) != len(names):
        raise UsageError(f"{path}: row names must be unique and `against` must name a row")
    return dict(raw.get("base") or {}), rows


def arguments(options: dict[str, Any]) -> list[str]:
    """``sketchsearch train`` flags for a dict of settings (booleans as --x / --no-x)."""
    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags


def run_row(
    row: AblationRow, base: dict[str, Any], data: Path, split: Path, out: Path
) -> dict[str, Any]:
    """Train (unless already done with the same options) and score one row."""
    folder = out / row.name
    options = {**base, **row.options}
    record_file = out / f"{row.name}.json"
    if record_file.is_file():
        record: dict[str, Any] = json.loads(record_file.read_text())
        if record.get("options") == options:
            return record
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "sketchsearch"), "train", "--data", str(data), "--split", str(split)]
    command += ["--out", str(folder), "--no-test", *arguments(options)]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - start
    quality = out / f"{row.name}.quality.json"
    score = [sys.executable, "-m", "sketchsearch.benchmarks.real.quality", "--split", str(split)]
    score += ["--data", str(data), "--model", str(folder / "best.ckpt"), "--baseline", "pixels"]
    score += ["--baseline", "edges", "--json", str(quality)]
    subprocess.run(score, check=True)
    record = {"options": options, "train_seconds": round(seconds), "quality": str(quality)}
    record_file.write_text(dumps(record, indent=1) + "\n")
    return record


def table(rows: list[AblationRow], records: dict[str, dict[str, Any]]) -> str:
    """Markdown: one line per row, with the best baseline's figure for the ratio."""
    lines = [
        "| row | change | category mAP@all | × best baseline | instance R@1 | instance mAP "
        "| train time | kept? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    model_map: dict[str, float] = {}
    for row in rows:
        record = records.get(row.name)
        if record is None:
            lines.append(f"| {row.name} | {row.change} | not run | | | | | |")
            continue
        report = json.loads(Path(record["quality"]).read_text())
        baselines = [r for r in report["rows"] if r["kind"] == "baseline"]
        model = next(r for r in report["rows"] if r["kind"] == "model")
        best = max(r["category_map"] for r in baselines)
        model_map[row.name] = model["category_map"]
        verdict = "base"
        if row.against is not None and row.against in model_map:
            gain = model["category_map"] - model_map[row.against]
            verdict = f"{'yes' if gain > 0 else 'no'} ({gain:+.4f} vs {row.against})"
        minutes = record["train_seconds"] / 60
        lines.append(
            f"| {row.name} | {row.change} | {model['category_map']:.4f} | "
            f"{model['category_map'] / best:.2f}× | {model['instance_recall_at_1']:.4f} | "
            f"{model['instance_map']:.4f} | {minutes:.1f} min | {verdict} |"
        )
    return "\n".join(lines)


def run_rows(
    rows: list[AblationRow],
    base: dict[str, Any],
    data: Path,
    split: Path,
    out: Path,
    only: tuple[str, ...] = (),
    report_only: bool = False,
) -> dict[str, dict[str, Any]]:
    """The record of every row: run (or reused) for the rows asked for, read from its record
    file for the others (absent when that row was never run). ``report_only`` runs none."""
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    for row in rows:
        record_file = out / f"{row.name}.json"
        if report_only or (only and row.name not in only):
            if record_file.is_file():
                records[row.name] = json.loads(record_file.read_text())
            continue
        records[row.name] = run_row(row, base, data, split, out)
    return records
