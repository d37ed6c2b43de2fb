"""Fixtures shared by the benchmark tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="module")
def split_args(tiny_run: Path) -> list[str]:
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    return ["--split", f"{config['split']}:test", "--data", str(config["data"])]
