"""benchmarks/cpu_anchors.py: the side-by-side CPU anchors and the limit they are held against."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sketchsearch.benchmarks import cpu_anchors

ZEN3 = "vendor_id\t: AuthenticAMD\ncpu MHz\t\t: 2445.406\nflags\t\t: fpu sse2 avx fma avx2\n"


def test_the_peak_counts_two_fma_units_of_the_vector_width_this_cpu_has() -> None:
    zen3 = cpu_anchors.cpu_peak(2, ZEN3)
    assert zen3.flops_per_cycle == 32
    assert zen3.gflops == pytest.approx(2 * 2.445406 * 32)
    intel = cpu_anchors.cpu_peak(
        4, ZEN3.replace("AuthenticAMD", "GenuineIntel") + "flags : avx512f"
    )
    assert intel.flops_per_cycle == 32  # the first flags line is the one read: no avx512f there
    intel = cpu_anchors.cpu_peak(
        4, "vendor_id : GenuineIntel\ncpu MHz : 3000.0\nflags : avx2 fma avx512f\n"
    )
    assert (intel.flops_per_cycle, intel.gflops) == (64, pytest.approx(4 * 3.0 * 64))
    amd512 = cpu_anchors.cpu_peak(1, ZEN3.replace("avx2", "avx2 avx512f"))
    assert amd512.flops_per_cycle == 32  # Zen 4 runs AVX-512 as two 256-bit halves
    old = cpu_anchors.cpu_peak(1, ZEN3.replace(" fma", ""))
    assert old.flops_per_cycle == 16


def test_hyperthreads_of_one_core_count_once_and_an_unknown_clock_gives_no_limit() -> None:
    smt = ZEN3 + "siblings\t: 4\ncpu cores\t: 2\n"
    assert cpu_anchors.cpu_peak(2, smt).cores == 1  # two vCPUs, one physical core
    assert cpu_anchors.cpu_peak(3, smt).cores == 2
    assert cpu_anchors.cpu_peak(2, ZEN3 + "siblings\t: 2\ncpu cores\t: 2\n").cores == 2
    no_clock = cpu_anchors.cpu_peak(2, "vendor_id : ARM\nflags : neon\n")
    assert no_clock.gflops == 0
    row = {"batch": 1, "backend": "onnxruntime", "p50_ms": 1.0, "images_per_s": 1000.0}
    row |= {"vs_torch": {"median": 0.5, "min": 0.5, "max": 0.5}, "vs_onnxruntime": None}
    row |= {"limit_ms": None, "share_of_peak": None}
    model = {"backbone": "resnet10t", "input_size": 32, "gflops_per_image": 0.01}
    model |= {"rows": [row], "unavailable": {}, "parity_cosine_min": {}}
    peak = {"cores": 2, "ghz": 0.0, "flops_per_cycle": 16, "gflops": 0.0, "basis": "?"}
    text = cpu_anchors.markdown({"peak": peak, "models": [model]})
    assert "| 1.00 | 1000 | 0.50 (0.50–0.50) | — | — | — |" in text


def test_anchors_measure_every_backend_side_by_side_on_the_tiny_model(
    tiny_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "anchors.json"
    argv = ["--model", str(tiny_run / "best.ckpt"), "--batch-sizes", "1,2", "--rounds", "2"]
    argv += ["--iters", "2", "--warmup", "1", "--threads", "1", "--work", str(tmp_path)]
    cpu_anchors.main([*argv, "--json", str(out)])
    results = json.loads(out.read_text())
    (model,) = results["models"]
    assert model["gflops_per_image"] > 0
    backends = {row["backend"] for row in model["rows"]}
    assert {"torch eager", "onnxruntime", "OpenVINO"} <= backends, model["unavailable"]
    assert not model["unavailable"]
    for row in model["rows"]:
        assert len(row["p50_ms_per_round"]) == 2
        assert 0 < row["share_of_peak"] < 1  # nothing runs faster than the CPU's peak
        assert row["limit_ms"] * 1000 == pytest.approx(
            model["gflops_per_image"]
            * 1e9
            * row["batch"]
            / (results["peak"]["gflops"] * 1e9)
            * 1e6,
            rel=1e-2,
        )
    reference = [r for r in model["rows"] if r["backend"] == "torch eager"]
    assert all(r["vs_torch"]["median"] == 1.0 for r in reference)
    # the exported graph and OpenVINO's run of it embed like the checkpoint
    assert min(model["parity_cosine_min"].values()) >= 0.9999
    assert results["environment"]["fingerprint"]
    assert results["command"].startswith("python benchmarks/cpu_anchors.py --model")
