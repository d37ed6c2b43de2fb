"""The service load benchmark runs the real server on the tiny model and reports every case.

Figures are not checked against targets (this machine's timings are noise); that every case is
there, that its figures are positive and ordered, and that error answers and a non-loopback
host are not passed off as results, are.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from sketchsearch.benchmarks import serve_load
from sketchsearch.data.errors import UsageError
from sketchsearch.data.hashing import file_sha256
from sketchsearch.runtime.engines.table import open_engine
from sketchsearch.runtime.gallery_build import build_gallery, folder_sources

VARIANT = "tx_000000000000"


@dataclass(frozen=True)
class Served:
    model: Path
    gallery: Path
    sketches: Path


@pytest.fixture(scope="module")
def served(tiny_onnx: Path, tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Served:
    """A copy of the tiny model (the server may write beside it), its gallery, the sketches."""
    folder = tmp_path_factory.mktemp("serve-load")
    model = Path(shutil.copy(tiny_onnx, folder / "model.onnx"))
    data = Path(yaml.safe_load((tiny_run / "config.yaml").read_text())["data"])
    photos = data / "photo" / VARIANT
    with open_engine(model) as engine:
        build_gallery(engine, folder / "gallery", photos, folder_sources(photos), progress=False)
    return Served(model, folder / "gallery", data / "sketch" / VARIANT)


def base_args(served: Served) -> list[str]:
    return [
        "--engine", str(served.model), "--index", str(served.gallery),
        "--queries", str(served.sketches), "--threads", "1",
    ]  # fmt: skip


def test_every_case_is_reported_with_ordered_positive_figures(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "load.json"
    args = [*base_args(served), "--clients", "1,2", "--requests", "4", "--warmup", "1"]
    args += ["--rounds", "2", "--max-batch", "4"]
    args += ["--drawing", str(served.sketches), "--canvas-px", "64", "--json", str(out)]
    assert serve_load.main(args) == 0
    report = json.loads(out.read_text())
    assert report["rounds"] == report["settings"]["rounds"] == 2
    cases = {(case["setting"], case["clients"]): case for case in report["cases"]}
    assert set(cases) == {
        ("batching", 1), ("batching", 2), ("batch 1", 1), ("batch 1", 2), ("drawing", 1),
    }  # fmt: skip
    for case in cases.values():
        assert case["ok"] == case["completed"] == 8 and case["errors"] == {}
        assert not case["cut_short_by_time_limit"] and case["rounds"] == 2
        assert case["qps_min"] <= case["qps"] <= case["qps_max"] and case["qps_min"] > 0
        assert [r["round"] for r in case["per_round"]] == [0, 1]
        latency = case["latency"]
        assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
        assert case["mean_batch_size"] >= 1 and case["server_ms_p50"]["total"] > 0
    assert cases[("batch 1", 2)]["mean_batch_size"] == 1.0
    assert cases[("batching", 2)]["max_batch"] == 4
    # side by side, the one going first alternating by round and by client count
    first = {
        (r["round"], c["clients"]): c["setting"]
        for c in report["cases"]
        for r in c["per_round"]
        if c["setting"] != "drawing" and r["position"] == 0
    }
    assert first == {(0, 1): "batching", (0, 2): "batch 1", (1, 1): "batch 1", (1, 2): "batching"}
    ratios = {ratio["clients"]: ratio for ratio in report["qps_ratio"]}
    assert set(ratios) == {1, 2}
    for clients, ratio in ratios.items():
        on, off = cases["batching", clients], cases["batch 1", clients]
        assert ratio["per_round"] == [
            round(a / b, 3) for a, b in zip(on["qps_per_round"], off["qps_per_round"], strict=True)
        ]
        assert ratio["min"] <= ratio["median"] <= ratio["max"]
    gain = report["engine_batch_gain"]
    assert gain["batch"] == 4 and gain["threads"] == 1 and len(gain["per_round"]) == 3
    assert gain["min"] <= gain["median"] <= gain["max"] and gain["median"] > 0
    assert report["model"]["sha256_prefix"] == file_sha256(served.model)[:12]
    assert report["environment"]["fingerprint"] and report["cpus"] >= 1
    assert report["command"] and report["date"]
    targets = report["targets"]
    names = [target["name"] for target in targets]
    assert names == [
        "one drawing client p95",
        "batching / batch 1 QPS at 2 clients (median of rounds)",
    ]
    assert targets[1]["value"] == ratios[2]["median"]
    assert targets[1]["engine_batch_gain"] == gain["median"]
    assert targets[1]["reachable_here"] == (gain["median"] >= 1.5)
    printed = capsys.readouterr().out
    assert "| setting | max batch | clients | rounds |" in printed
    assert "| clients | batching / batch 1 QPS, median (min–max) | per round |" in printed
    assert "engine batch gain" in printed
    assert "not the model this target is stated for" in printed  # resnet10t, not efficientnet_b0


def test_a_target_out_of_the_engines_reach_says_so_instead_of_missed() -> None:
    target = {
        "name": "batching / batch 1 QPS at 16 clients (median of rounds)",
        "target": ">= 1.5x",
        "value": 1.1,
        "met": False,
        "range": [0.9, 1.3],
        "per_round": [0.9, 1.1, 1.3],
        "engine_batch_gain": 1.2,
        "reachable_here": False,
        "model": "m",
    }
    line = serve_load.target_line(target)
    assert "not reachable here: the engine itself gains only 1.2x from batching" in line
    assert "MISSED" not in line
    reachable = serve_load.target_line({**target, "reachable_here": True})
    assert ": MISSED; engine batch gain 1.2x; m" in reachable


def test_a_non_loopback_host_is_refused_before_any_server_starts(served: Served) -> None:
    with pytest.raises(UsageError, match="loopback only"):
        serve_load.main([*base_args(served), "--host", "0.0.0.0"])


def test_error_answers_are_counted_never_timed_and_a_time_limit_says_it_cut(
    served: Served,
) -> None:
    good = serve_load.read_queries([served.sketches], "--queries", limit=1)
    broken = serve_load.Query("broken.png", b"\x89PNG\r\n\x1a\n not an image", "image/png")
    config = serve_load.LoadConfig(
        served.model, served.gallery, (), requests=6, warmup=0, threads=1
    )
    with serve_load.running_server(config, 1, 0.0) as server:
        mixed = serve_load.run_case(server, [*good, broken], 2, config)
        endless = replace(config, requests=10**6, time_limit=0.3)
        short = serve_load.run_case(server, good, 1, endless)
    assert mixed["ok"] == 3 and mixed["errors"] == {"422 bad_image": 3}
    assert mixed["completed"] == 6  # QPS counts the 3 answers (wall_s is rounded to ms):
    assert mixed["qps"] * mixed["wall_s"] == pytest.approx(3, rel=0.05)
    assert short["cut_short_by_time_limit"] and 0 < short["completed"] < 10**6
