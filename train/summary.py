"""The end-of-run summary printed by `sketchsearch train`."""

from __future__ import annotations

from sketchsearch.train.run import TrainReport

SHOWN = ("mAP@all", "mAP@200", "P@1", "P@10", "recall@1", "recall@3", "cos_pos", "cos_neg")


def describe_report(report: TrainReport) -> str:
    lines = [
        f"trained {report.epochs} epoch(s) in {report.seconds:.0f} s; run folder {report.out}",
        f"best checkpoint (val mAP@all): {report.best}",
    ]
    if report.epochs < report.planned_epochs:
        lines.insert(
            1,
            f"stopped early: val mAP@all stopped improving (of {report.planned_epochs} "
            "planned epochs; --patience sets how long to wait)",
        )
    if report.test is None:
        return "\n".join(lines)
    lines.append("")
    lines.append("test split, category-level retrieval:")
    header = f"  {'metric':<10} {'trained':>8}"
    if report.baseline_test is not None:
        header += f" {'random init':>12}"
    lines.append(header)
    for name in SHOWN:
        if name not in report.test:
            continue
        row = f"  {name:<10} {report.test[name]:>8.3f}"
        if report.baseline_test is not None:
            row += f" {report.baseline_test.get(name, float('nan')):>12.3f}"
        lines.append(row)
    lines.append(f"  chance mAP ≈ 1/categories = {report.chance:.3f}")
    return "\n".join(lines)
