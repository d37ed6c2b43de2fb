"""An untrained timm backbone as a Lightning-style checkpoint that the exporter and torch accept.

For latency work on real architectures without training one (issue 4's efficientnet_b0
target): the weights are random, so its retrieval metrics mean nothing, its speed does.

    python benchmarks/make_checkpoint.py --backbone efficientnet_b0 --img-size 224 \\
        --out /tmp/effnet/best.ckpt
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from sketchsearch.train.embedding_model import EmbeddingModel, resolve_model_config


def make_checkpoint(
    out: Path,
    backbone: str = "efficientnet_b0",
    img_size: int = 224,
    embed_dim: int = 128,
    num_classes: int = 10,
    seed: int = 0,
) -> Path:
    """Write ``out`` ({"hyper_parameters": {"model_config", "run_info"}, "state_dict"})."""
    torch.manual_seed(seed)
    config = resolve_model_config(backbone, embed_dim, num_classes, img_size)
    model = EmbeddingModel(config, pretrained=False).eval()
    checkpoint = {
        "hyper_parameters": {
            "model_config": config.to_dict(),
            "run_info": {
                "class_names": [f"class_{i}" for i in range(num_classes)],
                "training": {"model": backbone, "epochs": 0, "note": "untrained (benchmark)"},
            },
        },
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Checkpoint file to write.")
    parser.add_argument("--backbone", default="efficientnet_b0", help="Any timm model name.")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--embed-dim", type=int, default=128)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = make_checkpoint(
        args.out, args.backbone, args.img_size, args.embed_dim, args.num_classes, args.seed
    )
    print(f"wrote {path} ({args.backbone}, {args.img_size} px, untrained)")


if __name__ == "__main__":
    main()
