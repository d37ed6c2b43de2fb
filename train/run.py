"""One training run: data, model and Lightning trainer assembled from a TrainConfig.

Everything a run produces lands in its folder: the resolved config, the class list, the split
fingerprint, ``best.ckpt`` (by validation mAP@all), ``last.ckpt``, ``metrics.csv``, TensorBoard
logs, and the test metrics.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from sketchsearch.data.errors import SplitError, UsageError
from sketchsearch.data.split_file import SplitFile, load_split
from sketchsearch.data.strict_json import dumps, undefined_as_null
from sketchsearch.train.config import TrainConfig
from sketchsearch.train.datamodule import RetrievalDataModule
from sketchsearch.train.embedding_model import EmbeddingModel, ModelConfig, resolve_model_config
from sketchsearch.train.epoch_log import EpochLog
from sketchsearch.train.optimisation import OptimConfig
from sketchsearch.train.retrieval_module import MONITOR, RetrievalModule
from sketchsearch.train.run_folder import write_run_folder
from sketchsearch.train.triplets import QueryOptions


@dataclass(frozen=True)
class TrainReport:
    out: Path
    best: Path
    last: Path
    epochs: int
    seconds: float
    test: dict[str, float] | None
    baseline_test: dict[str, float] | None
    chance: float
    planned_epochs: int = 0


def prepare(config: TrainConfig) -> tuple[SplitFile, RetrievalModule, RetrievalDataModule]:
    split, _ = load_split(config.split, config.data)  # refuses a data root that changed
    _check_validation_part(split, config.split)
    L.seed_everything(config.seed, workers=True, verbose=False)
    model_config = resolve_model_config(
        config.model,
        config.embed_dim,
        len(split.categories),
        config.img_size,
        config.separate_encoders,
    )
    module = build_module(
        config,
        model_config,
        pretrained=config.pretrained,
        weights=config.weights,
        run_info=describe_run(config, split),
    )
    data = RetrievalDataModule(
        Path(config.data),
        split,
        model_config.preprocess(),
        batch_size=config.batch_size,
        workers=config.workers,
        augment=config.augment,
        positive=config.positive,
        seed=config.seed,
        negatives=module.loss.needs_negatives,
        options=config.section(QueryOptions),
        distinct_categories=config.distinct_categories,
        cache_dir=(Path(config.cache_dir or Path(config.out) / "cache"))
        if config.decode_cache
        else None,
    )
    return split, module, data


def _check_validation_part(split: SplitFile, source: str) -> None:
    """Checkpoints are chosen by val mAP@all: it must exist and mean something."""
    from sketchsearch.data.evaluation import evaluation_set

    sets = evaluation_set(split, "val")
    if not sets.queries or not sets.gallery:
        raise SplitError(
            f"{source}: the val part has {len(sets.queries)} {sets.query_domain} and "
            f"{len(sets.gallery)} {sets.gallery_domain} images; training selects checkpoints by "
            "validation mAP: make a split with a non-zero val fraction"
        )
    if not sets.relevance().any():
        raise SplitError(
            f"{source}: no val {sets.query_domain} has a {sets.gallery_domain} of its category "
            "in the val part, so validation mAP is undefined"
        )


def describe_run(config: TrainConfig, split: SplitFile) -> dict[str, Any]:
    """What export's model card says about the training: classes, split, recipe."""
    recipe = ("model", "loss", "epochs", "batch_size", "optimizer", "lr", "scheduler")
    recipe += ("augment", "positive", "seed", "pretrained", "img_size", "embed_dim")
    recipe += ("pseudo_sketches", "stroke_augment", "distinct_categories", "temperature")
    training = {name: getattr(config, name) for name in recipe}
    training["weights"] = Path(config.weights).name if config.weights else None
    return {
        "class_names": list(split.categories),
        "split_fingerprint": split.fingerprint,
        "training": training,
    }


def build_module(
    config: TrainConfig,
    model_config: ModelConfig,
    pretrained: bool = False,
    weights: str | None = None,
    run_info: dict[str, Any] | None = None,
) -> RetrievalModule:
    optim = asdict(config.section(OptimConfig))
    model = EmbeddingModel(model_config, pretrained=pretrained, weights=weights)
    return RetrievalModule(model, config.loss, config.margin, config.temperature, optim, run_info)


def make_trainer(config: TrainConfig, out: Path, *, log: bool = True) -> L.Trainer:
    callbacks: list[Any] = [
        ModelCheckpoint(
            dirpath=out,
            filename="best",
            monitor=MONITOR,
            mode="max",
            enable_version_counter=False,
            auto_insert_metric_name=False,
        ),
        # Lightning's save_last only follows saves of the best model; resuming needs every epoch.
        ModelCheckpoint(dirpath=out, filename="last", enable_version_counter=False),
        EarlyStopping(monitor=MONITOR, mode="max", patience=config.patience),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if not sys.stderr.isatty():  # no progress bar: one line per epoch instead
        callbacks.append(EpochLog())
    loggers: Any = (
        [
            CSVLogger(out, name="", version=""),
            TensorBoardLogger(out, name="tensorboard", version=""),
        ]
        if log
        else False
    )
    devices: Any = int(config.devices) if config.devices.isdigit() else config.devices
    try:
        return _trainer(config, out, log, callbacks, loggers, devices)
    except (MisconfigurationException, ValueError, ImportError, RuntimeError) as err:
        raise UsageError(
            f"--accelerator/--devices/--strategy/--precision/--num-nodes: {err}"
        ) from None


def _default_precision(accelerator: str) -> str:
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return "16-mixed" if on_gpu else "32-true"


def _trainer(
    config: TrainConfig, out: Path, log: bool, callbacks: list[Any], loggers: Any, devices: Any
) -> L.Trainer:
    return L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=config.precision or _default_precision(config.accelerator),
        callbacks=callbacks if log else [],
        logger=loggers,
        default_root_dir=out,
        reload_dataloaders_every_n_epochs=1,  # a new draw of positives and negatives each epoch
        limit_train_batches=config.limit_train_batches,
        limit_val_batches=config.limit_val_batches,
        log_every_n_steps=10,
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
        enable_checkpointing=log,
    )


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Hide Lightning's start-up banner and the warnings our own run folder triggers."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    with warnings.catch_warnings():
        for message in (
            ".*exists and is not empty.*",  # the run folder holds our config files by design
            ".*when using `ckpt_path`, callbacks used to create the checkpoint.*",
            ".*treespec.*",  # a deprecation inside Lightning itself
        ):
            warnings.filterwarnings("ignore", message=message)
        logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            logger.setLevel(level)


def train(config: TrainConfig) -> TrainReport:
    with quiet_lightning():
        return _train(config)


def _train(config: TrainConfig) -> TrainReport:
    start = time.perf_counter()
    out = config.out_dir()
    resume_from = out / "last.ckpt" if config.resume else None
    if resume_from is not None and not resume_from.exists():
        raise UsageError(f"{resume_from}: nothing to resume (no last.ckpt in --out)")
    split, module, data = prepare(config)
    if resume_from is not None:
        _check_resume(resume_from, module)
    write_run_folder(config, split, out)
    if resume_from is None:  # a new run in an old folder must not leave the old results
        (out / "test_metrics.json").unlink(missing_ok=True)
    earlier = _read_metrics(out / "metrics.csv") if resume_from else []
    trainer = make_trainer(config, out)
    trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    if earlier and trainer.is_global_zero:  # Lightning's CSVLogger restarts the file on resume
        _write_metrics(out / "metrics.csv", earlier + _read_metrics(out / "metrics.csv"))
    best, last = out / "best.ckpt", out / "last.ckpt"
    test = baseline = None
    if config.test and trainer.is_global_zero:
        test = _test(config, module, data, out, best)
        if config.baseline:  # the same architecture, untrained: what learning added
            L.seed_everything(config.seed, verbose=False)
            untrained = build_module(config, module.model.config)
            baseline = _test(config, untrained, data, out, None)
        (out / "test_metrics.json").write_text(
            dumps(undefined_as_null({"trained": test, "random_init": baseline}), indent=1) + "\n"
        )
    return TrainReport(
        out=out,
        best=best,
        last=last,
        epochs=trainer.current_epoch,
        seconds=time.perf_counter() - start,
        test=test,
        baseline_test=baseline,
        chance=1.0 / len(split.categories),
        planned_epochs=config.epochs,
    )


def _test(
    config: TrainConfig,
    module: RetrievalModule,
    data: RetrievalDataModule,
    out: Path,
    checkpoint: Path | None,
) -> dict[str, float]:
    single = replace(config, devices="1", strategy="auto", num_nodes=1)  # no DDP to test
    tester = make_trainer(single, out, log=False)
    results = tester.test(module, datamodule=data, ckpt_path=checkpoint, verbose=False)
    merged: dict[str, float] = {}
    for result in results:
        merged.update(
            {k.split("/", 1)[1].split("/dataloader_idx")[0]: float(v) for k, v in result.items()}
        )
    return merged


def _check_resume(checkpoint: Path, module: RetrievalModule) -> None:
    """A resumed run continues the run that was planned; changing the plan is a new run."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True).get(
        "hyper_parameters", {}
    )
    now = dict(module.hparams)
    changed = [
        f"{name} was {saved.get(name)!r}, now {now[name]!r}"
        for name in ("model_config", "loss", "margin", "temperature")
        if saved.get(name) != now[name]
    ]
    old_optim, new_optim = dict(saved.get("optim", {})), dict(now["optim"])
    if new_optim.get("scheduler") != "cosine":  # only the cosine schedule depends on the length
        old_optim.pop("epochs", None), new_optim.pop("epochs", None)
    changed += [
        f"{name} was {old_optim.get(name)!r}, now {value!r}"
        for name, value in new_optim.items()
        if _plain(old_optim.get(name)) != _plain(value)
    ]
    if changed:
        raise UsageError(
            f"{checkpoint}: --resume continues the run as it was set up, but "
            f"{'; '.join(changed)}; resume with the same settings, or start a new run in "
            "another --out"
        )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def _read_metrics(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_metrics(path: Path, rows: list[dict[str, str]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
