"""Writing a gallery's vectors to a portable .npz, so a move to another store is a re-load."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sketchsearch.data.strict_json import dumps
from sketchsearch.gallery.results import ExportedVectors


def write_npz(exported: ExportedVectors, path: str | os.PathLike[str]) -> Path:
    """ids, vectors (float32), the metadata columns and the manifest as JSON."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = exported.items
    with target.open("wb") as handle:
        np.savez(
            handle,
            ids=exported.ids,
            vectors=exported.vectors,
            path=np.array([r.path for r in rows], dtype=str),
            label=np.array([r.label or "" for r in rows], dtype=str),
            instance=np.array([r.instance or "" for r in rows], dtype=str),
            sha256=np.array([r.sha256 for r in rows], dtype=str),
            added_at=np.array([r.added_at for r in rows], dtype=str),
            manifest=np.array(dumps(asdict(exported.manifest))),
        )
    return target
