"""Errors that users can cause, and the exit codes the CLI maps them to.

They live in the lowest layer so that every layer above can raise them without importing
anything heavier. Only the CLI turns them into exit codes.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (README: "Exit codes")."""

    OK = 0
    FAILURE = 1  # an unexpected internal error: a bug, reported with a traceback
    USAGE = 2  # bad options, or an optional dependency that is not installed
    BAD_INPUT = 3  # unreadable or malformed input files, or a layout that does not fit
    MISMATCH = 4  # an artefact built from different data or another model
    BUSY = 5  # another process holds the lock (a gallery being written)


class SketchsearchError(Exception):
    """Base of every error a user can cause; the message names the file and the fix."""

    exit_code: ExitCode = ExitCode.FAILURE


class UsageError(SketchsearchError):
    exit_code = ExitCode.USAGE


class ImageDecodeError(SketchsearchError):
    """An image file that cannot be read or decoded."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class LayoutError(SketchsearchError):
    """A data root that does not fit the expected folder layout."""

    exit_code = ExitCode.BAD_INPUT


class SplitError(SketchsearchError):
    """A split that cannot be made as asked (too few items, unknown categories, …)."""

    exit_code = ExitCode.USAGE


class SplitFileError(SketchsearchError):
    """A split file that is missing, malformed or of an unknown format version."""

    exit_code = ExitCode.BAD_INPUT


class SplitMismatchError(SketchsearchError):
    """A split file that was made from a different file list than the data root has now."""

    exit_code = ExitCode.MISMATCH
