"""`sketchsearch bench`: the whole chain, its order of checks, its one read of the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sketchsearch.cli.bench_command import bench
from sketchsearch.runtime.engines.recommendation import read_recommendation


def test_bench_command_runs_the_whole_chain(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    args = ["--checkpoint", str(tiny_run / "best.ckpt"), "--out", str(out)]
    args += ["--precisions", "fp32", "--batch-sizes", "1", "--warmup", "0", "--iters", "2"]
    args += ["--providers", "cpu,tensorrt", "--gallery-size", "32", "--threads", "1"]
    result = CliRunner().invoke(bench, [*args, "--ann-size", "1000"])
    assert result.exit_code == 0, result.output
    for name in ("exports.json", "latency.json", "accuracy.json", "report.json", "report.png"):
        assert (out / name).is_file(), name
    text = (out / "report.md").read_text()
    assert "| `model.fp32.onnx` | onnxruntime CPU | fp32 | ok |" in text
    assert json.loads((out / "exports.json").read_text())["exports"][0]["status"] == "ok"
    # --ann-size: measured in this run, on this machine, listed under the heading
    assert "ANN (the plot's right panel): measured " in text[: text.index("| File |")]
    payload = json.loads((out / "report.json").read_text())
    assert payload["ann"]["this_machine"] is True and payload["ann"]["runs"] == [1000]
    assert payload["ann"]["provenance"]["source"] == "this run"
    assert json.loads((out / "ann.json").read_text())["runs"][0]["n"] == 1000
    # OpenVINO: a row of its own, its parity on real photos, and the recommendation it won or
    # lost (batch 1 only was measured: no batch workload)
    assert "| `model.fp32.onnx` | OpenVINO CPU | fp32 | ok |" in text
    assert "- `model.fp32.onnx` on openvino: cosine min " in text and ", passed (needs" in text
    found = read_recommendation(out / "model.fp32.onnx")
    assert found is not None and found.batch is None and found.single is not None
    assert {c.row for c in found.single.candidates} == {"ort-cpu", "openvino-cpu"}
    parity = {c.backend: c.parity for c in found.single.candidates}  # the export's check
    assert parity["onnxruntime"] is None and (parity["openvino"] or 0) >= 0.9999
    assert f"bench: backends recommended for model.fp32.onnx: {out}" in result.stderr


SMALL = ["--precisions", "fp32", "--batch-sizes", "1", "--warmup", "0", "--iters", "1"]
SMALL += ["--providers", "cpu", "--gallery-size", "8", "--threads", "1"]


def test_bench_command_without_a_split_and_a_missing_checkpoint_names_no_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The split is checked before the checkpoint is read (exit 2, nothing written)."""
    from sketchsearch.cli.main import cli, run

    checkpoint = tmp_path / "gone" / "best.ckpt"
    out = tmp_path / "bench"
    assert run(cli, ["bench", "--checkpoint", str(checkpoint), "--out", str(out), *SMALL]) == 2
    error = capsys.readouterr().err
    assert error == (
        f"error: {checkpoint}: its run folder names no split: pass --split SPLIT:PART\n"
    )
    assert not out.exists()


def test_bench_command_records_an_unreadable_checkpoint_as_failed_rows(
    split_args: list[str], tmp_path: Path
) -> None:
    """With --split, a checkpoint that cannot be read is a failed export row (and failed
    measurements), in a report written as usual: exit 0, as before."""
    checkpoint = tmp_path / "run" / "best.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"not a checkpoint")
    out = tmp_path / "bench"
    args = ["--checkpoint", str(checkpoint), "--out", str(out), *split_args, *SMALL]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    (entry,) = json.loads((out / "exports.json").read_text())["exports"]
    assert entry["status"] == "failed"
    assert entry["reason"].startswith(f"{checkpoint}: not a readable checkpoint")
    assert (out / "report.md").is_file() and (out / "report.json").is_file()
    text = (out / "report.md").read_text()
    assert "| `model.fp32.onnx` | ONNX export | fp32 | failed: export: " in text
    # By default the ANN panel is left out: not a results file committed from another host
    assert json.loads((out / "report.json").read_text())["ann"] is None
    assert "ANN" not in text and "Not measured in this run" not in text
    assert not (out / "ann.json").exists()


def test_bench_command_refuses_ann_and_ann_size_together(
    split_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both would fill one panel: refused before anything runs (exit 2, nothing written)."""
    from sketchsearch.cli.main import cli, run

    out = tmp_path / "bench"
    ann = ["--ann", str(tmp_path / "ann.json"), "--ann-size", "1000"]
    args = ["bench", "--checkpoint", str(tmp_path / "best.ckpt"), "--out", str(out), *ann]
    assert run(cli, [*args, *split_args, *SMALL]) == 2
    assert capsys.readouterr().err == (
        "error: --ann FILE and --ann-size N both given: pass one of them\n"
    )
    assert not out.exists()


def test_bench_command_prints_each_step_as_it_starts(split_args: list[str], tmp_path: Path) -> None:
    """On stderr, in order, before each step runs; the report still goes to stdout."""
    checkpoint = tmp_path / "run" / "best.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"not a checkpoint")
    args = ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "bench")]
    result = CliRunner().invoke(bench, [*args, *split_args, *SMALL])
    assert result.exit_code == 0, result.output
    steps = [line for line in result.stderr.splitlines() if line.startswith("bench: ")]
    assert steps == [
        "bench: exporting fp32…",
        "bench: latency…",
        "bench: accuracy…",
        "bench: report…",
    ]
    assert "bench: " not in result.stdout


def test_bench_takes_the_run_split_as_its_config_names_it(tmp_path: Path) -> None:
    """As before: the paths config.yaml names, unresolved; the steps that use them say when
    they are gone. No split named (or a config that is not settings): None."""
    from sketchsearch.benchmarks.bench import run_split

    checkpoint = tmp_path / "run" / "best.ckpt"
    checkpoint.parent.mkdir()
    assert run_split(checkpoint) is None
    (checkpoint.parent / "config.yaml").write_text("split: gone/split.json\ndata: gone/data\n")
    assert run_split(checkpoint) == ("gone/split.json:test", Path("gone/data"))
    (checkpoint.parent / "config.yaml").write_text("split: s.json\n")
    assert run_split(checkpoint) is None
    (checkpoint.parent / "config.yaml").write_text("- not settings\n")
    assert run_split(checkpoint) is None


def test_bench_exports_every_precision_from_one_read_of_the_checkpoint(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sketchsearch.benchmarks.bench import BenchConfig, export_all, load_once
    from sketchsearch.train import checkpoint_card

    reads: list[Path] = []
    real = checkpoint_card.read_checkpoint

    def counting(path: Any) -> Any:
        reads.append(Path(path))
        return real(path)

    monkeypatch.setattr(checkpoint_card, "read_checkpoint", counting)
    config = BenchConfig(tiny_run / "best.ckpt", tmp_path, precisions=("fp32", "fp16"))
    entries = export_all(config, load_once(config.checkpoint))
    assert [e["precision"] for e in entries] == ["fp32", "fp16"]
    assert entries[0]["status"] == "ok", entries[0]["reason"]
    assert reads == [tiny_run / "best.ckpt"]
