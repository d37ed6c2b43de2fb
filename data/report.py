"""Human-readable summaries of a collection and a split, for `sketchsearch data info`."""

from __future__ import annotations

from collections import Counter

from sketchsearch.data.layouts import Collection
from sketchsearch.data.split_file import SplitFile, counts_by_category


def describe_collection(collection: Collection) -> str:
    counts = Counter((item.category, item.domain) for item in collection.items)
    domains = collection.domains
    lines = [
        f"root: {collection.root}",
        f"layout: {collection.layout}"
        + (f" (variant {collection.variant})" if collection.variant else ""),
        f"categories: {len(collection.categories)}",
    ]
    for domain in domains:
        total = sum(n for (_, d), n in counts.items() if d == domain)
        lines.append(f"{domain}s: {total}")
    lines.append("")
    lines.append(
        _table(
            ["category", *domains],
            [
                [category, *(str(counts[(category, d)]) for d in domains)]
                for category in collection.categories
            ],
        )
    )
    return "\n".join(lines)


def describe_split(split: SplitFile, source: str) -> str:
    lines = [
        f"split: {source}",
        f"policy: {split.policy}, seed {split.seed}, fractions "
        + ", ".join(f"{part} {f:g}" for part, f in split.fractions.items()),
        f"fingerprint: {split.fingerprint} ({split.file_count} files)",
    ]
    if split.test_categories_from:
        lines.append(f"test categories from: {split.test_categories_from}")
    for category, rule in split.small_categories.items():
        lines.append(
            f"small category {category!r}: {'train only' if rule == 'train' else 'left out'}"
        )
    rows = [
        [
            part,
            str(len(split.category_parts[part])),
            *(str(split.counts[part][d]) for d in split.domains),
        ]
        for part in split.items
    ]
    lines += ["", _table(["part", "categories", *split.domains], rows), ""]
    per_category = counts_by_category(split)
    header = ["category"] + [f"{part}:{d}" for part in split.items for d in split.domains]
    body = [
        [category]
        + [
            str(per_category[part].get(category, {}).get(d, 0))
            for part in split.items
            for d in split.domains
        ]
        for category in split.categories
    ]
    lines.append(_table(header, body))
    return "\n".join(lines)


def describe_warnings(collection: Collection, max_per_kind: int = 20) -> str:
    if not collection.warnings:
        return "warnings: none"
    lines = [f"warnings: {len(collection.warnings)}"]
    shown: Counter[str] = Counter()
    for kind, count in collection.warning_counts().items():
        lines.append(f"  {kind}: {count}")
    for warning in collection.warnings:
        shown[warning.kind] += 1
        if max_per_kind == 0 or shown[warning.kind] <= max_per_kind:
            lines.append(f"  - {warning}")
    hidden = sum(max(0, n - max_per_kind) for n in shown.values()) if max_per_kind else 0
    if hidden:
        lines.append(f"  … and {hidden} more (--max-warnings 0 shows all)")
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def fmt(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])
