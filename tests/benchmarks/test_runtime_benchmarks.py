"""The runtime benchmarks run end to end in a tiny mode and write the JSON they promise.

Figures are not checked (this machine's timings are noise); the keys, the torch-free
`retrieve`, and the preprocessing parity of the tiny trained model are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sketchsearch.benchmarks import gallery_throughput, preprocess_vs_timm, retrieve_startup
from sketchsearch.export.pipeline import ExportOptions, export_onnx

VARIANT = "tx_000000000000"


@pytest.fixture(scope="module")
def onnx_model(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-model") / "model.onnx"
    options = ExportOptions(checkpoint=tiny_run / "best.ckpt", output=out, verify=False)
    (result,) = export_onnx(options)
    return result.path


@pytest.fixture(scope="module")
def data_root(tiny_run: Path) -> Path:
    return Path(yaml.safe_load((tiny_run / "config.yaml").read_text())["data"])


def test_retrieve_startup_writes_timings_and_proves_no_torch(
    onnx_model: Path, data_root: Path, tmp_path: Path
) -> None:
    query = sorted((data_root / "sketch" / VARIANT).rglob("*.png"))[0]
    out = tmp_path / "startup.json"
    args = ["--engine", str(onnx_model), "--images", str(data_root / "photo" / VARIANT)]
    args += ["--query", str(query), "--work", str(tmp_path / "work"), "--json", str(out)]
    assert retrieve_startup.main([*args, "--items", "200", "--repeats", "1"]) == 0
    report = json.loads(out.read_text())
    assert report["torch_imported"] is False and report["imports"]["blocked_imported"] == []
    assert report["gallery"]["items"] == 200 and report["gallery"]["real_images_embedded"] > 0
    assert report["wall"]["median_s"] > 0 and len(report["wall"]["runs_s"]) == 1
    assert set(report["retrieve_json_timings_ms"]) == {"decode", "embed", "search"}
    assert "import onnxruntime" in report["stages_s"]
    assert "open engine (onnxruntime session)" in report["stages_s"]
    assert {"target_s", "meets_target", "first_run_s", "environment"} <= report.keys()
    assert "open retriever (warms the gallery)" in report["stages_s"]
    search = report["search_ms_in_one_process"]
    assert set(search) == {"warm_up_at_open", "first", "steady"}
    assert all(value > 0 for value in search.values())


def test_gallery_throughput_reports_both_rates_and_their_ratio(
    onnx_model: Path, data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "throughput.json"
    args = ["--engine", str(onnx_model), "--images", str(data_root / "photo" / VARIANT)]
    args += ["--count", "12", "--batch-size", "4", "--repeats", "1", "--workers", "2"]
    assert gallery_throughput.main([*args, "--work", str(tmp_path), "--json", str(out)]) == 0
    (case,) = json.loads(out.read_text())["cases"]
    assert case["engine_ips_median"] > 0 and case["build_gallery_ips_median"] > 0
    assert case["ratio_median"] == case["ratios"][0] > 0
    assert case["images"]["count"] == 12
    assert (case["batch_size"], case["workers"]) == (4, 2)
    assert {"engine_slowdown_in_pipeline", "cpu_bound_ratio", "decode_alone_ms_per_image"} <= (
        case.keys()
    )


def test_gallery_throughput_measures_cases_side_by_side_with_build_gallerys_sizes(
    onnx_model: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sketchsearch.runtime.pipeline import pipeline_sizes

    out = tmp_path / "throughput.json"
    photos = data_root / "photo" / VARIANT
    args = ["--case", f"{onnx_model},{photos},10", "--case", f"{onnx_model},synth40,6"]
    args += ["--repeats", "2", "--work", str(tmp_path), "--json", str(out)]
    assert gallery_throughput.main(args) == 0
    report = json.loads(out.read_text())
    first, second = report["cases"]
    assert (first["images"]["count"], second["images"]["count"]) == (10, 6)
    assert second["source_px"] == [40, 40] and len(first["ratios"]) == 2
    for case in report["cases"]:
        sizes = pipeline_sizes(case["input_px"], case["images"]["count"])
        assert (case["batch_size"], case["workers"]) == (sizes.batch_size, sizes.workers)
        assert case["cpu_ms_per_image"]["build_gallery"] > 0
    assert report["environment"]["cores"] and {"date", "command"} <= report.keys()
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2  # header, rule, one row per case


def test_preprocess_matches_timm_on_the_tiny_model(
    tiny_run: Path, onnx_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "parity.json"
    args = ["--checkpoint", str(tiny_run / "best.ckpt"), "--engine", str(onnx_model)]
    args += ["--untrained", "resnet10t@32", "--images", "3", "--json", str(out)]
    assert preprocess_vs_timm.main(args) == 0
    report = json.loads(out.read_text())
    trained, *untrained = report["models"]
    assert len(untrained) == 2  # as initialised, and with BatchNorm statistics of the images
    assert trained["images"] == 3 and trained["timm_config_matches_ours"]
    assert trained["cosine_vs_timm"]["min"] >= 0.999
    assert trained["onnx_cosine_vs_timm"]["min"] >= 0.999
    assert set(trained["per_image"]) == {"astronaut", "coffee", "chelsea"}
    for model in report["models"]:
        assert {"baseline_naive_cv2_resize_vs_timm", "pixel_mean_abs_diff"} <= model.keys()


def test_int8_schemes_shows_the_old_scheme_breaks_tensorrt_rules_and_the_new_one_does_not(
    tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sketchsearch.benchmarks import int8_schemes

    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    args = ["--checkpoint", str(tiny_run / "best.ckpt"), "--data", config["data"]]
    int8_schemes.main([*args, "--calib-split", f"{config['split']}:train"])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    rows = [line.split("|")[1:-1] for line in table[2:]]
    assert [(row[0].split(" (")[0].strip(), row[1].strip()) for row in rows] == [
        ("before issue 18", "minmax"),
        ("before issue 18", "percentile"),
        ("now", "minmax"),
        ("now", "percentile"),
    ]
    errors = [int(row[5]) for row in rows]
    assert errors[0] > 0 and errors[1] > 0 and errors[2:] == [0, 0]


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The model files of the engines closed while the test runs."""
    from sketchsearch.runtime.engines.lifecycle import EngineLifecycle

    paths: list[Path] = []
    close = EngineLifecycle.close

    def spy(engine: EngineLifecycle) -> None:
        paths.append(engine.path)
        close(engine)

    monkeypatch.setattr(EngineLifecycle, "close", spy)
    return paths


def test_the_gallery_throughput_sweep_closes_its_engines(
    onnx_model: Path, data_root: Path, closed: list[Path]
) -> None:
    from sketchsearch.runtime.gallery_build import folder_sources

    sources = folder_sources(data_root / "photo" / VARIANT)[:4]
    rows = gallery_throughput.sweep(onnx_model, sources, batch_size=2, repeats=1)
    assert len(rows) == 7 and all(row["ratio_vs_own_engine"] > 0 for row in rows)
    assert closed == [onnx_model] * 3  # default, 1 thread, no spinning


def test_the_quality_benchmark_closes_each_model_it_embeds_with(
    onnx_model: Path, data_root: Path, tmp_path: Path, closed: list[Path]
) -> None:
    from sketchsearch.benchmarks.real.quality_runner import embed_model
    from sketchsearch.data.errors import UsageError

    image = sorted((data_root / "photo" / VARIANT).rglob("*.jpg"))[0]
    assert embed_model(onnx_model, [image], threads=1).shape[0] == 1
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(UsageError, match="failed to embed"):
        embed_model(onnx_model, [tmp_path / "broken.png"], threads=1)
    assert closed == [onnx_model, onnx_model]
