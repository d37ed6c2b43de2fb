"""Which backend runs a model fastest here, per workload: a small JSON file beside the model.

``sketchsearch bench`` (and ``benchmarks/latency.py --recommend``) measure every backend that
opens a model file, at batch 1 and at larger batches, and write ``<model>.backends.json``
with the winner of each workload and the figures it won with. The winner depends on the
model, the batch size, the precision and the machine (README, "CPU anchors": on one 2-core
host onnxruntime won single queries of both fp32 models tried, OpenVINO the small model's
batches and its int8 file at every batch size), so there are two workloads: ``single``
(lowest batch-1 p50, what ``retrieve`` runs) and ``batch`` (most images per second at batch
>= 8, what gallery building and evaluation run).

Each figure is the engine alone (``benchmarks/latency.py``'s embed rows: one engine, no image
decoding beside it, onnxruntime with its intra-op spinning on) at the batch size it names; a
gallery build runs the engine beside decoder threads with onnxruntime's spinning off, so the
figures rank the backends, they do not predict a build's speed.

Only a backend whose embeddings match the file's default backend's at the file's parity bar
(``parity_bar``: ``PARITY_COSINE`` for fp32 and fp16 files, the export's own 0.98 for int8,
on the real-photo parity check) may be recommended: a gallery built by one backend may be
searched with queries embedded by another, and the mix must stay within the difference the
model family already accepts between its exports (a gallery serves every precision of its
checkpoint). OpenVINO runs an int8 file with its own int8 kernels (cosine ~0.998 against
onnxruntime's, inside int8's bar), several times faster on a CPU without VNNI.

Figures from one CPU do not transfer to another, nor to another model file or thread count:
the file records the machine's fingerprint, the usable CPUs, the threads and the model file's
size and sha256, and is ignored, with a note, where any differs. This module only reads and
writes the file; the benchmarks decide what goes in it, and :mod:`backend_choice` decides what
a command opens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from sketchsearch.data import strict_json
from sketchsearch.data.atomic_file import write_text_atomic
from sketchsearch.data.errors import ExitCode, SketchsearchError
from sketchsearch.data.file_format import FileFormat
from sketchsearch.data.hashing import file_sha256

WORKLOADS = ("single", "batch")
BATCH_MIN = 8  # the smallest batch size that counts as a "batch" workload
UNITS = {"single": "ms", "batch": "img/s"}  # lower is better for ms, higher for img/s
# Another backend replaces the file's default (onnxruntime for .onnx) only when it is at least
# this much faster: on a shared machine two rows measured a minute apart differ by more than a
# few percent, and a switch for a gain inside that noise would also pay OpenVINO's slower open.
MARGIN = 0.05
# A backend other than the file's default is recommended only when its embeddings reach the
# file's parity bar against the default's on every parity photo (``export/backend_parity.py``):
# this for fp32 and fp16 files; an int8 file's bar is its export's (recorded as parity_bar).
PARITY_COSINE = 0.9999


class RecommendationError(SketchsearchError):
    """A backend recommendation file that cannot be read."""

    exit_code = ExitCode.BAD_INPUT


FORMAT = FileFormat(
    "sketchsearch-backend-recommendation", 1, "backend recommendation", RecommendationError
)


@dataclass(frozen=True)
class Candidate:
    """One backend's figure for one workload, as measured."""

    backend: str  # the backend table's name: "onnxruntime", "openvino", ...
    row: str  # the benchmark row: "ort-cpu", "openvino-cpu", ...
    device: str | None  # its Offer.device, the --provider it was measured with
    batch_size: int
    value: float  # p50 ms for "single", images per second for "batch": the engine alone
    # Its embeddings' lowest cosine against the file's default backend on the parity photos;
    # None for the default itself, or where it was not checked (then it is not recommended).
    parity: float | None = None

    def parity_ok(self, bar: float = PARITY_COSINE) -> bool:
        """Its embeddings matched the default backend's at ``bar``."""
        return self.parity is not None and self.parity >= bar


@dataclass(frozen=True)
class WorkloadChoice:
    """The fastest candidate of one workload, and every candidate's figure."""

    backend: str
    device: str | None
    unit: str  # "ms" (p50 at batch 1) or "img/s" (best batch >= 8)
    candidates: tuple[Candidate, ...]
    parity_bar: float = PARITY_COSINE  # the least parity cosine a non-default backend needed

    def explain(self) -> str:
        """``engine alone, batch 32: 1,210 vs 905 img/s``: what the figures are, then the
        fastest first; a faster backend left out for parity is named with its cosine."""
        ordered = sorted(self.candidates, key=lambda c: c.value, reverse=self.unit == "img/s")
        digits = 2 if self.unit == "ms" else 0
        sizes = {c.batch_size for c in ordered}
        each = "" if len(sizes) == 1 else " (batch {})"
        figures = " vs ".join(f"{c.value:,.{digits}f}" + each.format(c.batch_size) for c in ordered)
        what = f"engine alone, batch {sizes.pop()}" if len(sizes) == 1 else "engine alone"
        text = f"{what}: {'p50 ' if self.unit == 'ms' else ''}{figures} {self.unit}"
        for c in ordered:
            if c.backend != self.backend and not c.parity_ok(self.parity_bar) and c.parity:
                text += f"; {c.backend} left out: cosine {c.parity:.6f} < {self.parity_bar}"
        return text


@dataclass(frozen=True)
class BackendRecommendation:
    """``<model>.backends.json``: the fastest backend per workload for one file, on one machine."""

    format: str
    format_version: int
    model: str  # the model file's name
    model_size: int  # its size in bytes: a cheap first check that it is the file measured
    model_sha256: str  # its hash: a file replaced since, even at the same size, is not
    machine: str  # runtime.machine.machine_fingerprint() where it was measured
    cpu: str
    cpus: int  # runtime.machine.available_cpus() when measured (a taskset or container's)
    threads: int | None  # --threads of the measurement; None: each backend's default
    date: str
    command: str
    single: WorkloadChoice | None
    batch: WorkloadChoice | None

    def choice(self, workload: str) -> WorkloadChoice | None:
        if workload not in WORKLOADS:
            raise ValueError(f"workload {workload!r}: use one of {WORKLOADS}")
        chosen: WorkloadChoice | None = getattr(self, workload)
        return chosen

    def to_json(self) -> str:
        return strict_json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> BackendRecommendation:
        values = FORMAT.load(text, cls, source)
        _check_types(values, _FILE_TYPES, cls, source)
        for workload in WORKLOADS:
            values[workload] = _choice(values[workload], workload, source)
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


_Check = tuple[Callable[[Any], bool], str]
_TEXT: _Check = (lambda v: isinstance(v, str), "a string")
_COUNT: _Check = (lambda v: _is_int(v) and v >= 1, "a positive integer")
_FILE_TYPES: Mapping[str, _Check] = {
    "model": _TEXT,
    "model_size": (lambda v: _is_int(v) and v >= 0, "a size in bytes"),
    "model_sha256": _TEXT,
    "machine": _TEXT,
    "cpu": _TEXT,
    "cpus": _COUNT,
    "threads": (lambda v: v is None or _COUNT[0](v), "a positive integer or null"),
    "date": _TEXT,
    "command": _TEXT,
    "single": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "batch": (lambda v: v is None or isinstance(v, dict), "an object or null"),
}
_DEVICE: _Check = (lambda v: v is None or isinstance(v, str), "a string or null")
_CHOICE_TYPES: Mapping[str, _Check] = {
    "backend": _TEXT,
    "device": _DEVICE,
    "unit": _TEXT,
    "candidates": (lambda v: isinstance(v, list), "a list"),
    "parity_bar": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
}
_CANDIDATE_TYPES: Mapping[str, _Check] = {
    "backend": _TEXT,
    "row": _TEXT,
    "device": _DEVICE,
    "batch_size": _COUNT,
    "value": (lambda v: _is_number(v) and v > 0, "a finite positive number"),
    "parity": (lambda v: v is None or _is_number(v), "a finite number or null"),
}


def _check_types(raw: Any, checks: Mapping[str, _Check], cls: type, source: str) -> None:
    """``raw`` is an object with ``cls``'s keys, each holding a value of its field's type."""
    if not isinstance(raw, dict):
        raise RecommendationError(f"{source}: {cls.__name__} is not an object: {raw!r}")
    FORMAT.check_keys(raw, cls, source)
    for f in fields(cls):
        if f.name in raw and f.name in checks:
            accepts, wanted = checks[f.name]
            if not accepts(raw[f.name]):
                raise RecommendationError(
                    f"{source}: {f.name} must be {wanted}, not {raw[f.name]!r}"
                )


def _choice(raw: Any, workload: str, source: str) -> WorkloadChoice | None:
    if raw is None:
        return None
    _check_types(raw, _CHOICE_TYPES, WorkloadChoice, f"{source} ({workload})")
    if raw["unit"] != UNITS[workload]:
        raise RecommendationError(
            f"{source} ({workload}): unit must be {UNITS[workload]!r}, not {raw['unit']!r}"
        )
    candidates = []
    for item in raw["candidates"]:
        _check_types(item, _CANDIDATE_TYPES, Candidate, f"{source} ({workload})")
        candidates.append(Candidate(**item))
    return WorkloadChoice(**{**raw, "candidates": tuple(candidates)})


def recommendation_path(model: str | Path) -> Path:
    """``model.onnx`` → ``model.onnx.backends.json``."""
    model = Path(model)
    return model.with_name(model.name + ".backends.json")


def write_recommendation(model: str | Path, recommendation: BackendRecommendation) -> Path:
    return write_text_atomic(recommendation_path(model), recommendation.to_json())


def read_recommendation(model: str | Path) -> BackendRecommendation | None:
    """The recommendation beside ``model``, or None when there is none."""
    path = recommendation_path(model)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise RecommendationError(f"{path}: cannot be read ({err})") from None
    return BackendRecommendation.from_json(text, str(path))


def pick(
    workload: str,
    candidates: list[Candidate],
    default: str | None = None,
    parity_bar: float = PARITY_COSINE,
) -> WorkloadChoice | None:
    """The fastest of ``candidates`` for ``workload``; None when none may be recommended.

    ``default`` (the backend that claims the file's suffix) keeps the workload unless another
    backend beats its best figure by at least ``MARGIN``; another backend counts only when
    its embeddings matched the default's (``Candidate.parity`` >= ``parity_bar``). Every
    candidate stays in the choice, so the file shows what was measured and left out.
    """
    eligible = [
        c for c in candidates if default is None or c.backend == default or c.parity_ok(parity_bar)
    ]
    if not eligible:
        return None
    unit = UNITS[workload]
    fastest = min if unit == "ms" else max
    best = fastest(eligible, key=lambda c: c.value)
    incumbent = [c for c in eligible if c.backend == default]
    if incumbent and best.backend != default:
        kept = fastest(incumbent, key=lambda c: c.value)
        gain = kept.value / best.value if unit == "ms" else best.value / kept.value
        if gain < 1 + MARGIN:
            best = kept
    return WorkloadChoice(best.backend, best.device, unit, tuple(candidates), parity_bar)


def recommend(
    model: Path,
    measured: dict[str, Any],
    single: list[Candidate],
    batch: list[Candidate],
    default: str | None = None,
    parity_bar: float = PARITY_COSINE,
) -> BackendRecommendation:
    """The recommendation for ``model`` from one run: ``single`` holds batch-1 p50s in ms,
    ``batch`` images per second at every batch size >= BATCH_MIN (each row's best counts),
    both of the engine alone; ``measured`` holds the run's ``machine``, ``cpu``, ``cpus``,
    ``threads``, ``date`` and ``command``; ``default`` is the backend that runs ``model`` when
    nothing is recommended, and the reference of every candidate's ``parity``; ``parity_bar``
    the file's parity bar (``export.backend_parity.min_cosine`` of its precision)."""
    best: dict[str, Candidate] = {}
    for c in batch:
        if c.batch_size >= BATCH_MIN and (c.row not in best or c.value > best[c.row].value):
            best[c.row] = c
    return BackendRecommendation(
        format=FORMAT.tag,
        format_version=FORMAT.version,
        model=model.name,
        model_size=model.stat().st_size,
        model_sha256=file_sha256(model),
        single=pick("single", single, default, parity_bar),
        batch=pick("batch", list(best.values()), default, parity_bar),
        **measured,
    )
