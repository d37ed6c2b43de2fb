"""Image dimensions read from a file's header: moved to :mod:`sketchsearch.data.image_header`.

The data layer's decoder now checks the pixel limit itself (``data --verify`` and training's
decode cache read images too), and it cannot import the runtime; this name stays for callers.
"""

from __future__ import annotations

from sketchsearch.data.image_header import image_size

__all__ = ["image_size"]
