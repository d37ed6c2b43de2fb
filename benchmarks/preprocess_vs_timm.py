"""The runtime preprocessing against timm's own eval transform: embedding cosine per model.

Target (issue 6): cosine ≥ 0.999 on real-looking images. The runtime side is what serving
does: ``preprocess_file`` (OpenCV decode, resize, centre crop; uint8) and the model's own
in-graph normalisation (``EmbeddingModel.embed`` on uint8, or the exported ONNX). The timm
side is ``create_transform(**resolve_data_config(...), is_training=False)`` on PIL images,
a normalised float tensor fed to the same encoder and head, bypassing the uint8 normalisation.

Images: skimage's astronaut, coffee, chelsea, rocket, … and sklearn's sample images, written
as PNG so that both sides decode the same pixels; a few are smaller than the resize target,
which exercises enlarging. Baselines show whether a model can tell: plain ``cv2.resize``
(INTER_LINEAR, no antialiasing) in place of the runtime's resampling, timm's input plus
Gaussian noise of 1 grey level, and the mean cosine between different images. Untrained
models are measured as initialised and with BatchNorm statistics taken from the images.

    python benchmarks/preprocess_vs_timm.py [--checkpoint CKPT] [--engine model.onnx]
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data import create_transform, resolve_data_config  # type: ignore[attr-defined]

from sketchsearch.benchmarks.machine_info import machine_facts
from sketchsearch.data.strict_json import dumps
from sketchsearch.runtime.preprocess import PreprocessConfig, preprocess_file
from sketchsearch.train.checkpoint import load_checkpoint, read_checkpoint
from sketchsearch.train.embedding_model import EmbeddingModel, resolve_model_config

TARGET_COSINE = 0.999
DEFAULT_CHECKPOINT = Path("demo-output/run/best.ckpt")
UNTRAINED = "efficientnet_b0@224,resnet18.tv_in1k@224"
SKIMAGE = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "colorwheel",
    "camera",
    "microaneurysms",
    "text",
)


@dataclass(frozen=True)
class Subject:
    name: str
    model: EmbeddingModel
    calibrate: bool = False
    onnx_embed: Callable[[np.ndarray], np.ndarray] | None = None


def sample_images(folder: Path, limit: int) -> list[Path]:
    """Real-looking RGB images as PNG files (grayscale ones expanded to RGB)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    loaders: list[tuple[str, Callable[[], np.ndarray]]] = [
        (name, getattr(skimage.data, name)) for name in SKIMAGE
    ]
    sklearn = load_sample_images()
    loaders += [
        (Path(file).stem, functools.partial(np.asarray, image))
        for file, image in zip(sklearn.filenames, sklearn.images, strict=True)
    ]
    paths = []
    for name, load in loaders[:limit]:
        image = load()
        rgb = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[:, :, :3]
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def naive_resize(path: Path, config: PreprocessConfig) -> np.ndarray:
    """What a hand-rolled pipeline often does: cv2.resize INTER_LINEAR, no antialiasing."""
    image = cv2.cvtColor(np.asarray(cv2.imread(str(path))), cv2.COLOR_BGR2RGB)
    height, width = image.shape[:2]
    scale = config.scale_size / min(height, width)
    new_w, new_h = (
        max(config.input_size, round(width * scale)),
        max(config.input_size, round(height * scale)),
    )
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, left = (new_h - config.input_size) // 2, (new_w - config.input_size) // 2
    return resized[top : top + config.input_size, left : left + config.input_size]


@torch.no_grad()
def runtime_embeddings(model: EmbeddingModel, batch: np.ndarray) -> np.ndarray:
    """uint8 NHWC → the model's own normalisation → unit embeddings."""
    images = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
    return np.asarray(model.embed(images).numpy(), dtype=np.float32)


def timm_inputs(model: EmbeddingModel, paths: list[Path]) -> tuple[torch.Tensor, dict[str, Any]]:
    """timm's eval transform, resolved from the encoder itself at the model's input size."""
    size = model.config.img_size
    data_config = resolve_data_config(  # type: ignore[no-untyped-call]
        {"input_size": (3, size, size)}, model=model.encoders["query"]
    )
    transform = create_transform(**data_config, is_training=False)
    return torch.stack([transform(Image.open(path).convert("RGB")) for path in paths]), data_config


@torch.no_grad()
def timm_embeddings(model: EmbeddingModel, inputs: torch.Tensor) -> np.ndarray:
    """Normalised float inputs straight into the encoder and head (past ``model.normalize``)."""
    features = model.heads["query"](model.encoders["query"](inputs))
    return np.asarray(F.normalize(features, dim=1).numpy(), dtype=np.float32)


def pixel_difference(batch: np.ndarray, inputs: torch.Tensor, config: PreprocessConfig) -> float:
    """Mean |runtime uint8 − timm's input brought back to 0..255|, in grey levels."""
    theirs = inputs * _per_channel(config.std) + _per_channel(config.mean)
    return float(np.abs(batch - 255.0 * theirs.permute(0, 2, 3, 1).numpy()).mean())


def _per_channel(values: tuple[float, float, float]) -> torch.Tensor:
    return torch.tensor(values).view(1, 3, 1, 1)


def with_noise(inputs: torch.Tensor, config: PreprocessConfig, grey_levels: float) -> torch.Tensor:
    """timm's inputs plus Gaussian pixel noise whose mean |value| is ``grey_levels``."""
    sigma = grey_levels * math.sqrt(math.pi / 2.0) / 255.0
    noise = torch.randn(inputs.shape, generator=torch.Generator().manual_seed(0)) * sigma
    return inputs + noise / _per_channel(config.std)


@torch.no_grad()
def calibrate_batchnorm(model: EmbeddingModel, inputs: torch.Tensor) -> None:
    """Replace the initial BatchNorm statistics (mean 0, var 1) with those of ``inputs``.

    An untrained network with its initial statistics can map every image to nearly the same
    embedding, which makes any comparison pass; with statistics of real images its features
    depend on the input (and it amplifies small differences more than a trained one).
    """
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batches seen
    model.train()
    model.encoders["query"](inputs)
    model.eval()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(np.sum(a * b, axis=1))


def stats(values: np.ndarray) -> dict[str, float]:
    return {"min": round(float(values.min()), 6), "mean": round(float(values.mean()), 6)}


def compare(model: Subject, paths: list[Path]) -> dict[str, Any]:
    config = model.model.config.preprocess()
    batch = np.stack([preprocess_file(path, config) for path in paths])
    inputs, data_config = timm_inputs(model.model, paths)
    if model.calibrate:
        calibrate_batchnorm(model.model, inputs)
    ours = runtime_embeddings(model.model, batch)
    theirs = timm_embeddings(model.model, inputs)
    naive = runtime_embeddings(model.model, np.stack([naive_resize(p, config) for p in paths]))
    noisy = timm_embeddings(model.model, with_noise(inputs, config, 1.0))
    cross = theirs @ theirs.T
    result: dict[str, Any] = {
        "model": model.name,
        "input_size": config.input_size,
        "interpolation": config.interpolation,
        "crop_pct": config.crop_pct,
        "timm_data_config": {k: v for k, v in data_config.items() if k != "input_size"},
        "timm_config_matches_ours": PreprocessConfig.from_timm(data_config) == config,
        "images": len(paths),
        "pixel_mean_abs_diff": round(pixel_difference(batch, inputs, config), 3),
        "cosine_vs_timm": stats(cosines(ours, theirs)),
        "per_image": {
            p.stem: round(float(c), 6) for p, c in zip(paths, cosines(ours, theirs), strict=True)
        },
        "baseline_naive_cv2_resize_vs_timm": stats(cosines(naive, theirs)),
        "baseline_timm_plus_1_grey_level_noise_vs_timm": stats(cosines(noisy, theirs)),
        "baseline_cross_image_cosine_mean": round(
            float(cross[~np.eye(len(paths), dtype=bool)].mean()), 4
        ),
    }
    if model.onnx_embed is not None:
        result["onnx_cosine_vs_timm"] = stats(cosines(model.onnx_embed(batch), theirs))
    result["meets_target"] = result["cosine_vs_timm"]["min"] >= TARGET_COSINE
    return result


def trained(checkpoint: Path, engine: Path | None) -> Subject:
    file = read_checkpoint(checkpoint)  # hashed and loaded from one read
    model = load_checkpoint(file)
    name = f"{checkpoint} ({model.config.backbone}@{model.config.img_size}, trained)"
    if engine is None:
        return Subject(name, model)
    from sketchsearch.runtime.engines.onnx_engine import OnnxEngine

    onnx = OnnxEngine(engine)
    if onnx.card.checkpoint_sha256 != file.sha256:
        onnx.close()
        raise SystemExit(f"{engine} was not exported from {checkpoint}: export it again")
    return Subject(name, model, onnx_embed=onnx.embed)


def untrained(spec: str) -> list[Subject]:
    """BACKBONE@SIZE as initialised, and again with BatchNorm statistics of the images."""
    backbone, _, size = spec.partition("@")
    subjects = []
    for calibrate in (False, True):
        torch.manual_seed(0)
        config = resolve_model_config(backbone, 64, 10, int(size) if size else None)
        state = "BatchNorm statistics of the images" if calibrate else "as initialised"
        name = f"{backbone}@{config.img_size} (untrained, {state})"
        subjects.append(Subject(name, EmbeddingModel(config).eval(), calibrate))
    return subjects


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'model':<62} {'interp':<8} {'cos min':>8} {'cos mean':>8} {'naive':>7} "
        f"{'noise':>7} {'cross':>6}"
    ]
    for r in results:
        lines.append(
            f"{r['model'][-62:]:<62} {r['interpolation']:<8} {r['cosine_vs_timm']['min']:>8.5f} "
            f"{r['cosine_vs_timm']['mean']:>8.5f} "
            f"{r['baseline_naive_cv2_resize_vs_timm']['min']:>7.4f} "
            f"{r['baseline_timm_plus_1_grey_level_noise_vs_timm']['min']:>7.4f} "
            f"{r['baseline_cross_image_cosine_mean']:>6.3f}"
        )
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--engine", type=Path, help="the checkpoint's ONNX export, also compared")
    parser.add_argument("--untrained", default=UNTRAINED, help="BACKBONE@SIZE,… ('' for none)")
    parser.add_argument("--images", type=int, default=100, help="use at most this many images")
    parser.add_argument("--json", type=Path, help="default: preprocess_vs_timm.json in /tmp")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(2)
    subjects: list[Subject] = []
    if args.checkpoint and args.checkpoint.is_file():
        subjects.append(trained(args.checkpoint, args.engine))
    for spec in filter(None, args.untrained.split(",")):
        subjects.extend(untrained(spec))
    with tempfile.TemporaryDirectory() as folder:
        paths = sample_images(Path(folder), args.images)
        results = [compare(subject, paths) for subject in subjects]
    report = {
        "benchmark": "preprocess_vs_timm",
        "date": time.strftime("%Y-%m-%d"),
        "target_cosine": TARGET_COSINE,
        "meets_target": all(r["meets_target"] for r in results),
        "models": results,
        "environment": machine_facts(
            torch=torch.__version__, timm=timm.__version__, opencv=cv2.__version__
        ),
    }
    out = args.json or Path(tempfile.gettempdir()) / "preprocess_vs_timm.json"
    out.write_text(dumps(report, indent=1) + "\n")
    print(dumps(report, indent=1))
    print(table(results))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
