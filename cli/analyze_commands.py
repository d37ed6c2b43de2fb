"""`sketchsearch analyze roc|gradcam`: how far a score can be trusted, and why a match matched.

``roc`` is torch-free; ``gradcam`` imports the training layer (torch, timm, grad-cam) inside
the command, so that this module, and ``--help``, stay light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sketchsearch.cli.options import EngineOption, FiniteFloat, chosen_backend, inference_options
from sketchsearch.data.errors import UsageError
from sketchsearch.data.strict_json import dumps, undefined_as_null
from sketchsearch.train.cam_methods import METHODS

if TYPE_CHECKING:
    from sketchsearch.gallery.manifest import ModelRef
    from sketchsearch.runtime.evaluation.roc import RocReport
    from sketchsearch.runtime.evaluation.roc_pairs import PairSampling

_PATH = click.Path(path_type=Path)
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group(name="analyze", context_settings={"help_option_names": ["-h", "--help"]})
def analyze() -> None:
    """Explain matches (Grad-CAM) and choose a "no match" threshold (ROC)."""


@analyze.command()
@click.option("--pairs", type=_FILE, help="CSV of scored pairs: columns actual,prediction.")
@click.option("--engine", cls=EngineOption, type=_PATH, purpose="Model to embed the queries")
@click.option("--index", type=_PATH, help="Gallery folder: the pairs' gallery side.")
@click.option("--split", "split_spec", metavar="SPLIT[:PART]", help="Queries (default part: val).")
@click.option(
    "--data", "data_root", type=_PATH, help="Data root of --split (default: the one it records)."
)
@click.option("--instance", is_flag=True, help="Positive = the sketch's own photo (engine mode).")
@click.option("--seed", type=int, help="Seed of the pair sampling (engine mode; default 0).")
@click.option("--max-pairs", type=click.IntRange(min=1), help="Per kind (default 200000).")
@inference_options(
    "Inference threads (engine mode).", "onnxruntime provider: cpu, cuda, tensorrt (engine mode)."
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Engine batch (default 32).")
@click.option(
    "--target-fpr",
    type=FiniteFloat(0, 1),
    default=0.01,
    show_default=True,
    help="False-positive rate the threshold is chosen for.",
)
@click.option("--out", type=_PATH, help="ROC plot (PNG; needs matplotlib).")
@click.option("--json", "json_out", type=_PATH, help="AUC, EER, threshold and curve as JSON.")
@click.option(
    "--write-threshold", is_flag=True, help="Record the threshold in the --index gallery."
)
@click.option(
    "--write-threshold-to",
    "threshold_galleries",
    type=_PATH,
    multiple=True,
    metavar="GALLERY",
    help="Record the threshold in GALLERY too, e.g. the serving one (same model family).",
)
@click.option(
    "--drop-gallery-queries",
    is_flag=True,
    help="Leave out queries that are gallery items (same bytes) instead of refusing (engine).",
)
def roc(
    pairs: Path | None,
    engine: Path | None,
    index: Path | None,
    split_spec: str | None,
    data_root: Path | None,
    instance: bool,
    seed: int | None,
    max_pairs: int | None,
    provider: str | None,
    backend: str | None,
    threads: int | None,
    batch_size: int | None,
    target_fpr: float,
    out: Path | None,
    json_out: Path | None,
    write_threshold: bool,
    threshold_galleries: tuple[Path, ...],
    drop_gallery_queries: bool,
) -> None:
    """ROC, AUC, EER and the "no match" score threshold at a target FPR.

    Exact: every threshold is used. A pair with score >= threshold is a match. With --engine,
    the queries of a split part are embedded and paired with the gallery's items: positives
    share the category (the instance with --instance), negatives do not; all pairs are used
    up to --max-pairs of each kind, beyond that a uniform sample with --seed.

    The gallery is checked as `evaluate` checks it: a gallery of the query domain is refused
    (exit 2), queries that are gallery items too unless --drop-gallery-queries. The threshold
    is measured on a validation gallery; --write-threshold-to records it in the gallery that
    serves (`retrieve` uses it), refused (exit 4) if that one is bound to another model.

    \b
    Examples:
      sketchsearch analyze roc --pairs scores.csv --out roc.png --json roc.json
      sketchsearch analyze roc --engine model.onnx --index gallery/ \\
          --split split.json:val --data DATA --target-fpr 0.01 --out roc.png --write-threshold
      sketchsearch analyze roc --engine model.onnx --index val-gallery/ \\
          --split split.json:val --data DATA --write-threshold-to serving-gallery/
    """
    from sketchsearch.runtime.evaluation.roc_pairs import PairSampling

    engine_only = {
        "--instance": instance or None,
        "--seed": seed,
        "--max-pairs": max_pairs,
        "--split": split_spec,
        "--data": data_root,
        "--provider": provider,
        "--backend": backend,
        "--threads": threads,
        "--batch-size": batch_size,
        "--drop-gallery-queries": drop_gallery_queries or None,
    }
    if (pairs is None) == (engine is None):
        raise UsageError("give either --pairs CSV, or --engine MODEL with --index and --split")
    if write_threshold and index is None:
        raise UsageError("--write-threshold records the threshold in a gallery: add --index")
    if pairs is not None:
        given = [name for name, value in engine_only.items() if value is not None]
        if index is not None and not (write_threshold or threshold_galleries):
            given.append("--index (without --write-threshold)")
        if given:
            raise UsageError(f"{', '.join(given)}: only used with --engine, not with --pairs")
        if threshold_galleries and index is None:
            raise UsageError(
                "--write-threshold-to: with --pairs, add --index GALLERY (the gallery the "
                "scores came from) so that the target's model can be checked"
            )
        report = _pairs_report(pairs, target_fpr)
        model = _gallery_model(index) if index is not None else None
    else:
        sampling = PairSampling(
            max_positives=max_pairs or PairSampling.max_positives,
            max_negatives=max_pairs or PairSampling.max_negatives,
            seed=seed if seed is not None else PairSampling.seed,
        )
        options = _EngineOptions(engine, index, split_spec, data_root, provider, threads, backend)
        report, model = _engine_report(
            options, instance, sampling, target_fpr, batch_size or 32, drop_gallery_queries
        )
    _write_outputs(report, out, json_out)
    targets = ([index] if write_threshold and index is not None else []) + list(threshold_galleries)
    if targets:
        from sketchsearch.runtime.evaluation.roc_gallery import record_threshold, threshold_of

        threshold = threshold_of(report)
        targets = list(dict.fromkeys(targets))
        for target, note in zip(targets, record_threshold(targets, threshold, model), strict=True):
            click.echo(f"threshold {threshold.value:.4f} recorded in {target}")
            if note:
                click.echo(f"  note: {note}")


@dataclass(frozen=True)
class _EngineOptions:
    engine: Path | None
    index: Path | None
    split_spec: str | None
    data_root: Path | None
    provider: str | None
    threads: int | None
    backend: str | None


def _pairs_report(pairs: Path, target_fpr: float) -> RocReport:
    from sketchsearch.runtime.evaluation.roc import roc_report
    from sketchsearch.runtime.evaluation.roc_pairs import read_pairs_csv

    scored = read_pairs_csv(pairs)
    return roc_report(scored.labels, scored.scores, target_fpr=target_fpr, source=str(pairs))


def _engine_report(
    options: _EngineOptions,
    instance: bool,
    sampling: PairSampling,
    target_fpr: float,
    batch_size: int,
    drop_gallery_queries: bool,
) -> tuple[RocReport, ModelRef]:
    from sketchsearch.data.split_spec import parse_split_spec
    from sketchsearch.gallery.store_table import open_gallery
    from sketchsearch.runtime.engines.table import open_engine
    from sketchsearch.runtime.evaluation.roc_gallery import roc_for_gallery
    from sketchsearch.runtime.retriever import model_ref

    if options.engine is None or options.index is None or options.split_spec is None:
        raise UsageError("--engine needs --index GALLERY and --split SPLIT[:PART] --data ROOT")
    part = parse_split_spec(options.split_spec, options.data_root, default_part="val")
    chosen, provider = chosen_backend(
        options.engine, options.backend, "batch", options.provider, options.threads
    )
    with (
        open_engine(
            options.engine, provider=provider, threads=options.threads, backend=chosen
        ) as engine,
        open_gallery(options.index, expected_model=model_ref(engine.card)) as gallery,
    ):
        report = roc_for_gallery(
            engine,
            gallery,
            part,
            instance=instance,
            sampling=sampling,
            target_fpr=target_fpr,
            batch_size=batch_size,
            drop_gallery_queries=drop_gallery_queries,
        )
        return report, model_ref(engine.card)


def _gallery_model(index: Path) -> ModelRef:
    """The model the --pairs scores came from: that of the gallery they were measured on."""
    from sketchsearch.gallery.store_table import open_gallery

    with open_gallery(index) as gallery:
        return gallery.manifest.model


def _write_outputs(report: RocReport, out: Path | None, json_out: Path | None) -> None:
    click.echo(report.describe())
    if json_out is not None:
        json_out.write_text(
            dumps(undefined_as_null(report.to_dict()), indent=1) + "\n", encoding="utf-8"
        )
        click.echo(f"report: {json_out}")
    if out is not None:
        from sketchsearch.runtime.evaluation.roc_plot import save_roc_plot

        click.echo(f"plot: {save_roc_plot(report, out)}")


@analyze.command()
@click.option("--checkpoint", type=_FILE, required=True, help="Training checkpoint (.ckpt).")
@click.option("--query", type=_FILE, help="Query image (explained against --match).")
@click.option("--match", type=_FILE, help="Matched gallery image.")
@click.option(
    "--from-retrieve",
    type=_FILE,
    help="A `retrieve --json` output: explain each query's top matches.",
)
@click.option("--top-k", type=click.IntRange(min=1), help="Matches per query (default 3).")
@click.option("--gallery-root", type=_PATH, help="Folder the retrieve results' paths are under.")
@click.option(
    "--method",
    type=click.Choice(list(METHODS), case_sensitive=False),
    default="gradcam",
    show_default=True,
    help="grad-cam method.",
)
@click.option("--layer", help="Target layer by module name (default: chosen per backbone).")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
@click.option("--out", type=_PATH, help="PNG (default gradcam.png); a folder with --from-retrieve.")
def gradcam(
    checkpoint: Path,
    query: Path | None,
    match: Path | None,
    from_retrieve: Path | None,
    top_k: int | None,
    gallery_root: Path | None,
    method: str,
    layer: str | None,
    device: str,
    out: Path | None,
) -> None:
    """Heat-maps of why a query and a match are similar.

    Each image is explained by the other. The score explained is the cosine of the two
    embeddings: the query's map shows what in the query makes it look like the match, the
    match's map the reverse. eigencam, kpcacam and random ignore the other image.

    \b
    Examples:
      sketchsearch analyze gradcam --checkpoint run/best.ckpt --query q.png --match m.jpg
      sketchsearch analyze gradcam --checkpoint run/best.ckpt --from-retrieve results.jsonl \\
          --top-k 3 --method gradcam++ --out explained/
      python train/gradcam.py --checkpoint run/best.ckpt --query q.png --match m.jpg
    """
    pair = query is not None or match is not None
    if pair == (from_retrieve is not None):
        raise UsageError("give --query and --match, or --from-retrieve FILE")
    if pair and (query is None or match is None):
        raise UsageError("--query and --match go together: give both")
    if pair and (top_k is not None or gallery_root is not None):
        raise UsageError("--top-k and --gallery-root apply to --from-retrieve only")
    from sketchsearch.train.cam_explainer import Explainer, explain_pair, explain_retrieve_run
    from sketchsearch.train.checkpoint import load_checkpoint

    explainer = Explainer(load_checkpoint(checkpoint), method, device=device, layer=layer)
    if from_retrieve is not None:
        folder = out or Path("gradcam")
        figures = explain_retrieve_run(explainer, from_retrieve, folder, top_k or 3, gallery_root)
        click.echo(f"{len(figures)} figure(s) in {folder}")
    elif query is not None and match is not None:
        written, explained = explain_pair(explainer, query, match, out or Path("gradcam.png"))
        click.echo(f"cosine {explained.score:.4f}; figure: {written}")
