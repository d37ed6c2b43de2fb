"""The rule shared by every gallery store: a change that failed half-way blocks the rest.

A change that raises after storing part of its work (some vectors or points written, some
not) leaves the uncommitted state unknown, so no later change or commit may build on it; the
way out is to discard the uncommitted changes, which each store does in its own way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sketchsearch.gallery.errors import GalleryError


class ChangeGuard:
    """Marks a store broken when a change fails, and refuses changes and commits after it."""

    def __init__(self, where: str, way_out: str) -> None:
        self._where = where  # the store, as its messages name it
        self._way_out = way_out  # how this store discards its uncommitted changes
        self.broken = False

    def refuse_if_broken(self, what: str = "") -> None:
        """``what``: what is refused, as a message's prefix ("not saved: ")."""
        if self.broken:
            raise GalleryError(
                f"{self._where}: {what}an earlier change failed half-way; {self._way_out}"
            )

    @contextlib.contextmanager
    def changing(self) -> Iterator[None]:
        self.refuse_if_broken()
        try:
            yield
        except BaseException:
            self.broken = True
            raise
