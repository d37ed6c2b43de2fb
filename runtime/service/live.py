"""The retriever answering now, replaced without a restart when the gallery commits.

`sketchsearch gallery add` commits a new generation with an atomic rename (ADR 0003). A
watcher thread polls the committed state's version (``GalleryStore.committed_version``: the
generation and the data files' digests, so a gallery rebuilt in place counts too) every few
seconds; when it changes, it opens that state read-only (bound to the same model family),
warms it, and swaps it in. A
search holds a *lease* on the retriever it started with, so a swap never closes a gallery
under a running search: the old one is closed when its last lease ends. Opening reads the
committed view under the commit lock, so a half-written generation is never seen; a reload
that fails (a damaged or emptied gallery) leaves the old generation answering and is
reported once; it is tried again after ``RETRY_AFTER`` polls, then twice as long each time
(a transient failure, such as a file being copied in by hand, heals without another commit,
and a large broken gallery is not re-read every few seconds).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sketchsearch.data.errors import SketchsearchError
from sketchsearch.gallery.store import version_of
from sketchsearch.gallery.store_table import open_gallery
from sketchsearch.runtime.rerank import RerankConfig
from sketchsearch.runtime.retriever import Retriever, model_ref

RETRY_AFTER = 15  # polls before a version that failed to load is tried again


@dataclass
class _Held:
    """One generation's retriever and the searches using it."""

    retriever: Retriever
    leases: int = 0
    retired: bool = False

    @property
    def generation(self) -> int:
        return self.retriever.gallery.manifest.generation


class LiveRetriever:
    """Hands out the current retriever and swaps in new gallery generations.

    The engine is shared by every generation and stays open; each gallery is closed once
    replaced and unused. ``notify`` gets one line per reload or failed reload.
    """

    def __init__(
        self,
        retriever: Retriever,
        gallery_ref: str | Path,
        min_score: float | None = None,
        reranking: RerankConfig | None = None,
        notify: Callable[[str], None] = lambda _: None,
        on_swap: Callable[[Retriever], None] = lambda _: None,
        on_reload: Callable[[str], None] = lambda _: None,
    ) -> None:
        self._held = _Held(retriever)
        self._ref = gallery_ref
        self._min_score = min_score
        self._reranking = reranking
        self._notify = notify
        self._on_swap = on_swap
        self._on_reload = on_reload  # "ok" or "failed": for the reload counter
        self._lock = threading.Lock()
        self._failed: tuple[str, int, int] | None = None  # (version, polls left, next wait)
        self._said: tuple[str, str] | None = None  # (version, problem) last reported
        self._last_problem: str | None = None  # the watcher's last error, said once
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        on_swap(retriever)

    @property
    def generation(self) -> int:
        with self._lock:
            return self._held.generation

    @contextmanager
    def lease(self) -> Iterator[Retriever]:
        """The current retriever, kept open until the ``with`` block ends."""
        with self._lock:
            held = self._held
            held.leases += 1
        try:
            yield held.retriever
        finally:
            with self._lock:
                held.leases -= 1
                done = held.retired and held.leases == 0
            if done:
                held.retriever.gallery.close()

    def reload_if_changed(self) -> bool:
        """Swap in the committed state if it is another one; True when swapped.

        Another, not only a newer generation: a gallery rebuilt in place starts again at
        generation 1, and must not leave the service answering from deleted files."""
        with self.lease() as current:
            latest = current.gallery.committed_version()
            loaded_version = version_of(current.gallery.manifest)
            loaded = current.gallery.manifest.generation
        if latest == loaded_version or self._still_failed(latest):
            return False
        try:
            retriever = self._open()
        except (SketchsearchError, OSError) as err:
            wait = self._failed[2] * 2 if self._failed and self._failed[0] == latest else 1
            self._failed = (latest, RETRY_AFTER * wait, wait)  # backs off: 15, 30, 60… polls
            self._on_reload("failed")
            if self._said != (latest, str(err)):  # said once per version and problem
                self._said = (latest, str(err))
                self._notify(
                    f"gallery changed but not loaded ({err}); still answering from "
                    f"generation {loaded}"
                )
            return False
        self._failed = None
        self._swap(retriever)
        self._on_reload("ok")
        self._notify(
            f"gallery reloaded: generation {retriever.gallery.manifest.generation}, "
            f"{retriever.gallery.manifest.live} items"
        )
        return True

    def _still_failed(self, version: str) -> bool:
        """Whether ``version`` failed to load and its next try is not due yet."""
        if self._failed is None or self._failed[0] != version:
            return False
        left = self._failed[1] - 1
        self._failed = (version, left, self._failed[2])
        return left > 0

    def _open(self) -> Retriever:
        with self.lease() as current:
            engine = current.engine
        gallery = open_gallery(self._ref, expected_model=model_ref(engine.card))
        try:
            return Retriever(engine, gallery, self._min_score, self._reranking)
        except BaseException:
            gallery.close()
            raise

    def _swap(self, retriever: Retriever) -> None:
        with self._lock:
            old = self._held
            self._held = _Held(retriever)
            old.retired = True
            close_now = old.leases == 0
        if close_now:
            old.retriever.gallery.close()
        self._on_swap(retriever)

    def watch(self, interval: float) -> None:
        """Poll for new generations every ``interval`` seconds in a daemon thread."""
        if interval <= 0 or self._watcher is not None:
            return

        def poll() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reload_if_changed()
                except (SketchsearchError, OSError) as err:  # unreadable manifest: next time
                    problem = f"gallery reload check failed: {err}"
                    if problem != self._last_problem:  # once, not every poll
                        self._notify(problem)
                    self._last_problem = problem
                else:
                    self._last_problem = None

        self._watcher = threading.Thread(target=poll, name="sketchsearch-gallery-watch")
        self._watcher.daemon = True
        self._watcher.start()

    def close(self) -> None:
        """Stop watching and close the current gallery (the engine is the caller's)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        with self._lock:
            held = self._held
            held.retired = True
            close_now = held.leases == 0
        if close_now:
            held.retriever.gallery.close()
