"""ONNX → TensorRT engine (``.plan``) with its sidecar card: `sketchsearch export tensorrt`.

The engine takes its precision from the ONNX graph, as a strongly typed network: fp16 weights
give an fp16 engine and Q/DQ nodes an int8 one. TensorRT 11 removed the FP16/INT8 builder
flags and 10.x deprecates them, so they are set only where a 10.x build cannot be strongly
typed. The ``.plan`` stays a pure TensorRT engine, as TensorRT's own tools expect; the
card (the ONNX card plus what the engine is tied to) goes to ``model.plan.json``.

The decisions are plain functions, tested without TensorRT or a GPU; only ``build_engine``
touches TensorRT, and it imports it when called.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sketchsearch.data.errors import UsageError
from sketchsearch.data.imagefile import image_files
from sketchsearch.export.onnx_file import load_model
from sketchsearch.export.tensorrt_lint import LintReport, lint_model, require_compatible
from sketchsearch.export.verify import (
    VerificationError,
    VerificationReport,
    compare,
    onnx_embeddings,
)
from sketchsearch.runtime.engines.protocol import (
    BackendUnavailableError,
    Engine,
    EngineError,
)
from sketchsearch.runtime.engines.table import backend_named
from sketchsearch.runtime.engines.tensorrt_engine import (
    EMBEDDING,
    TensorRTEngine,
    TensorRTTarget,
    current_target,
)
from sketchsearch.runtime.model_card import (
    ModelCard,
    TensorRTInfo,
    read_onnx_card,
    sidecar_path,
    write_sidecar,
)
from sketchsearch.runtime.preprocess import preprocess_batch

if TYPE_CHECKING:
    import tensorrt as trt
    from typing_extensions import Buffer

WEAK_TYPING_FLAGS: dict[str, tuple[str, ...]] = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8",)}
GIB = 1 << 30


@dataclass(frozen=True)
class BatchProfile:
    """The one optimization profile: batch sizes the engine accepts, and the one it tunes for."""

    min: int = 1
    opt: int = 8
    max: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise UsageError(
                "batch sizes must satisfy 1 <= --min-batch <= --opt-batch <= --max-batch, got "
                f"{self.min}, {self.opt}, {self.max}"
            )

    def shapes(self, input_size: int) -> tuple[tuple[int, ...], ...]:
        """Input shapes (min, opt, max): NHWC, as the card's input is."""
        return tuple((batch, input_size, input_size, 3) for batch in (self.min, self.opt, self.max))


@dataclass(frozen=True)
class TensorRTExportConfig:
    onnx: Path
    output: Path
    profile: BatchProfile = BatchProfile()
    workspace_gb: float | None = None  # None: TensorRT's default (the GPU's memory)
    timing_cache: Path | None = None  # read when it exists, written after the build
    images: Path | None = None  # verification images; None: no verification
    lint: bool = True  # refuse a graph that breaks a parser rule, before TensorRT is needed

    def __post_init__(self) -> None:
        suffixes = backend_named("tensorrt").suffixes
        if self.output.suffix not in suffixes:
            raise UsageError(
                f"--output {self.output}: use a {' or '.join(suffixes)} name, which "
                "is how the runtime recognises a TensorRT engine"
            )
        if self.workspace_gb is not None and not self.workspace_gb > 0:
            raise UsageError(f"--workspace-gb must be positive, not {self.workspace_gb}")


@dataclass(frozen=True)
class PrecisionPlan:
    """How the precision of the ONNX model reaches the engine."""

    strongly_typed: bool
    network_flags: tuple[str, ...]  # NetworkDefinitionCreationFlag names for create_network
    builder_flags: tuple[str, ...]  # BuilderFlag names for set_flag
    cleared_flags: tuple[str, ...] = ()  # BuilderFlag names for clear_flag


def tensorrt_major(version: str) -> int:
    try:
        major = int(version.split(".", 1)[0])
    except ValueError:
        raise BackendUnavailableError(f"unrecognised TensorRT version {version!r}") from None
    if major < 10:
        raise BackendUnavailableError(
            f"TensorRT {version} is too old: sketchsearch builds engines with TensorRT 10 or 11"
        )
    return major


def plan_precision(
    precision: str, version: str, network_flags: object, builder_flags: object
) -> PrecisionPlan:
    """Strong typing where TensorRT has it; the 10.x weak-typing flags only where it has not.

    ``network_flags`` and ``builder_flags`` are ``trt.NetworkDefinitionCreationFlag`` and
    ``trt.BuilderFlag``: which names they hold is what differs between TensorRT releases. TF32
    (on by default) is turned off for an fp32 model: its 10-bit mantissa is not fp32, and fp32
    engines are verified to a cosine of 0.9999.
    """
    tf32 = ("TF32",) if precision == "fp32" and hasattr(builder_flags, "TF32") else ()
    if tensorrt_major(version) >= 11:  # always strongly typed; the flag is deprecated, ignored
        return PrecisionPlan(True, (), (), tf32)
    if hasattr(network_flags, "STRONGLY_TYPED"):  # precision flags are errors in this mode
        return PrecisionPlan(True, ("STRONGLY_TYPED",), (), tf32)
    needed = WEAK_TYPING_FLAGS[precision]
    missing = [name for name in needed if not hasattr(builder_flags, name)]
    if missing:
        raise BackendUnavailableError(
            f"TensorRT {version} can neither build strongly typed networks nor has "
            f"BuilderFlag.{missing[0]} for this {precision} model: install TensorRT 10 or 11"
        )
    return PrecisionPlan(False, (), needed, tf32)


def check_network(
    inputs: Sequence[tuple[str, tuple[int, ...]]],
    outputs: Sequence[str],
    card: ModelCard,
    profile: BatchProfile,
    source: Path,
) -> None:
    """The parsed ONNX must have the card's one NHWC input and an embedding output."""
    size = card.input_size
    if [name for name, _ in inputs] != [card.input_name]:
        raise EngineError(
            f"{source}: inputs {[name for name, _ in inputs]}, the card says [{card.input_name!r}]"
        )
    shape = inputs[0][1]
    expected = (size, size, 3)
    if len(shape) != 4 or any(d not in (-1, e) for d, e in zip(shape[1:], expected, strict=True)):
        raise EngineError(
            f"{source}: input shape {list(shape)}, the card says [N, {size}, {size}, 3]"
        )
    if shape[0] != -1 and {profile.min, profile.opt, profile.max} != {shape[0]}:
        raise UsageError(
            f"{source}: the model has a fixed batch size of {shape[0]}: pass --min-batch, "
            f"--opt-batch and --max-batch {shape[0]}, or export it with a dynamic batch axis"
        )
    if EMBEDDING not in outputs:
        raise EngineError(f"{source}: outputs {list(outputs)} lack {EMBEDDING!r}")


def engine_info(card: ModelCard, target: TensorRTTarget, profile: BatchProfile) -> TensorRTInfo:
    """What the sidecar adds to the ONNX card: the TensorRT and GPU the engine only loads on."""
    return TensorRTInfo(
        version=target.version,
        gpu_name=target.gpu_name,
        compute_capability=target.compute_capability,
        min_batch=profile.min,
        opt_batch=profile.opt,
        max_batch=profile.max,
        precision=card.precision,
    )


def write_atomic(path: Path, data: Buffer) -> None:
    """Readers see the old file or the new one, never a half-written engine."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def build_engine(config: TensorRTExportConfig, card: ModelCard) -> None:
    """Parse, configure one profile, build and write ``config.output`` (TensorRT 10 and 11)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    plan = plan_precision(
        card.precision, trt.__version__, trt.NetworkDefinitionCreationFlag, trt.BuilderFlag
    )
    builder = trt.Builder(logger)
    flags = sum(1 << int(getattr(trt.NetworkDefinitionCreationFlag, n)) for n in plan.network_flags)
    network = builder.create_network(flags)
    # The parser owns the weights the network points to: it must live until the build is done.
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(config.onnx)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineError(f"{config.onnx}: TensorRT cannot parse the model: {'; '.join(errors)}")
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    check_network(
        [(t.name, tuple(int(t.shape[d]) for d in range(len(t.shape)))) for t in inputs],
        [network.get_output(i).name for i in range(network.num_outputs)],
        card,
        config.profile,
        config.onnx,
    )
    builder_config = _builder_config(builder, config, card, plan)
    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise EngineError(f"{config.onnx}: TensorRT could not build the engine (see its log above)")
    write_atomic(config.output, serialized)
    if config.timing_cache is not None:
        write_atomic(config.timing_cache, builder_config.get_timing_cache().serialize())


def _builder_config(
    builder: trt.Builder, config: TensorRTExportConfig, card: ModelCard, plan: PrecisionPlan
) -> trt.IBuilderConfig:
    """Workspace, precision flags, the batch profile and the timing cache."""
    import tensorrt as trt

    builder_config = builder.create_builder_config()
    if config.workspace_gb is not None:
        pool = trt.MemoryPoolType.WORKSPACE
        builder_config.set_memory_pool_limit(pool, int(config.workspace_gb * GIB))
    for name in plan.builder_flags:
        builder_config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan.cleared_flags:
        builder_config.clear_flag(getattr(trt.BuilderFlag, name))
    profile = builder.create_optimization_profile()
    low, opt, high = (trt.Dims(list(s)) for s in config.profile.shapes(card.input_size))
    profile.set_shape(card.input_name, low, opt, high)
    builder_config.add_optimization_profile(profile)
    _attach_timing_cache(builder_config, config.timing_cache)
    return builder_config


def _attach_timing_cache(builder_config: trt.IBuilderConfig, path: Path | None) -> None:
    """Reuse earlier tactic timings: a rebuild on the same GPU takes seconds, not minutes."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = builder_config.create_timing_cache(data)
    if not builder_config.set_timing_cache(cache, ignore_mismatch=False):
        raise UsageError(
            f"--timing-cache {path}: made with another TensorRT version or GPU: delete it or "
            "name another file"
        )


def image_paths(directory: Path) -> list[Path]:
    return image_files(directory, "--images")


def verify_engine(
    engine: Engine, onnx: Path, images: Sequence[Path], source: str
) -> VerificationReport:
    """The engine against onnxruntime (CPU) on the same real images, preprocessed once."""
    card = engine.card
    batch = preprocess_batch(images, card.preprocess)
    reference = onnx_embeddings(onnx, batch, card.input_name, card.input_dtype)
    return compare(reference, engine.embed(batch), card.precision, source)


@dataclass(frozen=True)
class TensorRTExportReport:
    output: Path
    info: TensorRTInfo
    seconds: float
    size_bytes: int
    timing_cache: Path | None
    verification: VerificationReport | None
    tensorrt_lint: LintReport | None = None

    def lines(self) -> list[str]:
        info = self.info
        lines = [
            f"{self.output}: {info.precision} engine, batch {info.min_batch}/"
            f"{info.opt_batch}/{info.max_batch}, {self.size_bytes / 1e6:.1f} MB, built in "
            f"{self.seconds:.1f} s for {TensorRTTarget.of(info).describe()}",
            f"card: {sidecar_path(self.output)}",
        ]
        if self.timing_cache is not None:
            lines.append(f"timing cache: {self.timing_cache}")
        if self.tensorrt_lint is not None:
            lines.append(f"-[✓] {self.tensorrt_lint.summary()}")
        if self.verification is not None:
            mark = "✓" if self.verification.passed else "x"
            lines.append(f"-[{mark}] against onnxruntime: {self.verification.describe()}")
        return lines

    def check(self) -> None:
        """Raise once, after the report is shown, when the engine is not faithful."""
        if self.verification is not None and not self.verification.passed:
            raise VerificationError(
                f"{self.output}: the engine does not compute what the ONNX model does: "
                f"{'; '.join(self.verification.failures)}; do not serve it"
            )


def export_tensorrt(config: TensorRTExportConfig) -> TensorRTExportReport:
    """Lint, build, write the sidecar, and verify when images are given.

    The lint runs first, before TensorRT is imported: a graph its parser would refuse is
    refused on any machine, with the rule it breaks, instead of deep in a GPU build's log.
    """
    images = image_paths(config.images) if config.images is not None else None
    lint = None
    if config.lint:
        lint = lint_model(load_model(config.onnx))
        require_compatible(lint, config.onnx)
    target = current_target()  # on a machine without TensorRT or a GPU, stop here
    card = read_onnx_card(config.onnx)
    started = time.perf_counter()
    build_engine(config, card)
    seconds = time.perf_counter() - started
    info = engine_info(card, target, config.profile)
    write_sidecar(config.output, card.with_changes(tensorrt=info))
    verification = None
    if images is not None:
        with TensorRTEngine(config.output) as engine:
            verification = verify_engine(engine, config.onnx, images, str(config.images))
    size = config.output.stat().st_size
    return TensorRTExportReport(
        config.output, info, seconds, size, config.timing_cache, verification, lint
    )
