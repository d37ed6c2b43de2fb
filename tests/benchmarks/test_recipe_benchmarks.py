"""The recipe's measurement scripts: the loader with and without the decode cache, and the
ablation table, run on tiny real data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sketchsearch.benchmarks.real import ablation_runner as ablation
from sketchsearch.data.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def test_train_loader_measures_the_decode_cache_side_by_side(tiny_run, tmp_path: Path) -> None:
    import yaml

    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    out = tmp_path / "loader.json"
    args = [sys.executable, str(ROOT / "benchmarks" / "train_loader.py")]
    args += ["--data", config["data"], "--split", config["split"], "--model", "test_efficientnet"]
    args += ["--img-size", "32", "--batch-size", "4", "--loss", "infonce=1"]
    args += ["--workers", "0", "--batches", "2", "--steps", "1", "--warmup", "0"]
    args += ["--decode-cache", "both", "--pseudo-sketches", "1", "--json", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["loader"]
    assert [row["decode_cache"] for row in rows] == [False, True]
    assert rows[1]["cache_build_s"] > 0 and rows[0]["cache_build_s"] == 0
    assert all(row["estimated_epochs_per_min"] > 0 for row in rows)
    assert "cache" in done.stdout and "est. epochs/min" in done.stdout


def test_ablation_rows_become_train_flags_and_a_table(tmp_path: Path) -> None:
    rows_file = tmp_path / "rows.yaml"
    rows_file.write_text(
        "base: {epochs: 2, loss: 'infonce=1'}\n"
        "rows:\n"
        "  - {name: base, change: the base}\n"
        "  - {name: pseudo, change: pseudo-sketches, against: base,\n"
        "     set: {pseudo_sketches: 1.0, decode_cache: true, stroke_augment: false}}\n"
    )
    base, rows = ablation.read_rows(rows_file)
    assert ablation.arguments({**base, **rows[1].options}) == [
        "--epochs", "2", "--loss", "infonce=1", "--pseudo-sketches", "1.0",
        "--decode-cache", "--no-stroke-augment",
    ]  # fmt: skip
    records = {}
    for name, value in (("base", 0.30), ("pseudo", 0.25)):
        quality = tmp_path / f"{name}.quality.json"
        model = {"kind": "model", "category_map": value, "instance_recall_at_1": 0.5}
        model["instance_map"] = 0.6
        pixels = {"kind": "baseline", "category_map": 0.2}
        quality.write_text(json.dumps({"rows": [pixels, model]}))
        records[name] = {"train_seconds": 90, "quality": str(quality)}
    table = ablation.table(rows, records)
    assert "| base | the base | 0.3000 | 1.50× |" in table
    assert "no (-0.0500 vs base)" in table and "1.5 min" in table
    rows_file.write_text("rows:\n  - {name: a, against: nothing}\n")
    with pytest.raises(UsageError, match="against"):
        ablation.read_rows(rows_file)


def test_run_rows_reuses_records_and_reads_the_rows_not_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows_file = tmp_path / "rows.yaml"
    rows_file.write_text(
        "base: {epochs: 2}\n"
        "rows:\n  - {name: a}\n  - {name: b, against: a, set: {lr: 0.1}}\n  - {name: c}\n"
    )
    base, rows = ablation.read_rows(rows_file)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text(json.dumps({"options": {"epochs": 2}, "quality": "a.q"}))
    (out / "b.json").write_text(json.dumps({"options": {"epochs": 9}, "quality": "b.q"}))
    trained: list[str] = []
    monkeypatch.setattr(ablation.subprocess, "run", lambda *a, **k: trained.append(a[0][1]))

    records = ablation.run_rows(rows, base, tmp_path, tmp_path, out, report_only=True)
    assert sorted(records) == ["a", "b"] and not trained  # c was never run: no record
    records = ablation.run_rows(rows, base, tmp_path, tmp_path, out, only=("a",))
    assert records["a"]["quality"] == "a.q" and not trained  # same options: reused
    assert records["b"]["options"] == {"epochs": 9}  # not asked for: read as it is
    assert "c" not in records


def test_the_real_benchmark_help_texts_read_as_before() -> None:
    """No `module.name` left in a help text by the move into cli/ (they read as before)."""
    from click.testing import CliRunner

    from sketchsearch.cli.real_benchmarks import ablation as ablation_command
    from sketchsearch.cli.real_benchmarks import openmoji, quality

    helps = {
        command.name: " ".join(CliRunner().invoke(command, ["--help"]).output.split())
        for command in (ablation_command, openmoji, quality)
    }
    assert "Print the table of the rows already run." in helps["ablation"]
    assert (
        "Train and score every ablation row, then print the markdown table." in (helps["ablation"])
    )
    assert "(default: fetched with npm pack into --cache-dir)" in helps["openmoji"]
    for text in helps.values():
        assert "_runner." not in text and "_build." not in text
