"""Peak memory of one decode worker on the largest image the pixel limit allows.

Issue 13 §2: peak memory per decode is bounded and published. Each case runs
``preprocess_file`` (read, header checks, decode, resize, crop: what a ``gallery build`` or
``retrieve`` worker thread does per image) in a fresh process, and reports its resident
memory before (VmRSS, with the peak reset) and its peak after (VmHWM): the difference is
what one decode worker adds to a process.
Cases, on a real photo (skimage's astronaut) enlarged to the largest square within
``--max-pixels``:

- ``jpeg``: the runtime path, which decodes large JPEGs at 1/2, 1/4 or 1/8 of their size;
- ``jpeg-full``: the same file decoded at full size (what every JPEG cost before);
- ``png``: 8-bit RGB; PNG has no reduced decoding, nor has any format but JPEG;
- ``png16-rgba``: 16 bits per channel with alpha, the largest decoded form per pixel (8 bytes):
  the bound for every format.

It also measures what the reduced decoding changes in the model input: the mean and largest
|difference| in grey levels against a full decode, on skimage's astronaut, coffee and chelsea
enlarged to ``--photo-side`` pixels on the longer side and JPEG-encoded (quality 95).

    python benchmarks/decode_memory.py [--max-pixels 100000000] [--json out.json]

The images are cached under ``--work`` (generating a 100-megapixel PNG takes a while).

Measured on the 2-core CPU dev machine (OpenCV 5.0.0, 2026-11-30), 10000×10000 images, input
224: a decode worker adds 16 MiB for the JPEG (decoded at 1/4; 580 MiB at full size), 626 MiB
for the 8-bit PNG and 1.6 GiB for the 16-bit RGBA PNG (5.3 GiB before the block-wise
conversion); OpenCV's PNG decoder itself peaks at twice the decoded image.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sketchsearch.benchmarks.machine_info import machine_facts
from sketchsearch.data.imagefile import DEFAULT_MAX_PIXELS, decode_image, read_bytes
from sketchsearch.data.strict_json import dumps
from sketchsearch.runtime.preprocess import (
    PreprocessConfig,
    jpeg_reduction,
    preprocess_array,
    preprocess_bytes,
    preprocess_file,
)

CASES = ("jpeg", "jpeg-full", "png", "png16-rgba")
PHOTOS = ("astronaut", "coffee", "chelsea")
CONFIGS = ((224, 0.875, "bicubic"), (224, 0.875, "bilinear"), (96, 0.9, "bicubic"))
MIB = 1 << 20


def memory_status(field: str) -> int:
    """A ``/proc/self/status`` figure (VmRSS: resident now, VmHWM: peak) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> int:
    """Reset the process's peak RSS to its current RSS (Linux ≥ 4.0), and return it.

    Imports peak higher than a small decode, so without the reset a decode below that
    peak would measure 0; where the reset is refused the figure is ``ru_maxrss`` (an upper
    bound that includes the imports).
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return memory_status("VmRSS")


def enlarged_photo(name: str, side: int, square: bool = False) -> np.ndarray:
    """A skimage photo enlarged (bicubic) to ``side`` pixels on its longer side, or squared."""
    import skimage.data

    rgb = np.ascontiguousarray(getattr(skimage.data, name)())
    scale = side / max(rgb.shape[:2])
    height, width = (side, side) if square else (round(h * scale) for h in rgb.shape[:2])
    return np.asarray(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC))


def write_encoded(path: Path, rgb: np.ndarray, params: list[int]) -> Path:
    """Encode RGB(A) to ``path`` through a temporary name, so a cache is never half-written."""
    code = cv2.COLOR_RGBA2BGRA if rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, buffer = cv2.imencode(path.suffix, cv2.cvtColor(rgb, code), params)
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    staged = path.with_suffix(".part" + path.suffix)
    staged.write_bytes(buffer.tobytes())
    staged.replace(path)
    return path


def largest_images(work: Path, max_pixels: int) -> dict[str, Path]:
    """The largest square astronaut within ``max_pixels``, per case (cached)."""
    side = math.isqrt(max_pixels)
    paths = {
        "jpeg": work / f"astronaut-{side}.jpg",
        "jpeg-full": work / f"astronaut-{side}.jpg",
        "png": work / f"astronaut-{side}.png",
        "png16-rgba": work / f"astronaut-{side}-rgba16.png",
    }
    if not all(p.exists() for p in paths.values()):
        work.mkdir(parents=True, exist_ok=True)
        image = enlarged_photo("astronaut", side, square=True)
        write_encoded(paths["jpeg"], image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        write_encoded(paths["png"], image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        alpha = np.full((side, side, 1), 200, np.uint8)  # 78% opaque: composited on white
        rgba16 = np.dstack([image, alpha]).astype(np.uint16) * 257
        write_encoded(paths["png16-rgba"], rgba16, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return paths


def measure_case(case: str, path: Path, config: PreprocessConfig) -> dict[str, Any]:
    """In the child: one decode, with the peak RSS before and after it."""
    idle = reset_peak_rss()
    start = time.perf_counter()
    if case == "jpeg-full":
        data = read_bytes(path)
        out = preprocess_array(decode_image(data, path, config.max_pixels), config)
    else:
        out = preprocess_file(path, config)
    seconds = time.perf_counter() - start
    peak = memory_status("VmHWM")
    return {
        "case": case,
        "file_mib": path.stat().st_size / MIB,
        "output_shape": list(out.shape),
        "idle_rss_mib": idle / MIB,
        "peak_rss_mib": peak / MIB,
        "decode_worker_mib": (peak - idle) / MIB,
        "seconds": seconds,
    }


def run_case(case: str, path: Path, config: PreprocessConfig) -> dict[str, Any]:
    """One case in a fresh interpreter: peak RSS is per process and never goes down."""
    command = [sys.executable, "-m", "sketchsearch.benchmarks.decode_memory", "--child", case]
    command += [str(path), "--input-size", str(config.input_size)]
    command += ["--max-pixels", str(config.max_pixels)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{case} failed: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def reduced_vs_full(work: Path, side: int) -> list[dict[str, Any]]:
    """Model input from the reduced decode against the full decode, per photo and config."""
    rows = []
    for name in PHOTOS:
        path = work / f"{name}-{side}.jpg"
        if not path.exists():
            work.mkdir(parents=True, exist_ok=True)
            write_encoded(path, enlarged_photo(name, side), [cv2.IMWRITE_JPEG_QUALITY, 95])
        data = path.read_bytes()
        full = decode_image(data, path)
        for size, crop, interpolation in CONFIGS:
            config = PreprocessConfig(size, crop, interpolation)
            reduced = preprocess_bytes(data, path, config).astype(np.int16)
            difference = np.abs(reduced - preprocess_array(full, config).astype(np.int16))
            rows.append(
                {
                    "photo": name,
                    "size": list(full.shape[:2]),
                    "config": f"{size}/{crop}/{interpolation}",
                    "reduce": jpeg_reduction("JPEG", min(full.shape[:2]), config),
                    "mean_abs_diff": float(difference.mean()),
                    "max_abs_diff": int(difference.max()),
                }
            )
    return rows


def table(report: dict[str, Any]) -> str:
    lines = [
        f"decode worker memory, {report['image_pixels']} px images, input {report['input_size']}",
        f"{'case':<10} {'file MiB':>9} {'idle MiB':>9} {'peak MiB':>9} {'worker MiB':>11} {'s':>6}",
    ]
    for row in report["cases"]:
        lines.append(
            f"{row['case']:<10} {row['file_mib']:9.1f} {row['idle_rss_mib']:9.1f} "
            f"{row['peak_rss_mib']:9.1f} {row['decode_worker_mib']:11.1f} {row['seconds']:6.2f}"
        )
    lines.append("reduced JPEG decode vs full decode (grey levels):")
    for row in report["reduced_vs_full"]:
        lines.append(
            f"  {row['photo']:<10} {row['config']:<18} 1/{row['reduce']}: "
            f"mean {row['mean_abs_diff']:.2f}, max {row['max_abs_diff']}"
        )
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--photo-side", type=int, default=4000)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "decode-mem")
    parser.add_argument("--json", type=Path, help="default: WORK/decode_memory.json")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    config = PreprocessConfig(args.input_size, max_pixels=args.max_pixels)
    if args.child:
        print(dumps(measure_case(args.child[0], Path(args.child[1]), config)))
        return 0
    paths = largest_images(args.work, args.max_pixels)
    side = math.isqrt(args.max_pixels)
    report = {
        "image_pixels": side * side,
        "input_size": args.input_size,
        "max_file_bytes": os.environ.get("SKETCHSEARCH_MAX_IMAGE_BYTES", "default"),
        "machine": machine_facts(opencv=cv2.__version__, numpy=np.__version__),
        "cases": [run_case(case, paths[case], config) for case in CASES],
        "reduced_vs_full": reduced_vs_full(args.work, args.photo_side),
    }
    out = args.json or args.work / "decode_memory.json"
    out.write_text(dumps(report, indent=1) + "\n")
    print(table(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
