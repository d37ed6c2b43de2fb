"""One table from the latency, accuracy and ANN benchmarks: markdown, JSON and a PNG plot.

    python benchmarks/report.py --latency latency.json --accuracy accuracy.json \\
        [--ann ann.json] --out bench/report

writes ``report.md``, ``report.json`` and ``report.png`` (``--out`` is the common stem). A row
is one model file on one backend. Status is "ok", "failed: <stage>: reason" (export, latency
or accuracy broke) or "unavailable: reason" (this machine cannot run it); a row that did not
measure something shows "—" there, never a number from elsewhere. ``--steps`` (gpu.sh's
steps.json, see ``steps.py``) adds each failed step to the rows of its file, or as a row of
its own, so that no failure is left out. ``--note TEXT`` (repeatable) adds a paragraph
"**Note:** TEXT" above the table, e.g. gpu.sh's list of steps whose outcome it could not record.

The heading names the machine of the latency and accuracy results (refused when they come from
two machines, exit code 4). ``--ann`` results measured on that machine (same fingerprint) are
listed under it; any others (a file committed from another host, or one that records no
machine) go to a separate "Not measured in this run" section naming their file, machine and
date, and the PNG panel says so in its title (see ``provenance.py``). A reason longer than
REASON_CHARS is shortened in its cell and given in full as a numbered footnote; the JSON holds
every reason in full, and the provenance of every input under ``inputs``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sketchsearch.benchmarks.provenance import (
    AnnPanel,
    ann_lines,
    ann_panel,
    check_same_machine,
    panel_title,
    provenance,
)
from sketchsearch.data import strict_json
from sketchsearch.data.errors import SketchsearchError

COLUMNS = (
    "File",
    "Backend",
    "Precision",
    "Status",
    "File size MB",
    "mAP@all",
    "Δ mAP@all",
    "P@100",
    "recall@1",
    "p50 ms @ batch 1",
    "p99 ms @ batch 1",
    "img/s (best batch)",
)
DASH = "—"
REASON_CHARS = 90


def _status(parts: dict[str, dict[str, Any]]) -> tuple[str, str | None]:
    """ok, failed (first failing stage wins) or unavailable, with the reason."""
    for stage, row in parts.items():
        if row["status"] == "failed":
            return "failed", f"{stage}: {row['reason']}"
    for row in parts.values():
        if row["status"] == "unavailable":
            return "unavailable", str(row["reason"])
    return "ok", None


def _number(value: float | None, digits: int) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def combine_row(
    latency: dict[str, Any] | None,
    accuracy: dict[str, Any] | None,
    export: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One table row (raw values) from whichever of the three results exist for it."""
    stage = (export or {}).get("stage", "export")  # a gpu.sh step names its own stage
    parts = {
        name: row
        for name, row in ((stage, export), ("latency", latency), ("accuracy", accuracy))
        if row is not None
    }
    base = latency or accuracy or export or {}
    status, reason = _status(parts)
    metrics = (accuracy or {}).get("metrics") or {}
    delta = (accuracy or {}).get("delta_vs_reference") or {}
    batches = (latency or {}).get("batches") or {}
    best = max(batches.items(), key=lambda kv: kv[1]["images_per_s"], default=None)
    return {
        "key": f"{base.get('file')}:{base.get('backend')}",
        "file": base.get("file"),
        "backend": base.get("backend_label", base.get("backend")),
        "precision": base.get("precision"),
        "status": status,
        "reason": reason,
        "file_size_mb": base.get("file_size_mb"),
        "mAP@all": metrics.get("mAP@all"),
        "delta_mAP@all": delta.get("mAP@all"),
        "P@100": metrics.get("P@100"),
        "recall@1": metrics.get("recall@1"),
        "p50_ms_batch1": batches.get("1", {}).get("p50_ms"),
        "p99_ms_batch1": batches.get("1", {}).get("p99_ms"),
        "images_per_s_best": best[1]["images_per_s"] if best else None,
        "best_batch": int(best[0]) if best else None,
        "latency_by_batch": {b: s["p50_ms"] for b, s in batches.items()},
        "end_to_end": (latency or {}).get("end_to_end"),
        "repeat": (latency or {}).get("repeat"),
    }


def combine(
    latency: dict[str, Any] | None,
    accuracy: dict[str, Any] | None,
    exports: dict[str, Any] | None = None,
    steps: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows in latency order, then rows only accuracy has, then exports or steps that never
    landed (a failed gallery, latency or accuracy step is a row of its own)."""

    def key(row: dict[str, Any]) -> str:
        return f"{row['file']}:{row['backend']}"

    lat = {key(r): r for r in (latency or {}).get("rows", [])}
    acc = {key(r): r for r in (accuracy or {}).get("rows", [])}
    entries = [*(exports or {}).get("exports", []), *(steps or {}).get("steps", [])]
    exp: dict[str, dict[str, Any]] = {}
    for entry in entries:  # one per file; a failed one wins over an ok one
        if entry["status"] != "ok" or entry["file"] not in exp:
            exp[entry["file"]] = entry
    rows = [combine_row(lat.get(k), acc.get(k), exp.get(k.split(":")[0])) for k in lat]
    rows += [combine_row(None, acc[k], exp.get(k.split(":")[0])) for k in acc if k not in lat]
    seen = {r["file"] for r in rows}
    rows += [
        combine_row(None, None, e)
        for name, e in exp.items()
        if name not in seen and e["status"] != "ok"  # a step that worked needs no row
    ]
    return rows


def _shorten(reason: str) -> str:
    """The first words of ``reason`` that fit in REASON_CHARS, ending in "…"."""
    cut = reason[: REASON_CHARS - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" :,;") + "…"


def cells(row: dict[str, Any], footnotes: dict[str, int] | None = None) -> list[str]:
    """A row's markdown cells. A long reason is shortened here and recorded in ``footnotes``
    (full text → number, shared by rows with the same reason); its cell points there."""
    status = row["status"]
    if row["reason"]:
        reason = " ".join(row["reason"].split())  # a footnote is one line
        if len(reason) <= REASON_CHARS:
            status = f"{status}: {reason.replace('|', '/')}"
        else:
            notes = {} if footnotes is None else footnotes
            number = notes.setdefault(reason, len(notes) + 1)
            status = f"{status}: {_shorten(reason).replace('|', '/')} [^{number}]"
    best = row["images_per_s_best"]
    return [
        f"`{row['file']}`",
        str(row["backend"]),
        str(row["precision"]),
        status,
        _number(row["file_size_mb"], 2),
        _number(row["mAP@all"], 4),
        DASH if row["delta_mAP@all"] is None else f"{row['delta_mAP@all']:+.4f}",
        _number(row["P@100"], 4),
        _number(row["recall@1"], 4),
        _number(row["p50_ms_batch1"], 2),
        _number(row["p99_ms_batch1"], 2),
        DASH if best is None else f"{best:.0f} (b{row['best_batch']})",
    ]


def _heading(source: dict[str, Any]) -> str:
    env = source.get("environment", {})
    date = str(source.get("date", datetime.date.today().isoformat()))[:10]
    return (
        f"Measured {date} on {env.get('cpu', '?')} ({env.get('cores', '?')} cores, "
        f"{env.get('threads', '?')} threads, machine {env.get('fingerprint') or 'unrecorded'}), "
        f"GPU: {env.get('gpu', 'none')}; onnxruntime {env.get('onnxruntime', '?')}, torch "
        f"{env.get('torch', 'not installed')}, TensorRT {env.get('tensorrt', 'not installed')}."
    )


def _footnote_lines(footnotes: dict[str, int]) -> list[str]:
    return ["", *(f"[^{n}]: {reason}" for reason, n in footnotes.items())] if footnotes else []


def markdown(
    rows: list[dict[str, Any]],
    latency: dict[str, Any] | None,
    accuracy: dict[str, Any] | None,
    plot: Path | None,
    notes: Sequence[str] = (),
    ann: AnnPanel | None = None,
    exports: dict[str, Any] | None = None,
) -> str:
    here, elsewhere = ann_lines(ann)
    lines = [_heading(latency or accuracy or {})]
    if latency:
        s = latency["settings"]
        lines.append(
            f"Latency: batch sizes {', '.join(map(str, s['batch_sizes']))}, {s['warmup']} warm-up "
            f"and {s['iters']} timed calls each, seeded random uint8 input."
        )
    if accuracy:
        ok = [r for r in accuracy["rows"] if r["status"] == "ok"]
        counts = (
            f" ({ok[0]['queries']} queries, {ok[0]['gallery_items']} gallery items)" if ok else ""
        )
        lines.append(
            f"Accuracy: `{accuracy['settings']['split']}`{counts}, category relevance, HNSW "
            f"search; Δ against `{accuracy.get('reference')}`."
        )
    lines += here
    for note in notes:  # each a paragraph of its own
        lines += ["", f"**Note:** {' '.join(note.split())}"]
    footnotes: dict[str, int] = {}
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(r, footnotes)) + " |" for r in rows]
    lines += _footnote_lines(footnotes)
    lines += _end_to_end_lines(rows) + _ratio_lines(latency, rows) + _parity_lines(exports)
    lines += elsewhere
    if plot is not None:
        alt = "latency by batch size" + (" and ANN recall vs QPS" if ann else "")
        lines += ["", f"![{alt}]({plot.name})"]
    return "\n".join(lines) + "\n"


def _parity_lines(exports: dict[str, Any] | None) -> list[str]:
    """One line per export and backend: its cosine against onnxruntime on real photos."""
    lines = []
    for entry in (exports or {}).get("exports", []):
        for check in entry.get("backend_parity", []):
            if check["status"] != "ok":  # "unavailable" here, or the check "failed"
                word = "not checked" if check["status"] == "unavailable" else "check failed"
                lines.append(
                    f"- `{entry['file']}` on {check['backend']}: {word} ({check['reason']})"
                )
                continue
            mark = "passed" if check["passed"] else "FAILED"
            lines.append(
                f"- `{entry['file']}` on {check['backend']}: cosine min {check['min_cosine']:.6f}"
                f" over {check['images']} photos, {mark} (needs >= {check['threshold']})"
            )
    return ["", "Backend parity against onnxruntime:", *lines] if lines else []


def _end_to_end_lines(rows: list[dict[str, Any]]) -> list[str]:
    measured = [r for r in rows if r["end_to_end"]]
    if not measured:
        return []
    out = [
        "",
        "End-to-end single query, p50 ms (read+decode+preprocess, embed, top-10 search):",
        "",
        "| File | Backend | decode+preprocess | embed | search | total |",
        "|---|---|---|---|---|---|",
    ]
    for r in measured:
        e = r["end_to_end"]
        stages = [f"{e[s]['p50_ms']:.2f}" for s in ("decode_preprocess", "embed", "search")]
        out.append(
            f"| `{r['file']}` | {r['backend']} | {' | '.join(stages)} | "
            f"{e['total']['p50_ms']:.2f} |"
        )
    return out


def _ratio_lines(latency: dict[str, Any] | None, rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for ratio in (latency or {}).get("ratios_vs_torch_eager", []):
        out.append(
            f"- `{ratio['row']}` / `{ratio['reference']}` p50 at batch {ratio['batch']}: "
            f"{ratio['p50_ms']:.2f} / {ratio['reference_p50_ms']:.2f} ms = {ratio['ratio']:.3f} "
            f"(of the fastest calls: {ratio['min_ratio']:.3f})"
        )
    for r in rows:
        if r["repeat"]:
            p50s = ", ".join(f"{v:.3f}" for v in r["repeat"]["p50_ms"])
            out.append(
                f"- Repeatability, `{r['key']}` batch {r['repeat']['batch']}: p50 {p50s} ms in "
                f"consecutive runs, spread {100 * r['repeat']['p50_spread']:.1f}%"
            )
    return ["", *out] if out else []


def plot(rows: list[dict[str, Any]], ann: AnnPanel | None, out: Path, heading: str = "") -> Path:
    """Left: p50 latency vs batch size per measured row; right: ann.py's recall@10 vs QPS.
    ``heading`` (the machine and date of the table) is the figure's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in rows:
        if r["latency_by_batch"]:
            batches = sorted(r["latency_by_batch"], key=int)
            values = [r["latency_by_batch"][b] for b in batches]
            label = f"{r['backend']} {r['precision']} ({r['file']})"
            left.plot([int(b) for b in batches], values, marker="o", label=label)
    left.set(xscale="log", yscale="log", xlabel="batch size", ylabel="p50 latency (ms)")
    sizes = sorted({int(b) for r in rows for b in r["latency_by_batch"]})
    if sizes:
        left.set_xticks(sizes)
    left.set_title("Embedding latency")
    if sizes:  # a report of failed steps alone has no latency to label
        left.legend(fontsize=7)
    for run in (ann.data if ann else {}).get("runs", []):
        sweep = run["ef_sweep"]
        right.plot(
            [s["qps_1_thread"] for s in sweep],
            [s["recall@10"] for s in sweep],
            marker="o",
            label=f"{run['n']:,} vectors, 1 thread",
        )
    right.set(xscale="log", xlabel="queries per second", ylabel="recall@10 vs exact")
    title, colour = panel_title(ann)
    right.set_title(title, color=colour, fontsize=9 if ann and not ann.this_machine else None)
    if ann:
        right.legend(fontsize=7)
    for axis in (left.xaxis, left.yaxis, right.xaxis):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    if heading:
        figure.suptitle(heading, fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def build_report(
    latency: dict[str, Any] | None,
    accuracy: dict[str, Any] | None,
    out: Path,
    ann: dict[str, Any] | None = None,
    exports: dict[str, Any] | None = None,
    steps: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
    sources: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write ``<out>.md``, ``<out>.json`` and ``<out>.png``; returns their paths.

    With steps alone (latency and accuracy both failed) the table holds the failed steps.
    ``notes`` are lines above the table (and ``notes`` in the JSON). ``sources`` names the
    file each input (latency, accuracy, ann) was read from; missing: "this run".
    ReportInputMismatch: latency and accuracy measured on two machines.
    """
    if latency is None and accuracy is None and not (steps or {}).get("steps"):
        raise ValueError("need at least one of the latency, accuracy and steps results")
    if latency is not None and accuracy is not None:
        check_same_machine(latency, accuracy)
    where = dict(sources or {})
    inputs = [
        provenance(kind, data, where.get(kind, "this run"))
        for kind, data in (("latency", latency), ("accuracy", accuracy))
        if data is not None
    ]
    panel = ann_panel(ann, latency or accuracy, where.get("ann", "this run"))
    rows = combine(latency, accuracy, exports, steps)
    paths = {kind: out.with_name(f"{out.name}.{kind}") for kind in ("md", "json", "png")}
    plot(rows, panel, paths["png"], _heading(latency or accuracy or {}))
    text = markdown(rows, latency, accuracy, paths["png"], notes, panel, exports)
    paths["md"].write_text(text)
    payload = {
        "kind": "sketchsearch-report",
        "date": (latency or accuracy or {}).get("date"),
        "environment": (latency or accuracy or {}).get("environment"),
        "inputs": [origin.to_dict() for origin in inputs],
        "columns": list(COLUMNS),
        "rows": rows,
        "notes": list(notes),
        "ratios_vs_torch_eager": (latency or {}).get("ratios_vs_torch_eager", []),
        "accuracy_reference": (accuracy or {}).get("reference"),
        "ann": None
        if panel is None
        else {
            "this_machine": panel.this_machine,
            "provenance": panel.origin.to_dict(),
            "runs": [run["n"] for run in panel.data.get("runs", [])],
        },
    }
    paths["json"].write_text(strict_json.dumps(payload, indent=1) + "\n")
    return paths


def _load(path: Path | None) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path is not None else None


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=Path, help="latency.py --json output")
    parser.add_argument("--accuracy", type=Path, help="accuracy.py --json output")
    parser.add_argument(
        "--ann",
        type=Path,
        help="ann.py --json output (recall-vs-QPS plot); from another machine it is shown in "
        "a separate, labelled section, never as this run's",
    )
    parser.add_argument("--exports", type=Path, help="exports.json written by `bench`")
    parser.add_argument("--steps", type=Path, help="steps.json written by gpu.sh (steps.py)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="Output stem.")
    parser.add_argument(
        "--note", action="append", default=[], help="A line above the table (repeatable)."
    )
    args = parser.parse_args(argv)
    if args.latency is None and args.accuracy is None and args.steps is None:
        parser.error("pass --latency, --accuracy and/or --steps")
    files = {"latency": args.latency, "accuracy": args.accuracy, "ann": args.ann}
    sources = {kind: str(path) for kind, path in files.items() if path is not None}
    latency, accuracy, ann, exports, steps = (
        _load(p) for p in (args.latency, args.accuracy, args.ann, args.exports, args.steps)
    )
    try:
        paths = build_report(
            latency, accuracy, args.out, ann, exports, steps, args.note, sources=sources
        )
    except SketchsearchError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(int(err.exit_code)) from None
    print(paths["md"].read_text())
    return paths


if __name__ == "__main__":
    main()
