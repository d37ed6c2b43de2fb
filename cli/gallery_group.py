"""`sketchsearch gallery`: the group with every gallery command registered on it.

The storage commands live in ``gallery_commands``, building from images in
``gallery_build_commands``, importing Parquet shards in ``gallery_import_command`` and moving a
gallery into a vector database in ``gallery_push_command``; importing this module registers them
all, and ``cli/main.py`` loads the group from here.
"""

from __future__ import annotations

from sketchsearch.cli import (  # noqa: F401  (imported to register their commands)
    gallery_build_commands,
    gallery_import_command,
    gallery_push_command,
)
from sketchsearch.cli.gallery_commands import gallery

__all__ = ["gallery"]
