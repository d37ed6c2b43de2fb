"""`python train/gradcam.py …`: the entry script of `sketchsearch analyze gradcam`.

    python train/gradcam.py --checkpoint run/best.ckpt --query q.png --match m.jpg --out x.png

The explainer itself is ``cam_explainer.py``.
"""

import sys

from sketchsearch.cli.analyze_commands import gradcam
from sketchsearch.cli.main import run

if __name__ == "__main__":
    sys.exit(run(gradcam))
