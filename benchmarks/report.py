"""One table from the latency, accuracy and ANN benchmarks: markdown, JSON and a PNG plot.

    python benchmarks/report.py --latency latency.json --accuracy accuracy.json \\
        --ann benchmarks/results/ann-2026-11-29.json --out bench/report

writes ``report.md``, ``report.json`` and ``report.png`` (``--out`` is the common stem). A row
is one model file on one backend. Status is "ok", "failed: <stage>: reason" (export, latency
or accuracy broke) or "unavailable: reason" (this machine cannot run it); a row that did not
measure something shows "—" there, never a number from elsewhere. ``--steps`` (gpu.sh's
steps.json, see ``steps.py``) adds each failed step to the rows of its file, or as a row of
its own, so that no failure is left out. ``--note TEXT`` (repeatable) adds a paragraph
"**Note:** TEXT" above the table, e.g. gpu.sh's list of steps whose outcome it could not record.
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def cells(row: dict[str, Any]) -> list[str]:
    status = row["status"]
    if row["reason"]:
        reason = row["reason"].replace("|", "/").replace("\n", " ")
        short = reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"
        status = f"{status}: {short}"
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


def markdown(
    rows: list[dict[str, Any]],
    latency: dict[str, Any] | None,
    accuracy: dict[str, Any] | None,
    plot: Path | None,
    notes: Sequence[str] = (),
) -> str:
    source = latency or accuracy or {}
    env = source.get("environment", {})
    date = str(source.get("date", datetime.date.today().isoformat()))[:10]
    lines = [
        f"Measured {date} on {env.get('cpu', '?')} ({env.get('cores', '?')} cores, "
        f"{env.get('threads', '?')} threads), GPU: {env.get('gpu', 'none')}; onnxruntime "
        f"{env.get('onnxruntime', '?')}, torch {env.get('torch', 'not installed')}, "
        f"TensorRT {env.get('tensorrt', 'not installed')}.",
    ]
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
    for note in notes:  # each a paragraph of its own
        lines += ["", f"**Note:** {' '.join(note.split())}"]
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    lines += _end_to_end_lines(rows) + _ratio_lines(latency, rows)
    if plot is not None:
        lines += ["", f"![latency and ANN recall vs QPS]({plot.name})"]
    return "\n".join(lines) + "\n"


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


def plot(rows: list[dict[str, Any]], ann: dict[str, Any] | None, out: Path) -> Path:
    """Left: p50 latency vs batch size per measured row; right: ann.py's recall@10 vs QPS."""
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
    for run in (ann or {}).get("runs", []):
        sweep = run["ef_sweep"]
        right.plot(
            [s["qps_1_thread"] for s in sweep],
            [s["recall@10"] for s in sweep],
            marker="o",
            label=f"{run['n']:,} vectors, 1 thread",
        )
    right.set(xscale="log", xlabel="queries per second", ylabel="recall@10 vs exact")
    right.set_title("Gallery (HNSW) recall vs QPS" + ("" if ann else ": no ann.py results given"))
    if ann:
        right.legend(fontsize=7)
    for axis in (left.xaxis, left.yaxis, right.xaxis):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
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
) -> dict[str, Path]:
    """Write ``<out>.md``, ``<out>.json`` and ``<out>.png``; returns their paths.

    With steps alone (latency and accuracy both failed) the table holds the failed steps.
    ``notes`` are lines above the table (and ``notes`` in the JSON).
    """
    if latency is None and accuracy is None and not (steps or {}).get("steps"):
        raise ValueError("need at least one of the latency, accuracy and steps results")
    rows = combine(latency, accuracy, exports, steps)
    paths = {kind: out.with_name(f"{out.name}.{kind}") for kind in ("md", "json", "png")}
    plot(rows, ann, paths["png"])
    paths["md"].write_text(markdown(rows, latency, accuracy, paths["png"], notes))
    payload = {
        "kind": "sketchsearch-report",
        "date": (latency or accuracy or {}).get("date"),
        "environment": (latency or accuracy or {}).get("environment"),
        "columns": list(COLUMNS),
        "rows": rows,
        "notes": list(notes),
        "ratios_vs_torch_eager": (latency or {}).get("ratios_vs_torch_eager", []),
        "accuracy_reference": (accuracy or {}).get("reference"),
        "ann_runs": [run["n"] for run in (ann or {}).get("runs", [])],
    }
    paths["json"].write_text(json.dumps(payload, indent=1) + "\n")
    return paths


def _load(path: Path | None) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path is not None else None


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=Path, help="latency.py --json output")
    parser.add_argument("--accuracy", type=Path, help="accuracy.py --json output")
    parser.add_argument("--ann", type=Path, help="ann.py --json output (recall-vs-QPS plot)")
    parser.add_argument("--exports", type=Path, help="exports.json written by `bench`")
    parser.add_argument("--steps", type=Path, help="steps.json written by gpu.sh (steps.py)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="Output stem.")
    parser.add_argument(
        "--note", action="append", default=[], help="A line above the table (repeatable)."
    )
    args = parser.parse_args(argv)
    if args.latency is None and args.accuracy is None and args.steps is None:
        parser.error("pass --latency, --accuracy and/or --steps")
    loaded = [_load(p) for p in (args.latency, args.accuracy, args.ann, args.exports, args.steps)]
    paths = build_report(loaded[0], loaded[1], args.out, *loaded[2:], notes=args.note)
    print(paths["md"].read_text())
    return paths


if __name__ == "__main__":
    main()
