"""How long `data split` takes on a Sketchy-Extended-sized tree (placeholder files).

Scanning and splitting read directory entries only, so empty placeholder files measure the
real cost: 125 categories, 85,000 photos and 75,000 sketches (6 sketches for each of the
first 100 photos of every category, as Sketchy pairs its 12,500 photos; the other photos are
unpaired, like Sketchy Extended's).

    python benchmarks/data_split.py [--json out.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sketchsearch.benchmarks.machine_info import machine_facts
from sketchsearch.data.layouts import SKETCHY_DEFAULT_VARIANT, scan
from sketchsearch.data.split_file import build_split_file, load_split, save_split
from sketchsearch.data.splits import SplitConfig, make_split
from sketchsearch.data.strict_json import dumps

CATEGORIES, PHOTOS, PAIRED_PHOTOS, SKETCHES_PER_PHOTO = 125, 680, 100, 6


def make_placeholder_tree(root: Path) -> tuple[int, int]:
    photos = sketches = 0
    for c in range(CATEGORIES):
        category = f"category-{c:03d}_name"
        photo_dir = root / "photo" / SKETCHY_DEFAULT_VARIANT / category
        sketch_dir = root / "sketch" / SKETCHY_DEFAULT_VARIANT / category
        photo_dir.mkdir(parents=True)
        sketch_dir.mkdir(parents=True)
        for p in range(PHOTOS):
            (photo_dir / f"n{c:05d}_{p:05d}.jpg").touch()
            photos += 1
            if p < PAIRED_PHOTOS:
                for n in range(1, SKETCHES_PER_PHOTO + 1):
                    (sketch_dir / f"n{c:05d}_{p:05d}-{n}.png").touch()
                    sketches += 1
    return photos, sketches


def timed(function, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def measure(root: Path, out_dir: Path) -> dict[str, object]:
    (photos, sketches), create_s = timed(make_placeholder_tree, root)
    collection, scan_s = timed(scan, root)
    config = SplitConfig(policy="soft", seed=0)
    result, split_s = timed(make_split, collection, config)
    split_file, build_s = timed(build_split_file, collection, config, result)
    _, save_s = timed(save_split, split_file, out_dir / "split.json")
    _, load_s = timed(load_split, out_dir / "split.json", root)
    hard_config = SplitConfig(policy="hard", seed=0)
    _, hard_s = timed(make_split, collection, hard_config)
    # The command as users run it, in its own process (interpreter start-up included).
    command = [sys.executable, "-m", "sketchsearch.cli", "data", "split", str(root)]
    command += ["--out", str(out_dir / "cli.json")]
    done, cli_s = timed(subprocess.run, command, stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"sketchsearch data split failed with exit code {done.returncode}")
    return {
        "photos": photos,
        "sketches": sketches,
        "categories": len(collection.categories),
        "warnings": len(collection.warnings),
        "seconds": {
            "create_placeholders": round(create_s, 3),
            "scan": round(scan_s, 3),
            "split_soft": round(split_s, 3),
            "split_hard": round(hard_s, 3),
            "build_split_file": round(build_s, 3),
            "save_json": round(save_s, 3),
            "load_and_check_fingerprint": round(load_s, 3),
            "data_split_total": round(scan_s + split_s + build_s + save_s, 3),
            "cli_data_split": round(cli_s, 3),
        },
        "split_json_mb": round((out_dir / "split.json").stat().st_size / 1e6, 2),
        "machine": machine_facts(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(Path(tmp) / "sketchy", Path(tmp))
    text = dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
