"""The CAM methods ``analyze gradcam`` offers: our names for grad-cam's classes.

A table, torch-free, so that the command's help and option checks import nothing heavy
(``cam_explainer.py`` resolves the classes). Listed are the methods that
work with any target and a plain list of target layers on CNNs and Swin alike: AblationCAM
needs a per-architecture ablation layer, FinerCAM class comparisons, FullGrad every bias
layer, and ShapleyCAM fails on channels-last maps (grad-cam 1.5.7).
"""

from __future__ import annotations

import difflib

from sketchsearch.data.errors import UsageError

# name -> class name in pytorch_grad_cam
METHODS: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "gradcam-elementwise": "GradCAMElementWise",
    "eigencam": "EigenCAM",  # the first principal component: ignores the target
    "eigengradcam": "EigenGradCAM",
    "kpcacam": "KPCA_CAM",  # kernel PCA: ignores the target
    "scorecam": "ScoreCAM",  # one forward pass per channel: slow
    "random": "RandomCAM",  # a baseline: what any explanation should beat
}
# Methods whose map does not depend on the target: the same for every match.
TARGET_FREE = ("eigencam", "kpcacam", "random")


def check_method(name: str) -> str:
    key = name.lower()
    if key not in METHODS:
        close = difflib.get_close_matches(key, METHODS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(
            f"--method {name!r}: not a CAM method{hint}; use one of {', '.join(METHODS)}"
        )
    return key
