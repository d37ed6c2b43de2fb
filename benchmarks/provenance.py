"""Where each input of a report was measured, and which of them may stand under its heading.

A report's heading names one machine. Its table comes from the latency and accuracy results,
which must both have been measured there: a pair from two machines is refused. The ANN
results (the plot's recall-vs-QPS panel) are often a file committed from another host; they
are shown as this run's only when their machine fingerprint is the table's, and otherwise in
a section of their own that names their file, machine and date. A file written before
fingerprints were recorded counts as another machine: what cannot be shown to be this run's
is never presented as such.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sketchsearch.benchmarks.machine_info import describe_machine
from sketchsearch.data.errors import ExitCode, SketchsearchError


class ReportInputMismatch(SketchsearchError):
    """Two inputs of one table measured on different machines (exit code 4)."""

    exit_code = ExitCode.MISMATCH


@dataclass(frozen=True)
class Provenance:
    """One input of a report: what it is, where it was read from, when, where and how made."""

    kind: str  # latency, accuracy or ann
    source: str  # the file it was read from, or "this run" when measured by the same command
    date: str | None
    machine: str  # describe_machine's words
    fingerprint: str | None
    command: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def day(self) -> str:
        """The date's day, as a report says it."""
        return self.date[:10] if self.date else "an unrecorded date"


def provenance(kind: str, data: dict[str, Any], source: str) -> Provenance:
    env = data.get("environment") or {}
    return Provenance(
        kind=kind,
        source=source,
        date=data.get("date"),
        machine=describe_machine(env),
        fingerprint=env.get("fingerprint"),
        command=data.get("command"),
    )


def _facts(env: dict[str, Any]) -> tuple[Any, Any, Any]:
    return env.get("cpu"), env.get("cores"), env.get("gpu")


def check_same_machine(latency: dict[str, Any], accuracy: dict[str, Any]) -> None:
    """Refuse a latency/accuracy pair from two machines: both go under one heading.
    Fingerprints decide when both have one; else CPU, cores and GPU must agree."""
    a, b = latency.get("environment") or {}, accuracy.get("environment") or {}
    if a.get("fingerprint") and b.get("fingerprint"):
        same = a["fingerprint"] == b["fingerprint"]
    else:
        same = _facts(a) == _facts(b)
    if not same:
        raise ReportInputMismatch(
            f"the latency results were measured on {describe_machine(a)} and the accuracy "
            f"results on {describe_machine(b)}: one table names one machine; run both "
            "benchmarks on the same machine"
        )


def measured_here(table: Provenance | None, other: Provenance) -> bool:
    """Whether ``other`` was measured on the table's machine (a known, equal fingerprint)."""
    return (
        table is not None
        and table.fingerprint is not None
        and table.fingerprint == other.fingerprint
    )


@dataclass(frozen=True)
class AnnPanel:
    """ann.py's results for the plot's right panel, where they come from, and whether they
    were measured on the machine the report's heading names."""

    data: dict[str, Any]
    origin: Provenance
    this_machine: bool


def ann_panel(
    ann: dict[str, Any] | None,
    table: dict[str, Any] | None,
    source: str,
) -> AnnPanel | None:
    """ann.py's results placed by where they were measured: on the table's machine or not."""
    if ann is None:
        return None
    origin = provenance("ann", ann, source)
    table_origin = provenance("table", table, "") if table is not None else None
    return AnnPanel(ann, origin, measured_here(table_origin, origin))


def _how(origin: Provenance) -> str:
    return f" by `{origin.command}`" if origin.command else ""


def ann_lines(ann: AnnPanel | None) -> tuple[list[str], list[str]]:
    """(a line under the heading, a section of its own): one of them, by where ann ran."""
    if ann is None:
        return [], []
    origin = ann.origin
    if ann.this_machine:
        source = "" if origin.source == "this run" else f" `{origin.source}`,"
        line = f"ANN (the plot's right panel):{source} measured {origin.day} on this machine"
        return [f"{line}{_how(origin)}."], []
    why = "another machine" if origin.fingerprint else "a machine it does not record"
    return [], [
        "",
        "### Not measured in this run",
        "",
        f"- The plot's right panel (HNSW recall vs QPS) is from `{origin.source}`, measured on "
        f"{origin.machine} on {origin.day}{_how(origin)}: {why}, not the one named above. "
        "Its figures are not this run's.",
    ]


def panel_title(ann: AnnPanel | None) -> tuple[str, str]:
    """The right panel's title and colour: a PNG travels without its markdown, so another
    machine's results say so in the figure itself."""
    if ann is None:
        return "Gallery (HNSW) recall vs QPS: not measured in this run", "black"
    if ann.this_machine:
        return f"Gallery (HNSW) recall vs QPS, measured {ann.origin.day}", "black"
    name = Path(ann.origin.source).name
    return (
        f"NOT this run: {name}\nmeasured on {ann.origin.machine}, {ann.origin.day}",
        "tab:red",
    )
