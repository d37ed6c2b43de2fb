"""The real images export calibrates and verifies on: a folder, a split part, or the run's own.

Both domains go through the encoder, so both are drawn from: sketches and photos alike.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from pathlib import Path

from sketchsearch.data.errors import UsageError
from sketchsearch.data.imagefile import image_files
from sketchsearch.data.split_spec import parse_split_spec
from sketchsearch.train.run_folder import RunFolder

RECOMMENDED_CALIBRATION = 300


@dataclass(frozen=True)
class ExportImages:
    calibration: tuple[Path, ...]
    verification: tuple[Path, ...]
    source: str  # for the report: where they came from


def folder_images(folder: Path) -> list[Path]:
    return image_files(folder, "--calib-images")


def resolve_images(
    run: RunFolder,
    calib_images: Path | None,
    calib_split: str | None,
    data_root: Path | None,
    calib_count: int,
    verify_count: int,
    seed: int = 0,
) -> ExportImages | None:
    """Calibration images (a shuffled sample) and a disjoint verification sample if possible.

    Without a source, the training run's own split (``run``: the files beside the checkpoint)
    is used: calibration from its train part, verification from its val part. None when no
    images can be found at all.
    """
    rng = random.Random(seed)
    if calib_images is not None:
        pool = folder_images(calib_images)
        rng.shuffle(pool)
        verification = pool[calib_count : calib_count + verify_count] or pool[:verify_count]
        return ExportImages(tuple(pool[:calib_count]), tuple(verification), str(calib_images))
    if calib_split is None:
        own = run.split_and_data()
        if own is None:
            return None
        calib_split, data_root = str(own[0]), own[1]
    calibration_part = parse_split_spec(calib_split, data_root, default_part="train")
    calibration = [calibration_part.path(item) for item in calibration_part.items()]
    rng.shuffle(calibration)
    spec_path = calib_split.rsplit(":", 1)[0] if ":" in Path(calib_split).name else calib_split
    other = "val" if calibration_part.part != "val" else "test"
    verification = [
        calibration_part.root / item.path
        for item in parse_split_spec(f"{spec_path}:{other}", data_root).items()
    ]
    rng.shuffle(verification)
    return ExportImages(
        tuple(calibration[:calib_count]),
        tuple(verification[:verify_count] or calibration[:verify_count]),
        f"{spec_path} ({calibration_part.part} for calibration, {other} for verification)",
    )


def check_calibration_count(count: int, batch_size: int) -> None:
    if count < batch_size:
        raise UsageError(
            f"int8 calibration needs at least one batch of images ({batch_size}); got {count}: "
            f"raise --calib-count or pass more with --calib-images DIR or --calib-split SPLIT (≥ "
            f"{RECOMMENDED_CALIBRATION} recommended)"
        )
    if count < RECOMMENDED_CALIBRATION:
        warnings.warn(
            f"calibrating int8 on {count} images; ≥ {RECOMMENDED_CALIBRATION} from both domains "
            "give steadier ranges",
            stacklevel=2,
        )
