"""The gallery manifest: what was indexed, with which model and parameters, in which files.

It is written last when a gallery is saved, so it is the commit point: the files it names,
with the sizes and SHA-256 digests it records, are the gallery. Readers trust nothing the
manifest does not vouch for, and a damaged manifest (invalid UTF-8, nesting deeper than the
parser's recursion limit, numbers beyond 64 bits) is a GalleryCorruptError like any other.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sketchsearch.data.file_format import FileFormat
from sketchsearch.data.strict_json import dumps
from sketchsearch.gallery.errors import GalleryCorruptError

GALLERY_FORMAT = "sketchsearch-gallery"
# 2: files record {size, sha256}; optional source. Version 1 ({name: size}) is still read and
# is written as 2 at the next commit.
GALLERY_FORMAT_VERSION = 2
MANIFEST = FileFormat(
    GALLERY_FORMAT,
    GALLERY_FORMAT_VERSION,
    "gallery manifest",
    GalleryCorruptError,
    also_reads=(1,),
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
            if not is_number or not _finite(value):
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
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class FileRecord:
    """One data file of a generation as the commit wrote it: its size and SHA-256.

    ``sha256`` is None for galleries written before digests were recorded (their manifests
    map names to bare sizes, which are still read).
    """

    size: int
    sha256: str | None = None

    @classmethod
    def from_raw(cls, raw: object, source: str) -> FileRecord:
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = {"size": raw}  # the format before digests
        if not isinstance(raw, dict):
            raise GalleryCorruptError(f"{source}: files must map file names to sizes in bytes")
        MANIFEST.check_keys(raw, cls, f"{source}: files")
        _check_int(raw, "size", 0, f"{source}: files", INT64_MAX)
        digest = raw.get("sha256")
        if digest is not None and not (
            isinstance(digest, str) and len(digest) == 64 and set(digest) <= set(_HEX)
        ):
            raise GalleryCorruptError(f"{source}: files.sha256 must be 64 hex digits or null")
        return cls(size=raw["size"], sha256=digest)


_HEX = "0123456789abcdef"


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
    # Items were removed after the build: the domain still holds, but not the whole part.
    partial: bool = False

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
        if not isinstance(raw.get("partial", False), bool):
            raise GalleryCorruptError(f"{source}: source.partial must be true or false")
        return cls(**raw)

    def describe(self) -> str:
        if self.kind == "folder":
            return "a folder of images (domain unknown)"
        where = f"{self.split_file or 'split'}:{self.part} (fingerprint {self.split_fingerprint})"
        removed = ", some removed later" if self.partial else ""
        if self.kind == "mixed":
            return f"{where}, plus files added later{removed} (domain unknown)"
        return f"the {self.domain} images of {where}{removed}"


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
    files: dict[str, FileRecord]  # file name -> size (checked on open) and digest
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
        return dumps(raw, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> GalleryManifest:
        try:
            raw = MANIFEST.load(text, cls, source)
        except RecursionError:  # json's parser recurses once per nesting level
            raise GalleryCorruptError(f"{source}: not valid JSON (nested too deeply)") from None
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
        files = {name: FileRecord.from_raw(value, source) for name, value in raw["files"].items()}
        return cls(
            **{**raw, "model": model, "threshold": threshold, "source": origin, "files": files}
        )

    @classmethod
    def read(cls, path: Path) -> GalleryManifest:
        """The manifest at ``path``; GalleryCorruptError unless it is UTF-8 and well-formed."""
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise GalleryCorruptError(
                f"{path}: not UTF-8 text (byte {err.start}); the manifest is damaged"
            ) from None
        return cls.from_json(text, str(path))

    def committed(self, **changes: Any) -> GalleryManifest:
        """The manifest of the next generation, in this version's layout."""
        return replace(
            self,
            format_version=GALLERY_FORMAT_VERSION,
            generation=self.generation + 1,
            updated_at=now(),
            **changes,
        )

    def after_removing(self, removed: int) -> GalleryManifest:
        """Removing items from a gallery built from a split's part makes that part partial:
        evaluation must not present a subset of the part as the whole part. Every store's
        ``remove`` applies this one rule."""
        origin = self.source
        if removed and origin is not None and origin.kind != "folder" and not origin.partial:
            return replace(self, source=replace(origin, partial=True))
        return self


# name -> (minimum, maximum). The maxima are what hnswlib's C++ types hold (its dim is an
# int; M, ef and counts are size_t), so a damaged number is refused here instead of
# overflowing inside hnswlib.
_RANGES = {
    "generation": (0, INT64_MAX),
    "dim": (1, INT32_MAX),
    "M": (2, 2**15 - 1),  # 2 M neighbour ids must fit the 16-bit count of a level-0 list
    "ef_construction": (1, INT32_MAX),
    "ef": (1, INT32_MAX),
    "live": (0, INT64_MAX),
    "deleted": (0, INT64_MAX),
    "max_elements": (0, INT64_MAX),
}


def _check_int(
    raw: dict[str, Any], name: str, minimum: int, source: str, maximum: int = INT32_MAX
) -> None:
    value = raw.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"
        raise GalleryCorruptError(
            f"{source}: {name} must be an integer from {minimum} to {maximum}, not {shown}"
        )


def _check_types(raw: dict[str, Any], source: str) -> None:
    """Field types and ranges: a hand-edited manifest must fail here, not inside hnswlib."""
    from sketchsearch.gallery.scores import SPACES

    for name, (minimum, maximum) in _RANGES.items():
        _check_int(raw, name, minimum, source, maximum)
    if raw["space"] not in SPACES:
        raise GalleryCorruptError(f"{source}: space {raw['space']!r} is not one of {SPACES}")
    for name in ("created_at", "updated_at"):
        if not isinstance(raw[name], str):
            raise GalleryCorruptError(f"{source}: {name} must be a string")
    if raw["root"] is not None and not isinstance(raw["root"], str):
        raise GalleryCorruptError(f"{source}: root must be a string or null")
    if not isinstance(raw["files"], dict):
        raise GalleryCorruptError(f"{source}: files must map file names to sizes in bytes")


def _finite(value: float) -> bool:
    """Also False for an integer too large for a float (math.isfinite would raise)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
