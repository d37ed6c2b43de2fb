"""`sketchsearch data …`: scan, split, describe and synthesise image collections.

Each command parses options and calls one library function; errors are raised as
SketchsearchError and turned into exit codes by the root command group.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sketchsearch.data.errors import UsageError
from sketchsearch.data.layouts import SKETCHY_DEFAULT_VARIANT, Collection, scan
from sketchsearch.data.splits import SMALL_CATEGORY_RULES, SplitConfig

ROOT = click.Path(exists=True, file_okay=False, path_type=Path)


def scan_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command that reads a data root shares."""

    @click.option(
        "--layout",
        type=click.Choice(["auto", "sketchy", "generic", "paired"]),
        default="auto",
        show_default=True,
        help="auto: sketchy when ROOT has photo/ and sketch/ folders. paired: generic, and "
        "files with the same name in both domains are one instance.",
    )
    @click.option(
        "--variant",
        default=SKETCHY_DEFAULT_VARIANT,
        show_default=True,
        help="Sketchy augmentation variant folder.",
    )
    @click.option(
        "--domains",
        default=None,
        metavar="QUERY,GALLERY",
        help="Generic/paired layout: the two domain folders (default: both, sorted).",
    )
    @click.option(
        "--verify",
        is_flag=True,
        help="Decode every image and leave out the unreadable ones (slow).",
    )
    @click.option("--strict", is_flag=True, help="Fail on any warning instead of reporting it.")
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **kwargs)

    return wrapper


def _scan(
    root: Path, layout: str, variant: str, domains: str | None, verify: bool, strict: bool
) -> Collection:
    domain_list = [d.strip() for d in domains.split(",")] if domains else None
    return scan(root, layout, variant=variant, domains=domain_list, verify=verify, strict=strict)


def _parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--fractions {text!r}: give three numbers like 0.8,0.1,0.1") from None
    if len(values) != 3:
        raise UsageError(f"--fractions {text!r}: give exactly three numbers (train,val,test)")
    return values[0], values[1], values[2]


def _read_classes_file(path: Path) -> tuple[str, ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: cannot read classes file: {err}") from None
    names = tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    if not names:
        raise UsageError(f"{path}: classes file lists no category")
    return names


@click.group(name="data")
def data() -> None:
    """Read, split and generate image collections."""


@data.command()
@click.argument("root", type=ROOT)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Split file to write (JSON).",
)
@click.option(
    "--policy",
    type=click.Choice(["soft", "hard"]),
    default="soft",
    show_default=True,
    help="soft: unseen images per category; hard: unseen categories (zero-shot).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fractions", default="0.8,0.1,0.1", show_default=True, metavar="TRAIN,VAL,TEST")
@click.option(
    "--classes-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Hard policy: categories to hold out as the test part, one per line.",
)
@click.option(
    "--small-categories",
    type=click.Choice(SMALL_CATEGORY_RULES),
    default="error",
    show_default=True,
    help="Soft policy: a category with fewer instances than parts fails (error), "
    "stays in train only (train) or is left out (drop).",
)
@scan_options
def split(
    root: Path,
    out: Path,
    policy: str,
    seed: int,
    fractions: str,
    classes_file: Path | None,
    small_categories: str,
    layout: str,
    variant: str,
    domains: str | None,
    verify: bool,
    strict: bool,
) -> None:
    """Split ROOT into train/val/test deterministically and write OUT.

    OUT records ROOT relative to itself, so `--split OUT:PART` finds the images without
    `--data` while the two keep their places (`--data` still overrides it).

    \b
    Examples:
      sketchsearch data split data/sketchy --out split.json --policy soft --seed 0
      sketchsearch data split data/sketchy --out zs.json --policy hard \\
          --classes-file zeroshot_test_classes.txt
    """
    from sketchsearch.data.report import describe_split, describe_warnings
    from sketchsearch.data.split_file import build_split_file, save_split
    from sketchsearch.data.splits import make_split

    config = SplitConfig(
        policy=policy,
        seed=seed,
        fractions=_parse_fractions(fractions),
        test_categories=_read_classes_file(classes_file) if classes_file else None,
        small_categories=small_categories,
    )
    collection = _scan(root, layout, variant, domains, verify, strict)
    result = make_split(collection, config)
    split_file = build_split_file(
        collection, config, result, classes_file.name if classes_file else None
    )
    save_split(split_file, out, data_root=root)  # recorded relative to OUT: --data optional
    if collection.warnings:
        click.echo(describe_warnings(collection), err=True)
    click.echo(describe_split(split_file, str(out)))


@data.command(short_help="Count ROOT's images per domain and category, and list misfits.")
@click.argument("root", type=ROOT)
@click.option(
    "--split",
    "split_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also show this split's parts, after checking it matches ROOT.",
)
@click.option(
    "--max-warnings",
    type=int,
    default=20,
    show_default=True,
    help="Warnings listed by name per kind (0: all).",
)
@scan_options
def info(
    root: Path,
    split_path: Path | None,
    max_warnings: int,
    layout: str,
    variant: str,
    domains: str | None,
    verify: bool,
    strict: bool,
) -> None:
    """Count the images of ROOT per domain and category, and list what does not fit.

    \b
    Example:
      sketchsearch data info data/sketchy --split split.json
    """
    from sketchsearch.data.report import describe_collection, describe_split, describe_warnings
    from sketchsearch.data.split_file import check_fingerprint, read_split

    split_file = read_split(split_path) if split_path is not None else None
    collection = _scan(root, layout, variant, domains, verify, strict)
    if split_file is not None:
        check_fingerprint(split_file, collection, str(split_path))
    click.echo(describe_collection(collection))
    click.echo("")
    click.echo(describe_warnings(collection, max_warnings))
    if split_file is not None:
        click.echo("")
        click.echo(describe_split(split_file, str(split_path)))


@data.command(short_help="Generate the synthetic demo data set (drawn photos and sketches).")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the Sketchy-layout data set into.",
)
@click.option("--categories", type=int, default=24, show_default=True)
@click.option("--photos-per-category", type=int, default=12, show_default=True)
@click.option("--sketches-per-photo", type=int, default=2, show_default=True)
@click.option("--size", type=int, default=128, show_default=True, help="Image side in pixels.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace a data set already in --out.")
@click.option(
    "--contact-sheet",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a PNG of a few categories, photos beside their sketches.",
)
def synth(
    out: Path,
    categories: int,
    photos_per_category: int,
    sketches_per_photo: int,
    size: int,
    seed: int,
    overwrite: bool,
    contact_sheet: Path | None,
) -> None:
    """Generate the synthetic demo data set (drawn objects: photos and hand-drawn sketches).

    \b
    Example:
      sketchsearch data synth --out demo-data --categories 24 --photos-per-category 12 \\
          --sketches-per-photo 2 --size 128 --seed 0 --contact-sheet sheet.png
    """
    from sketchsearch.data.synth import SynthConfig, generate

    config = SynthConfig(categories, photos_per_category, sketches_per_photo, size, seed)
    report = generate(out, config, overwrite=overwrite)
    click.echo(
        f"wrote {report.photos} photos and {report.sketches} sketches in "
        f"{len(report.categories)} categories to {report.root} in {report.seconds:.1f} s"
    )
    if contact_sheet is not None:
        _write_sheet(out, contact_sheet, 6, 3)


@data.command(short_help="Write a contact sheet PNG of ROOT: photos beside their sketches.")
@click.argument("root", type=ROOT)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--categories", type=int, default=6, show_default=True)
@click.option("--photos-per-category", type=int, default=3, show_default=True)
def sheet(root: Path, out: Path, categories: int, photos_per_category: int) -> None:
    """Write a contact sheet PNG of a Sketchy-layout ROOT: photos beside their sketches.

    \b
    Example:
      sketchsearch data sheet demo-data --out sheet.png --categories 8
    """
    _write_sheet(root, out, categories, photos_per_category)


def _write_sheet(root: Path, out: Path, categories: int, photos_per_category: int) -> None:
    from sketchsearch.data.contact_sheet import write_contact_sheet

    path = write_contact_sheet(
        root, out, categories=categories, photos_per_category=photos_per_category
    )
    click.echo(f"wrote contact sheet {path}")


@data.command(name="list", short_help="Print the image files of a split's part, one per line.")
@click.argument("split_spec", metavar="SPLIT[:PART]")
@click.option(
    "--data",
    "data_root",
    type=ROOT,
    help="Data root of the split (default: the one `data split` recorded in it).",
)
@click.option("--domain", help="Only this domain (e.g. sketch).")
@click.option("--per-category", type=int, help="At most N images of each category.")
@click.option("--limit", type=int, help="At most N images in all.")
def list_items(
    split_spec: str,
    data_root: Path | None,
    domain: str | None,
    per_category: int | None,
    limit: int | None,
) -> None:
    """Print the image files of a split's part, one per line (for `retrieve --queries-from -`).

    \b
    Example:
      sketchsearch data list split.json:test --domain sketch --per-category 1 \\
          | retrieve --engine model.onnx --queries-from -
    """
    from sketchsearch.data.split_spec import parse_split_spec

    part = parse_split_spec(split_spec, data_root)
    seen: dict[str, int] = {}
    shown = 0
    for item in part.items(domain):
        if per_category is not None and seen.get(item.category, 0) >= per_category:
            continue
        if limit is not None and shown >= limit:
            break
        seen[item.category] = seen.get(item.category, 0) + 1
        shown += 1
        click.echo(str(part.path(item)))
