"""A Triton model repository for an exported model: `sketchsearch export triton`.

``REPO/NAME/VERSION/model.onnx`` (or ``model.plan``) and ``REPO/NAME/config.pbtxt``, with the
inputs and outputs read from the ONNX graph, dynamic batching, an instance group, and the model
card as a config parameter, so a client recovers the preprocessing and the family from the
server (``client.get_model_config``) instead of guessing.

A TensorRT plan cannot be opened without TensorRT and a GPU, so its facts come from files we
wrote: the tensor names and dims from the ONNX it was built from (hence ``--onnx`` always), the
optimization profile from the sidecar card ``sketchsearch export tensorrt`` writes beside it.

The model folder is staged beside the repository, not in it: Triton loads every folder of the
repository, hidden ones included, so a run killed mid-copy must leave nothing there. It is then
moved in by renames that each leave a consistent state: Triton never sees a config whose model
file is missing or half-written. The config is shared by every version of a model, so adding a
version whose config differs is refused rather than silently changing the older versions'.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from sketchsearch.data.errors import ExitCode, SketchsearchError, UsageError
from sketchsearch.export.onnx_file import load_model
from sketchsearch.export.triton_config import (
    KINDS,
    TRITON_EXTRA,
    TritonModelConfig,
    check_config,
    graph_tensors,
)
from sketchsearch.gallery.commit import crash_point
from sketchsearch.runtime.model_card import (
    ModelCard,
    ModelCardError,
    TensorRTInfo,
    card_from_metadata,
    read_sidecar,
)


class PlanMismatchError(SketchsearchError):
    """A TensorRT plan whose card names another model than the --onnx given with it."""

    exit_code = ExitCode.MISMATCH


PLATFORMS = {".onnx": "onnxruntime_onnx", ".plan": "tensorrt_plan"}
DEFAULT_MAX_BATCH = 64  # an ONNX model's default; a plan's is its profile's max batch
CONFIG_FILE = "config.pbtxt"
# A model name Triton loads as a folder: no path parts, no hidden folder, none of the folder
# names Triton's repository reserves for other uses.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
RESERVED_NAMES = frozenset({"graphs", "op_defs", "resource"})
# The widths of model_config.proto's fields: a larger number would not parse in Triton.
INT32_MAX, INT64_MAX, UINT64_MAX = 2**31 - 1, 2**63 - 1, 2**64 - 1


@dataclass(frozen=True)
class TritonRepoOptions:
    """What `sketchsearch export triton` is asked for; None: the documented default."""

    onnx: Path
    repo: Path
    plan: Path | None = None
    name: str = "sketchsearch"
    version: int = 1
    max_batch: int | None = None  # None: 64 for ONNX, the profile's max batch for a plan
    preferred_batch: tuple[int, ...] = ()  # empty: Triton forms the largest batch it can
    max_queue_delay_us: int = 0  # Triton's default: batch what is queued, wait for nothing
    instances: int = 1
    kind: str | None = None  # None: "auto" for ONNX, "gpu" for a plan
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name) or self.name in RESERVED_NAMES:
            raise UsageError(
                f"--name {self.name!r}: use letters, digits, '_', '.' and '-', not starting with "
                f"'.' or '-', and none of {', '.join(sorted(RESERVED_NAMES))}; e.g. sketchsearch"
            )
        _check_range("--model-version", self.version, 1, INT64_MAX)
        _check_range("--instances", self.instances, 1, INT32_MAX)
        if self.max_batch is not None:
            _check_range("--max-batch", self.max_batch, 1, INT32_MAX)
        _check_range("--max-queue-delay-us", self.max_queue_delay_us, 0, UINT64_MAX)
        if self.kind is not None and self.kind not in KINDS:
            raise UsageError(f"--kind must be one of {sorted(KINDS)}, not {self.kind!r}")
        if self.plan is not None and self.kind == "cpu":
            raise UsageError("--kind cpu: Triton's TensorRT backend runs on GPUs only")
        if self.plan is not None and self.plan.suffix != ".plan":
            raise UsageError(f"--plan {self.plan}: Triton's TensorRT backend loads a .plan file")

    @property
    def model_file(self) -> Path:
        return self.plan if self.plan is not None else self.onnx


def _check_range(flag: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise UsageError(f"{flag} must be from {low} to {high}, not {value}")


@dataclass(frozen=True)
class TritonRepoReport:
    model_dir: Path
    config: TritonModelConfig
    schema_checked_with: str | None  # the tritonclient version, None when not installed
    plan: TensorRTInfo | None = None  # what a served plan is tied to

    def lines(self) -> list[str]:
        config = self.config
        batching = ", ".join(str(s) for s in config.preferred_batch_sizes) or "any"
        lines = [
            f"wrote {self.model_dir}: {config.platform}, max batch {config.max_batch_size}, "
            f"preferred {batching}, queue delay {config.max_queue_delay_us} µs, "
            f"{config.instances} instance(s) {KINDS[config.kind]}",
        ]
        for role, tensors in (("input", config.inputs), ("output", config.outputs)):
            for t in tensors:
                lines.append(
                    f"  {role} {t.name}: {t.data_type} [-1, {', '.join(map(str, t.dims))}]"
                )
        if self.plan is not None:
            lines.append(
                f"  plan built with TensorRT {self.plan.version or '(not recorded)'} on "
                f"{self.plan.gpu_name or '(GPU not recorded)'}: Triton loads it only with "
                "that TensorRT version (pick the tritonserver release that ships it) on that GPU"
            )
        if self.schema_checked_with is None:
            lines.append(f"-[ ] config not checked against Triton's schema: {TRITON_EXTRA}")
        else:
            checked = f"tritonclient {self.schema_checked_with}"
            lines.append(
                f"-[✓] config parsed by Triton's ModelConfig ({checked}): field names and "
                "types only; the server's own checks run when it loads the model"
            )
        return lines


def export_triton(options: TritonRepoOptions) -> TritonRepoReport:
    """Describe, check, stage beside the repository and move the model folder into it."""
    config = describe_model(options)
    text = config.to_pbtxt()
    checked = check_config(text, f"{options.name}/{CONFIG_FILE}")
    model_dir = options.repo / options.name
    check_destination(options, text)
    staging_root = stage(options, text)
    try:
        crash_point("triton-staged")
        commit(staging_root / options.name, model_dir, options.version)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
    card = ModelCard.from_json(config.card_json, str(options.model_file))
    return TritonRepoReport(
        model_dir, config, checked, card.tensorrt if options.plan is not None else None
    )


def describe_model(options: TritonRepoOptions) -> TritonModelConfig:
    """The config's facts: tensors from the ONNX graph, the card, and the checked batching."""
    model = _load_graph(options.onnx)
    source = str(options.onnx)
    card = card_from_metadata({p.key: p.value for p in model.metadata_props}, source)
    initializers = {i.name for i in model.graph.initializer}
    graph_inputs = [v for v in model.graph.input if v.name not in initializers]
    inputs = graph_tensors(graph_inputs, source, "input")
    outputs = graph_tensors(model.graph.output, source, "output")
    if options.plan is not None:
        card, profile = plan_card(options.plan, card)
        max_batch = plan_max_batch(options, profile)
    else:
        max_batch = options.max_batch or DEFAULT_MAX_BATCH
    check_preferred(options.preferred_batch, max_batch)
    return TritonModelConfig(
        name=options.name,
        platform=PLATFORMS[options.model_file.suffix],
        max_batch_size=max_batch,
        inputs=inputs,
        outputs=outputs,
        preferred_batch_sizes=options.preferred_batch,
        max_queue_delay_us=options.max_queue_delay_us,
        instances=options.instances,
        kind=options.kind or ("gpu" if options.plan is not None else "auto"),
        card_json=card.to_json(),
    )


def _load_graph(path: Path) -> onnx.ModelProto:
    """The graph and its metadata; a model with external weights is refused, since only
    ``model.onnx`` is copied into the repository."""
    from onnx.external_data_helper import uses_external_data

    model = load_model(path, load_external_data=False)
    if any(uses_external_data(tensor) for tensor in model.graph.initializer):
        raise UsageError(
            f"{path}: weights in external data files; Triton's repository gets one model.onnx: "
            "re-save it with onnx.save(model, path, save_as_external_data=False)"
        )
    return model


def plan_card(plan: Path, onnx_card: ModelCard) -> tuple[ModelCard, TensorRTInfo]:
    """The plan's sidecar card and profile; the card must come from the same model as the ONNX."""
    if not plan.is_file():
        raise UsageError(f"--plan {plan}: file not found")
    card = read_sidecar(plan)
    if card.tensorrt is None:
        raise ModelCardError(
            f"{plan}: its card records no TensorRT profile; rebuild it with "
            "`sketchsearch export tensorrt`"
        )
    same = ("family", "input_name", "input_dtype", "output_names", "precision", "preprocess")
    differing = [f for f in same if getattr(card, f) != getattr(onnx_card, f)]
    if differing:
        raise PlanMismatchError(
            f"{plan}: built from another model than the --onnx (card {', '.join(differing)} "
            "differ): pass the ONNX file the plan was built from"
        )
    return card, card.tensorrt


def plan_max_batch(options: TritonRepoOptions, info: TensorRTInfo) -> int:
    """Triton refuses a max_batch_size above the profile's max; and its batcher sends every
    batch size from 1 up, which a profile with min batch > 1 cannot run."""
    if info.min_batch > 1:
        raise UsageError(
            f"{options.plan}: its profile's min batch is {info.min_batch}; Triton sends batches "
            "from 1: rebuild it with `sketchsearch export tensorrt --min-batch 1`"
        )
    max_batch = options.max_batch or info.max_batch
    if max_batch > info.max_batch:
        raise UsageError(
            f"--max-batch {max_batch}: {options.plan}'s profile allows batches up to "
            f"{info.max_batch} and Triton refuses a larger max_batch_size: pass --max-batch "
            f"{info.max_batch} or rebuild with `sketchsearch export tensorrt --max-batch "
            f"{max_batch}`"
        )
    return max_batch


def check_preferred(sizes: tuple[int, ...], max_batch: int) -> None:
    bad = [s for s in sizes if not 1 <= s <= max_batch]
    if bad or len(set(sizes)) != len(sizes):
        raise UsageError(
            f"--preferred-batch {','.join(map(str, sizes))}: give distinct sizes from 1 to the "
            f"max batch {max_batch}"
        )


def check_destination(options: TritonRepoOptions, text: str) -> None:
    """Refuse before anything is written: paths that are files, an existing version without
    --overwrite, and a new version whose config would change the one all versions share."""
    repo, model_dir = options.repo, options.repo / options.name
    version_dir = model_dir / str(options.version)
    existing = next(p for p in (repo, *repo.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"--out {repo}: {existing} is a file: give a folder for the repository")
    if model_dir.exists() and not model_dir.is_dir():
        raise UsageError(f"{model_dir}: a file where the model folder goes: move it or use --name")
    if version_dir.exists() and not version_dir.is_dir():
        raise UsageError(f"{version_dir}: a file where the version folder goes: move it")
    if options.overwrite:
        return
    if version_dir.exists():
        raise UsageError(
            f"{version_dir} exists: pass --overwrite to replace it, or --model-version "
            f"{_next_version(model_dir)} to add a version"
        )
    config = model_dir / CONFIG_FILE
    if config.is_file() and config.read_text(encoding="utf-8") != text:
        raise UsageError(
            f"{config} differs from the config for version {options.version}, and all versions "
            "share it: pass --overwrite to replace it for every version, or --name for "
            "another model"
        )


def _next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.iterdir() if p.name.isdecimal()]
    return max(versions, default=0) + 1


def stage(options: TritonRepoOptions, text: str) -> Path:
    """A complete model folder in a fresh folder beside the repository (whose parent is usually
    on the same file system, so the renames that follow are atomic); returns that folder.

    Beside, not in: Triton loads every folder of the repository, hidden ones too, and fails on
    a half-staged one. Leftovers of earlier killed runs for the same repository and name are
    removed first.
    """
    repo = options.repo.resolve()
    if repo.parent == repo:
        raise UsageError(f"--out {options.repo}: give a folder below {repo}, not the root")
    repo.mkdir(parents=True, exist_ok=True)  # check_destination saw no file in the way
    if repo.stat().st_dev != repo.parent.stat().st_dev:
        raise UsageError(_cross_device(options.repo, repo.parent))
    remove_leftovers(repo, options.name)
    root = Path(tempfile.mkdtemp(prefix=_staging_prefix(repo, options.name), dir=repo.parent))
    try:
        version_dir = root / options.name / str(options.version)
        version_dir.mkdir(parents=True)  # under the mkdtemp folder: normal permissions
        model = options.model_file
        shutil.copyfile(model, version_dir / f"model{model.suffix}")
        (root / options.name / CONFIG_FILE).write_text(text, encoding="utf-8")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return root


def _staging_prefix(repo: Path, name: str) -> str:
    return f".{repo.name}.{name}.staging-{os.getpid()}-"


def remove_leftovers(repo: Path, name: str) -> None:
    """Remove staging folders of our own killed runs: exactly our prefix, of a dead process."""
    pattern = re.compile(re.escape(f".{repo.name}.{name}.staging-") + r"(\d+)-[a-z0-9_]+")
    with os.scandir(repo.parent) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and entry.is_dir(follow_symlinks=False) and not _alive(int(match[1])):
                shutil.rmtree(entry.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _cross_device(repo: Path, parent: Path) -> str:
    return (
        f"--out {repo}: on another file system than {parent}, where the model folder is staged "
        "so that Triton never sees it half-written: use a repository folder that is not a "
        "mount point"
    )


def commit(staged: Path, model_dir: Path, version: int) -> None:
    """Move the staged model folder in; after each rename Triton sees whole model files.

    A new model: one rename of the whole folder. An existing one: the new version folder, or
    the model file of an overwritten version (it replaces the old file of the same name);
    then the config, which all versions share, only where it changes (check_destination let
    that through only with --overwrite); then the stale model file of the other format, once
    no config names it.
    """
    try:
        if not model_dir.exists():
            os.replace(staged, model_dir)
            return
        version_dir = model_dir / str(version)
        (model_file,) = (staged / str(version)).iterdir()
        if version_dir.exists():
            os.replace(model_file, version_dir / model_file.name)
        else:
            os.replace(staged / str(version), version_dir)
        crash_point("triton-model-moved")
        config = model_dir / CONFIG_FILE
        text = (staged / CONFIG_FILE).read_text(encoding="utf-8")
        if not config.is_file() or config.read_text(encoding="utf-8") != text:
            os.replace(staged / CONFIG_FILE, config)
        for suffix in PLATFORMS:
            stale = version_dir / f"model{suffix}"
            if stale.name != model_file.name:
                stale.unlink(missing_ok=True)
    except OSError as err:
        if err.errno == errno.EXDEV:
            raise UsageError(_cross_device(model_dir.parent, staged.parent.parent)) from None
        raise
