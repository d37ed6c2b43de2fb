"""`python train/train.py …`: the same command as `sketchsearch train`.

Accepts the original research scripts' spellings, e.g.
    python train/train.py --batch_size=64 --optimizer_name="Adam" --lr=3e-4 \\
        --model_name="efficientnet_b3a" --data DATA --split split.json
"""

import sys

from sketchsearch.cli.main import run
from sketchsearch.cli.train_commands import train

if __name__ == "__main__":
    sys.exit(run(train))
