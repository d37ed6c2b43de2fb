"""The gallery manifest: what was indexed, with which model and parameters, in which files.

It is written last when a gallery is saved, so it is the commit point: the files it names,
with the sizes it records, are the gallery. Readers trust nothing the manifest does not vouch
for.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sketchsearch.data.file_format import FileFormat
from sketchsearch.gallery.errors import GalleryCorruptError

GALLERY_FORMAT = "sketchsearch-gallery"
GALLERY_FORMAT_VERSION = 1
MANIFEST = FileFormat(
    GALLERY_FORMAT,
    GALLERY_FORMAT_VERSION,
    "gallery manifest",
    GalleryCorruptError,
    json_message="not valid JSON ({msg})",
    version_message=(
        "gallery format version {found!r}; this version of sketchsearch reads version {version}"
    ),
)


@dataclass(frozen=True)
class ModelRef:
    """The identity of the model that made the vectors.

    ``family`` names the weights (for an exported model, its checkpoint's SHA-256): vectors of
    one family are comparable whatever the precision they were computed at. ``summary`` is the
    model card's summary, stored as given; the gallery only compares ``family`` and ``dim``.
    """

    family: str
    name: str
    dim: int
    precision: str = "fp32"
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: object, source: str) -> ModelRef:
        if not isinstance(raw, dict):
            raise GalleryCorruptError(f"{source}: model must be an object")
        MANIFEST.check_keys(raw, cls, f"{source}: model")
        for name in ("family", "name", "precision"):
            if name in raw and not (isinstance(raw[name], str) and raw[name]):
                raise GalleryCorruptError(f"{source}: model.{name} must be a non-empty string")
        _check_int(raw, "dim", 1, f"{source}: model")
        if not isinstance(raw.get("summary", {}), dict):
            raise GalleryCorruptError(f"{source}: model.summary must be an object")
        return cls(**raw)

    def describe(self) -> str:
        return f"{self.name} ({self.precision}, family {self.family[:12]})"


_NUMBERS = ("value", "target_fpr", "tpr", "auc")


@dataclass(frozen=True)
class MatchThreshold:
    """The recommended "no confident match" score: results scoring below ``value`` are not
    trusted (a pair with score >= value is a match).

    Recorded with where it came from, because a threshold is only as good as the pairs it was
    measured on: ``target_fpr`` is the false-positive rate it was chosen for, ``tpr`` the
    true-positive rate it kept, ``auc`` the ROC's area, ``source`` the measurement.
    """

    value: float
    target_fpr: float
    tpr: float
    auc: float
    source: str
    created_at: str

    @classmethod
    def from_dict(cls, raw: object, source: str) -> MatchThreshold:
        if not isinstance(raw, dict):
            raise GalleryCorruptError(f"{source}: threshold must be an object or absent")
        MANIFEST.check_keys(raw, cls, f"{source}: threshold")
        for name in _NUMBERS:
            value = raw[name]
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if not is_number or not math.isfinite(value):
                raise GalleryCorruptError(f"{source}: threshold.{name} must be a finite number")
            if name != "value" and not 0.0 <= value <= 1.0:
                raise GalleryCorruptError(f"{source}: threshold.{name} {value} is not a rate")
        for name in ("source", "created_at"):
            if not isinstance(raw[name], str):
                raise GalleryCorruptError(f"{source}: threshold.{name} must be a string")
        return cls(
            value=float(raw["value"]),
            target_fpr=float(raw["target_fpr"]),
            tpr=float(raw["tpr"]),
            auc=float(raw["auc"]),
            source=raw["source"],
            created_at=raw["created_at"],
        )

    def describe(self) -> str:
        return (
            f"score >= {self.value:.4f} (FPR <= {self.target_fpr:g}, TPR {self.tpr:.3f}, "
            f"AUC {self.auc:.4f}; {self.source}, {self.created_at})"
        )


SOURCE_KINDS = ("split", "folder", "mixed")


@dataclass(frozen=True)
class GallerySource:
    """What the indexed images are, so that evaluation can refuse a gallery of the wrong kind.

    A gallery built from a split records the split's fingerprint, its part and the domain it
    indexed; one built from a folder has ``domain`` None (unknown: nothing says whether the
    files are photos or sketches). Adding files to a split-built gallery makes it ``mixed``:
    the added files' domain is unknown, so the whole gallery's is too.
    """

    kind: str
    domain: str | None = None
    split_fingerprint: str | None = None
    part: str | None = None
    split_file: str | None = None  # as it was given to `gallery build`, for messages only

    @classmethod
    def from_dict(cls, raw: object, source: str) -> GallerySource:
        if not isinstance(raw, dict):
            raise GalleryCorruptError(f"{source}: source must be an object or absent")
        MANIFEST.check_keys(raw, cls, f"{source}: source")
        if raw["kind"] not in SOURCE_KINDS:
            raise GalleryCorruptError(
                f"{source}: source.kind {raw['kind']!r} is not one of {SOURCE_KINDS}"
            )
        for name in ("domain", "split_fingerprint", "part", "split_file"):
            value = raw.get(name)
            if value is not None and not (isinstance(value, str) and value):
                raise GalleryCorruptError(f"{source}: source.{name} must be a string or null")
        return cls(**raw)

    def describe(self) -> str:
        if self.kind == "folder":
            return "a folder of images (domain unknown)"
        where = f"{self.split_file or 'split'}:{self.part} (fingerprint {self.split_fingerprint})"
        if self.kind == "mixed":
            return f"{where}, plus files added later (domain unknown)"
        return f"the {self.domain} images of {where}"


@dataclass(frozen=True)
class GalleryManifest:
    format: str
    format_version: int
    generation: int  # +1 at every commit; also stored inside items.sqlite
    model: ModelRef
    dim: int
    space: str
    M: int
    ef_construction: int
    ef: int  # the default search ef: hnswlib does not persist it
    live: int
    deleted: int
    max_elements: int
    root: str | None  # item paths are relative to this folder
    created_at: str
    updated_at: str
    files: dict[str, int]  # file name -> size in bytes, checked on open
    # Optional, and left out of the file while unset, so that galleries without a threshold
    # stay readable by versions that predate it.
    threshold: MatchThreshold | None = None
    # What the images are (None: built before sources were recorded, so unknown).
    source: GallerySource | None = None

    def to_json(self) -> str:
        raw = asdict(self)
        for optional in ("threshold", "source"):
            if raw[optional] is None:
                del raw[optional]
        return json.dumps(raw, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> GalleryManifest:
        raw = MANIFEST.load(text, cls, source)
        _check_types(raw, source)
        model = ModelRef.from_dict(raw["model"], source)
        if model.dim != raw["dim"]:
            raise GalleryCorruptError(
                f"{source}: model.dim {model.dim} differs from dim {raw['dim']}"
            )
        threshold = raw.get("threshold")
        if threshold is not None:
            threshold = MatchThreshold.from_dict(threshold, source)
        origin = raw.get("source")
        if origin is not None:
            origin = GallerySource.from_dict(origin, source)
        return cls(**{**raw, "model": model, "threshold": threshold, "source": origin})

    def committed(self, **changes: Any) -> GalleryManifest:
        """The manifest of the next generation."""
        return replace(self, generation=self.generation + 1, updated_at=now(), **changes)


_MINIMUMS = {
    "generation": 0,
    "dim": 1,
    "M": 2,
    "ef_construction": 1,
    "ef": 1,
    "live": 0,
    "deleted": 0,
    "max_elements": 0,
}


def _check_int(raw: dict[str, Any], name: str, minimum: int, source: str) -> None:
    value = raw.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise GalleryCorruptError(f"{source}: {name} must be an integer ≥ {minimum}, not {value!r}")


def _check_types(raw: dict[str, Any], source: str) -> None:
    """Field types and ranges: a hand-edited manifest must fail here, not inside hnswlib."""
    from sketchsearch.gallery.scores import SPACES

    for name, minimum in _MINIMUMS.items():
        _check_int(raw, name, minimum, source)
    if raw["space"] not in SPACES:
        raise GalleryCorruptError(f"{source}: space {raw['space']!r} is not one of {SPACES}")
    for name in ("created_at", "updated_at"):
        if not isinstance(raw[name], str):
            raise GalleryCorruptError(f"{source}: {name} must be a string")
    if raw["root"] is not None and not isinstance(raw["root"], str):
        raise GalleryCorruptError(f"{source}: root must be a string or null")
    files = raw["files"]
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in files.items()
    ):
        raise GalleryCorruptError(f"{source}: files must map file names to sizes in bytes")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
