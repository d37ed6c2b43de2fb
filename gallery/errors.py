"""Gallery errors: each names the gallery folder and says how to fix the problem."""

from __future__ import annotations

from sketchsearch.data.errors import ExitCode, SketchsearchError


class GalleryError(SketchsearchError):
    """A request the gallery cannot carry out (bad vectors, unknown options, …)."""

    exit_code = ExitCode.USAGE


class GalleryNotFoundError(SketchsearchError):
    exit_code = ExitCode.BAD_INPUT


class GalleryCorruptError(SketchsearchError):
    """Files that are missing, truncated, or that disagree with the manifest."""

    exit_code = ExitCode.BAD_INPUT


class GalleryWriteError(SketchsearchError, OSError):
    """A commit that could not be written whole (a full disk, a quota, a file-size limit).

    Nothing was committed: the previous generation is still the gallery. Exit code 3 like
    other trouble with the files themselves. Also an OSError, which it replaces.
    """

    exit_code = ExitCode.BAD_INPUT


class GalleryMismatchError(SketchsearchError):
    """A gallery built with another model family than the one querying it."""

    exit_code = ExitCode.MISMATCH


class GalleryBusyError(SketchsearchError):
    """Another process is writing the gallery."""

    exit_code = ExitCode.BUSY
