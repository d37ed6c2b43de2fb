"""The run folder: what `sketchsearch train` writes beside its checkpoints, read in one place.

``config.yaml`` is the resolved :class:`TrainConfig` (it repeats the run), ``classes.txt`` the
class names in label order, ``split.txt`` the split file and its fingerprint as ``key: value``
lines. Export reads them to complete an older checkpoint's card and to find the run's own
images; `sketchsearch bench` reads them to find the run's test part. Each is optional: a
checkpoint copied elsewhere has none of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sketchsearch.data.split_file import SplitFile
from sketchsearch.train.config import TrainConfig, read_yaml, write_yaml

CONFIG = "config.yaml"
CLASSES = "classes.txt"
SPLIT = "split.txt"
# The settings a model card records when the checkpoint itself does not say how it was trained.
RECIPE = ("model", "loss", "epochs", "batch_size", "optimizer", "lr", "seed")


@dataclass(frozen=True)
class RunFolder:
    folder: Path
    config: Mapping[str, Any] = field(default_factory=dict)  # config.yaml's settings
    classes: tuple[str, ...] | None = None  # classes.txt, None when there is none
    split: Mapping[str, str] = field(default_factory=dict)  # split.txt's `key: value` lines

    @property
    def split_fingerprint(self) -> str | None:
        return self.split.get("fingerprint")

    def recipe(self) -> dict[str, Any]:
        """The training settings a model card records, as far as config.yaml holds them."""
        return {name: self.config[name] for name in RECIPE if name in self.config}

    def split_and_data(self) -> tuple[Path, Path] | None:
        """The split file and data root config.yaml names, where they are found now; None
        when it names none or they are gone."""
        if not self.config.get("split") or not self.config.get("data"):
            return None
        split = self._locate(Path(str(self.config["split"])))
        data = self._locate(Path(str(self.config["data"])))
        if split is None or data is None or not split.is_file() or not data.is_dir():
            return None
        return split, data

    def _locate(self, path: Path) -> Path | None:
        """A run's config may hold paths relative to where training ran: try the current
        folder, then each folder above the run's."""
        if path.is_absolute() or path.exists():
            return path
        for base in self.folder.resolve().parents:
            if (base / path).exists():
                return base / path
        return None


def read_run_folder(checkpoint: str | os.PathLike[str]) -> RunFolder:
    """The run files beside ``checkpoint`` (each one empty where it is missing)."""
    folder = Path(checkpoint).parent
    config_path, classes_path, split_path = folder / CONFIG, folder / CLASSES, folder / SPLIT
    config = read_yaml(config_path) if config_path.is_file() else {}
    classes = None
    if classes_path.is_file():
        classes = tuple(line for line in classes_path.read_text().splitlines() if line)
    split: dict[str, str] = {}
    if split_path.is_file():
        for line in split_path.read_text().splitlines():
            key, colon, value = line.partition(":")
            if colon:
                split[key.strip()] = value.strip()
    return RunFolder(folder, config, classes, split)


def write_run_folder(config: TrainConfig, split: SplitFile, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(replace(config, resume=False), out / CONFIG)  # repeatable as a new run
    (out / CLASSES).write_text("".join(f"{name}\n" for name in split.categories))
    (out / SPLIT).write_text(
        f"split: {Path(config.split).resolve()}\nfingerprint: {split.fingerprint}\n"
        f"policy: {split.policy}\nseed: {split.seed}\n"
    )
