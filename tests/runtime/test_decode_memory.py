"""Large JPEGs are decoded reduced (1/2, 1/4, 1/8) and still give the full decode's input.

Issue 13 §2: peak memory per decode is bounded and published. The reduction is only taken
while the reduced image's shorter side stays at least twice the resize target, so the usual
area resize still does the shrinking; the benchmark publishes the memory figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from sketchsearch.benchmarks import decode_memory
from sketchsearch.data.imagefile import decode_image, read_image
from sketchsearch.runtime.preprocess import (
    PreprocessConfig,
    jpeg_reduction,
    preprocess_array,
    preprocess_file,
)


def enlarged_jpeg(path: Path, name: str, height: int, width: int) -> Path:
    rgb = np.ascontiguousarray(getattr(skimage.data, name)())
    big = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(buffer.tobytes())
    return path


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


@pytest.mark.parametrize(
    ("fmt", "short", "config", "expected"),
    [
        ("JPEG", 4000, PreprocessConfig(224), 4),  # 4000 // 8 = 500 < 2 × 256; 1000 ≥ 512
        ("JPEG", 4096, PreprocessConfig(224), 8),
        ("JPEG", 1024, PreprocessConfig(224), 2),
        ("JPEG", 1023, PreprocessConfig(224), 1),
        ("JPEG", 4000, PreprocessConfig(224, interpolation="bilinear"), 4),
        ("JPEG", 4000, PreprocessConfig(224, interpolation="nearest"), 1),  # picks pixels
        ("PNG", 4000, PreprocessConfig(224), 1),  # no reduced decoding
    ],
)
def test_the_reduction_keeps_twice_the_scale_size(
    fmt: str, short: int, config: PreprocessConfig, expected: int
) -> None:
    assert jpeg_reduction(fmt, short, config) == expected


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_a_large_jpeg_gives_the_full_decodes_input(tmp_path: Path, interpolation: str) -> None:
    # Odd sides: the reduced image's last row and column are partly padding.
    path = enlarged_jpeg(tmp_path / "coffee.jpg", "coffee", 1601, 2399)
    config = PreprocessConfig(96, 0.9, interpolation)
    assert jpeg_reduction("JPEG", 1601, config) == 4
    full = preprocess_array(read_image(path), config)
    reduced = preprocess_file(path, config)
    assert reduced.shape == full.shape == (96, 96, 3)
    assert 0.0 < mean_abs_diff(reduced, full) < 0.5  # measured: 0.29 (bicubic), 0.21 (bilinear)
    assert decode_image(path.read_bytes(), path, reduce=4).shape == (401, 600, 3)


def test_a_reduced_jpeg_keeps_its_exif_orientation(tmp_path: Path) -> None:
    from PIL import Image

    rgb = np.ascontiguousarray(skimage.data.chelsea())
    wide = cv2.resize(rgb, (2401, 1599), interpolation=cv2.INTER_CUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise: decoded 2401 high and 1599 wide
    Image.fromarray(wide).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    config = PreprocessConfig(64, 1.0)
    assert jpeg_reduction("JPEG", 1599, config) == 8
    full = read_image(tmp_path / "turned.jpg")
    assert full.shape == (2401, 1599, 3)
    reduced = preprocess_file(tmp_path / "turned.jpg", config)
    assert mean_abs_diff(reduced, preprocess_array(full, config)) < 1.0


def test_the_decode_memory_benchmark_runs_on_a_small_limit(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    # 16 MP (4000²): large enough that allocator noise (up to ~10 MiB seen in a fresh clone's
    # run) cannot blur the gap between a reduced and a full decode
    args = ["--max-pixels", "16000000", "--input-size", "32", "--photo-side", "1200"]
    assert decode_memory.main([*args, "--work", str(tmp_path), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    cases = {row["case"]: row for row in report["cases"]}
    assert list(cases) == ["jpeg", "jpeg-full", "png", "png16-rgba"]
    assert report["image_pixels"] == 16_000_000
    assert all(row["output_shape"] == [32, 32, 3] for row in cases.values())
    # a 4000² image is 45.8 MiB of RGB: the full decodes hold it, the 1/8 decode does not
    assert cases["jpeg"]["decode_worker_mib"] < 30 < 45 < cases["jpeg-full"]["decode_worker_mib"]
    assert cases["png"]["decode_worker_mib"] > 45
    # 16-bit RGBA is 122 MiB decoded and OpenCV's PNG decoder peaks at twice that; the
    # conversion to 8-bit RGB works in blocks and adds little (whole-image temporaries: 3.5×)
    assert 122 < cases["png16-rgba"]["decode_worker_mib"] < 2 * 122 + 40
    assert {row["photo"] for row in report["reduced_vs_full"]} == {"astronaut", "coffee", "chelsea"}
    assert max(row["mean_abs_diff"] for row in report["reduced_vs_full"]) < 1.0
