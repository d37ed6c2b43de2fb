"""The plan of an ``embed`` run and the run file that pins it to its shards folder.

A plan is the collection's listing, sorted by path so that every run slices it the same way,
cut into shards of ``shard_size`` images. Its fingerprint covers the listing, the slicing, the
model family and the stored dtype: two runs with the same fingerprint write the same shards, so
a rerun may keep the shards a killed run finished and embed only the missing ones. A different
plan in the same folder would mix slicings (an image in two shards, or in none); it is refused,
as is a folder holding another model family's shards (their vectors are not comparable).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sketchsearch.data.atomic_file import write_text_atomic
from sketchsearch.data.errors import UsageError
from sketchsearch.data.strict_json import dumps
from sketchsearch.gallery.errors import GalleryCorruptError, GalleryMismatchError
from sketchsearch.gallery.manifest import GallerySource, ModelRef
from sketchsearch.gallery.shard_file import (
    SHARD_DTYPES,
    SHARD_NAME,
    ShardHeader,
    list_shards,
    read_header,
)
from sketchsearch.runtime.gallery_build import Source
from sketchsearch.runtime.model_card import ModelCard
from sketchsearch.runtime.retriever import model_ref

RUN_FILE = "embed-run.json"
RUN_FORMAT = "sketchsearch.embed-run"
RUN_FORMAT_VERSION = 1
FAILURES_NAME = "failures-{index:05d}.jsonl"
LISTING_FAILURES = "failures-listing.jsonl"
# The Ray runner's file lists of the pending shards, read by the actors (rewritten each run).
LISTING_FILE = "embed-listing.jsonl"
# Exactly the files this module writes into a shards folder: --restart deletes only these.
FAILURES_FILE = re.compile(r"^failures-(\d{5,}|listing)\.jsonl$")
# The temporary names of write_shard and write_text_atomic for those files (kill -9 leftovers).
OUR_TEMPORARY = re.compile(
    r"^\.(shard-\d{5,}\.parquet|failures-(\d{5,}|listing)\.jsonl|embed-run\.json"
    r"|embed-listing\.jsonl)"
    r"\.[0-9a-f]{16}\.tmp$"
)
# 10,000 images a shard: ~20 MB of 512-d float32 vectors, a few minutes of one CPU worker, so a
# killed run loses minutes, and 100M images are 10,000 shards (a folder listing stays cheap).
DEFAULT_SHARD_SIZE = 10_000


@dataclass(frozen=True)
class ShardSpec:
    """What every shard of a run shares: small, so it can travel to Ray workers."""

    root: Path
    source: GallerySource
    model: ModelRef
    preprocess: dict[str, Any]
    shard_size: int
    dtype: str
    fingerprint: str

    def header(self, index: int, rows: int, extra: dict[str, Any] | None = None) -> ShardHeader:
        return ShardHeader(
            model=self.model,
            preprocess=self.preprocess,
            root=str(self.root),
            source=self.source,
            dtype=self.dtype,
            index=index,
            plan=self.fingerprint,
            rows=rows,
            extra=extra or {},
        )


@dataclass(frozen=True)
class EmbedPlan:
    """What a run embeds and how it slices it; ``spec.fingerprint`` identifies the whole."""

    spec: ShardSpec
    sources: tuple[Source, ...]  # sorted by path

    @property
    def shards(self) -> int:
        return -(-len(self.sources) // self.spec.shard_size)

    def shard_sources(self, index: int) -> tuple[Source, ...]:
        size = self.spec.shard_size
        return self.sources[index * size : (index + 1) * size]


def make_plan(
    card: ModelCard,
    sources: list[Source] | tuple[Source, ...],
    root: Path,
    source: GallerySource,
    shard_size: int = DEFAULT_SHARD_SIZE,
    dtype: str = "float32",
) -> EmbedPlan:
    """The plan for ``sources``; a path listed twice is embedded once."""
    if shard_size < 1:
        raise UsageError(f"--shard-size must be at least 1, not {shard_size}")
    if dtype not in SHARD_DTYPES:
        raise UsageError(f"--dtype {dtype}: use one of {', '.join(SHARD_DTYPES)}")
    unique = {s.path: s for s in sources}
    ordered = tuple(unique[path] for path in sorted(unique))
    model = model_ref(card)
    digest = hashlib.sha256()
    # The root is part of the plan: the same relative paths under another root are other
    # images. The split file's spelling is not (its fingerprint identifies the split).
    head = {
        "shard_size": shard_size,
        "dtype": dtype,
        "family": model.family,
        "dim": model.dim,
        "root": str(root.resolve()),
        "source": asdict(replace(source, split_file=None)),
    }
    digest.update(dumps(head, sort_keys=True).encode())
    for item in ordered:
        digest.update(dumps([item.path, item.label, item.instance]).encode() + b"\n")
    spec = ShardSpec(
        root=root.resolve(),
        source=source,
        model=model,
        preprocess=card.preprocess.to_dict(),
        shard_size=shard_size,
        dtype=dtype,
        fingerprint=digest.hexdigest()[:32],
    )
    return EmbedPlan(spec, ordered)


def run_record(plan: EmbedPlan) -> dict[str, Any]:
    """The run file's content: the plan, for people and for the next run's check."""
    spec = plan.spec
    return {
        "format": RUN_FORMAT,
        "version": RUN_FORMAT_VERSION,
        "plan": spec.fingerprint,
        "model": asdict(spec.model),
        "preprocess": spec.preprocess,
        "root": str(spec.root),
        "source": asdict(spec.source),
        "shard_size": spec.shard_size,
        "dtype": spec.dtype,
        "images": len(plan.sources),
        "shards": plan.shards,
    }


def prepare_folder(out: Path, plan: EmbedPlan, restart: bool = False) -> list[int]:
    """Check ``out`` against ``plan``, record the plan in it, and return the shards to embed.

    Refused before anything is embedded: a folder whose run file or failures files this
    command did not write (use a new folder), another model family's shards or run (exit 4),
    and another plan's (use a new folder or ``--restart``). ``restart`` deletes this folder's
    shards, failures files and run file first, and nothing else. Temporary files a killed run
    left are removed (two runs into one folder at once are not supported).
    """
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / RUN_FILE
    recorded = _read_run_file(run_file) if run_file.exists() else None
    if recorded is None:  # not (yet) an embed folder: none of its files may be lost
        _check_failures_files(out)
        if (out / LISTING_FILE).exists():
            raise UsageError(
                f"{out / LISTING_FILE}: not written by this folder's embed run; this is not an "
                "embed folder: embed into a new folder"
            )
    _remove_our_temporaries(out)
    if restart:
        _clear(out)
    elif recorded is not None:
        _check_run_file(run_file, recorded, plan)
    done = _finished_shards(out, plan)
    write_text_atomic(run_file, str(dumps(run_record(plan), sort_keys=True, indent=2)) + "\n")
    return [index for index in range(plan.shards) if index not in done]


def _read_run_file(run_file: Path) -> dict[str, Any]:
    """The run file's content; one this command did not write is refused, even by --restart."""
    try:
        recorded = json.loads(run_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(
            f"{run_file}: not an embed run file ({err}); this is not an embed folder: embed "
            "into a new folder"
        ) from None
    if not isinstance(recorded, dict) or recorded.get("format") != RUN_FORMAT:
        raise UsageError(
            f"{run_file}: not an embed run file; this is not an embed folder: embed into a "
            "new folder"
        )
    return recorded


def _check_run_file(run_file: Path, recorded: dict[str, Any], plan: EmbedPlan) -> None:
    try:
        model = ModelRef.from_dict(recorded["model"], str(run_file))
        fingerprint = str(recorded["plan"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise GalleryCorruptError(
            f"{run_file}: damaged embed run file ({err}); use a new folder or --restart"
        ) from None
    _check_family(run_file, model, plan)
    if fingerprint != plan.spec.fingerprint:
        raise UsageError(
            f"{run_file.parent}: holds another embed run ({recorded.get('images')} images "
            f"under {recorded.get('root')}, shard size {recorded.get('shard_size')}, "
            f"{recorded.get('dtype')}; plan {fingerprint}), not this one ({len(plan.sources)} "
            f"images under {plan.spec.root}, shard size {plan.spec.shard_size}, "
            f"{plan.spec.dtype}; plan {plan.spec.fingerprint}): embed into a new folder, or "
            "pass --restart to delete its shards and start over"
        )


def _check_failures_files(out: Path) -> None:
    """Every ``failures-*.jsonl`` here is ours, so rewriting or removing one loses nothing."""
    for path in out.iterdir():
        if FAILURES_FILE.match(path.name) and not is_failures_file(path):
            raise UsageError(
                f"{path}: not an embed failures file; this is not an embed folder: embed into "
                "a new folder"
            )


def is_failures_file(path: Path) -> bool:
    """Whether ``path`` is a failures file as :func:`embed_shard.write_failures` writes it."""
    try:
        if not path.is_file():
            return False
        for line in path.read_text(encoding="utf-8").splitlines():
            raw = json.loads(line)
            if not isinstance(raw, dict) or set(raw) != {"path", "problem"}:
                return False
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def _remove_our_temporaries(out: Path) -> None:
    for path in out.iterdir():
        if OUR_TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)


def _check_family(where: Path, model: ModelRef, plan: EmbedPlan) -> None:
    if model.family != plan.spec.model.family or model.dim != plan.spec.model.dim:
        raise GalleryMismatchError(
            f"{where}: made by model {model.describe()}, but this run embeds with "
            f"{plan.spec.model.describe()}: shards of different model families cannot be mixed; "
            "embed into a new folder"
        )


def _finished_shards(out: Path, plan: EmbedPlan) -> set[int]:
    """The shards already written for this plan; any other family or plan is refused."""
    done: set[int] = set()
    for path in list_shards(out):
        try:
            header: ShardHeader = read_header(path)
        except GalleryCorruptError as err:
            raise GalleryCorruptError(
                f"{err}; delete that shard to embed it again (the others are kept)"
            ) from None
        _check_family(path, header.model, plan)
        if header.plan != plan.spec.fingerprint or header.index >= plan.shards:
            raise UsageError(
                f"{path}: a shard of another embed run (plan {header.plan}, this one "
                f"{plan.spec.fingerprint}): embed into a new folder, or pass --restart"
            )
        if header.index != shard_index(path):
            raise GalleryCorruptError(
                f"{path}: its header says it is shard {header.index}; delete that shard to "
                "embed it again (the others are kept)"
            )
        done.add(header.index)
    return done


def shard_index(path: Path) -> int:
    """The shard number in a shard's file name."""
    named = SHARD_NAME.match(path.name)
    if named is None:
        raise ValueError(f"{path}: not a shard name")
    return int(named.group(1))


def _clear(out: Path) -> None:
    """Delete this command's files only: shards with a readable header, failures files."""
    for path in out.iterdir():
        if not path.is_file():
            continue
        if SHARD_NAME.match(path.name):
            try:
                read_header(path)
            except GalleryCorruptError:
                continue  # not provably ours: kept; the next check names it
            path.unlink()
        elif FAILURES_FILE.match(path.name) or path.name in (RUN_FILE, LISTING_FILE):
            path.unlink()  # checked to be ours by prepare_folder


def failures_path(out: Path, index: int) -> Path:
    return out / FAILURES_NAME.format(index=index)
