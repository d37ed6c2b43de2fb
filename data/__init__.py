"""Image collections: layouts, deterministic splits, evaluation sets and the synthetic demo set.

Torch-free: numpy, OpenCV and the standard library only.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sketchsearch")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
