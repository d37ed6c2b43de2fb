"""The run folder: what `sketchsearch train` writes beside its checkpoints, read in one place.

``config.yaml`` is the resolved :class:`TrainConfig` (it repeats the run), ``classes.txt`` the
class names in label order, ``split.txt`` the split file and its fingerprint as ``key: value``
lines. Export reads them to complete an older checkpoint's card and to find the run's own
images; `sketchsearch bench` reads them to find the run's test part. Each is optional: a
checkpoint copied elsewhere has none of them.

Each file is read when it is first asked for, and at most once: a checkpoint that says how it
was trained (its ``run_info``) never has its folder read, and export only looks for the run's
split when no images were given. ``config.yaml`` is read tolerantly, as a hint: a file that
does not hold ``setting: value`` lines is treated as absent, never as an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from sketchsearch.data.split_file import SplitFile
from sketchsearch.train.config import TrainConfig, write_yaml

CONFIG = "config.yaml"
CLASSES = "classes.txt"
SPLIT = "split.txt"
# The settings a model card records when the checkpoint itself does not say how it was trained.
RECIPE = ("model", "loss", "epochs", "batch_size", "optimizer", "lr", "seed")


@dataclass(frozen=True)
class RunFolder:
    """The run files beside ``checkpoint`` (which need not exist), each read on first use."""

    checkpoint: Path

    @property
    def folder(self) -> Path:
        return self.checkpoint.parent

    @cached_property
    def config(self) -> Mapping[str, Any]:
        """config.yaml's settings, keys as written; empty when there is no such file or it is
        not YAML holding a mapping (a hint that cannot be read is no hint, not an error)."""
        path = self.folder / CONFIG
        if not path.is_file():
            return {}
        import yaml

        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            return {}
        return raw if isinstance(raw, dict) else {}

    @cached_property
    def classes(self) -> tuple[str, ...] | None:
        """classes.txt, None when there is none."""
        path = self.folder / CLASSES
        if not path.is_file():
            return None
        return tuple(line for line in path.read_text().splitlines() if line)

    @cached_property
    def split(self) -> Mapping[str, str]:
        """split.txt's ``key: value`` lines (a line without a colon is skipped)."""
        path = self.folder / SPLIT
        found: dict[str, str] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                key, colon, value = line.partition(":")
                if colon:
                    found[key] = value.strip()
        return found

    @property
    def split_fingerprint(self) -> str | None:
        return self.split.get("fingerprint")

    def recipe(self) -> dict[str, Any]:
        """The training settings a model card records, as far as config.yaml holds them."""
        return {name: self.config[name] for name in RECIPE if name in self.config}

    def named_split(self) -> tuple[str, str] | None:
        """The split file and data root config.yaml names, as written there (they may be
        relative, or gone); None when it does not name both."""
        if not self.config.get("split") or not self.config.get("data"):
            return None
        return str(self.config["split"]), str(self.config["data"])

    def split_and_data(self) -> tuple[Path, Path] | None:
        """The split file and data root config.yaml names, where they are found now; None
        when it names none or they are gone."""
        named = self.named_split()
        if named is None:
            return None
        split, data = self._locate(Path(named[0])), self._locate(Path(named[1]))
        if split is None or data is None or not split.is_file() or not data.is_dir():
            return None
        return split, data

    def _locate(self, path: Path) -> Path | None:
        """A run's config may hold paths relative to where training ran: try the current
        folder, then each folder above the run's."""
        if path.is_absolute() or path.exists():
            return path
        for base in self.checkpoint.resolve().parents[1:]:
            if (base / path).exists():
                return base / path
        return None


def read_run_folder(checkpoint: str | os.PathLike[str]) -> RunFolder:
    """The run files beside ``checkpoint``; nothing is read until a file is asked for."""
    return RunFolder(Path(checkpoint))


def write_run_folder(config: TrainConfig, split: SplitFile, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(replace(config, resume=False), out / CONFIG)  # repeatable as a new run
    (out / CLASSES).write_text("".join(f"{name}\n" for name in split.categories))
    (out / SPLIT).write_text(
        f"split: {Path(config.split).resolve()}\nfingerprint: {split.fingerprint}\n"
        f"policy: {split.policy}\nseed: {split.seed}\n"
    )
