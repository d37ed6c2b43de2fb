"""The one rule for item paths stored in files: relative, normalised, POSIX, inside their root.

Split files and gallery item databases store paths relative to a root folder, and the code
joins them to that root to read images. A path that is absolute, climbs with ``..``, or is
spelled in some other way (``a//b``, ``./a``, ``a\\b``, ``C:a``) would make that join land
outside the root, or name one file in two ways; such paths are refused where they are read.
"""

from __future__ import annotations

from sketchsearch.data.errors import ExitCode, SketchsearchError


class UnsafePathError(SketchsearchError):
    """A stored item path that is not relative and normalised; callers re-raise it as the
    error of the file that holds it (``SplitFileError``, ``GalleryCorruptError``, …)."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, path: object, problem: str, root: str = "root") -> None:
        super().__init__(
            f"item path {path!r} {problem}: item paths are relative to the {root}, "
            "with / between names and no '.' or '..'"
        )
        self.path = path
        self.problem = problem


def path_problem(path: object) -> str | None:
    """Why ``path`` is not a safe item path, or None when it is one."""
    if not isinstance(path, str):
        return f"is a {type(path).__name__}, not a string"
    if not path:
        return "is empty"
    if path[0] == "/":
        return "is absolute"
    if "\\" in path:
        return "holds a backslash"
    if "\0" in path:
        return "holds a NUL character"
    if len(path) >= 2 and path[1] == ":" and path[0].isascii() and path[0].isalpha():
        return "starts with a drive letter"
    for name in path.split("/"):
        if name in ("", ".", ".."):
            return "climbs out with '..'" if name == ".." else "is not normalised"
    return None


def check_relative_path(path: object, root: str = "root") -> str:
    """``path`` itself when it is relative, normalised and POSIX; else ``UnsafePathError``.

    Kept: ``cat/x.png``, ``photo/tx/cat/n01.jpg``, names with spaces or unicode. Refused:
    ``/abs.png``, ``../x.png``, ``a/../b``, ``./a``, ``a/.``, ``a//b``, ``a/``, ``a\\b``,
    ``C:x``, the empty string and anything that is not a string. ``root`` names the root in
    the message ("gallery root", "data root").
    """
    problem = path_problem(path)
    if problem is not None or not isinstance(path, str):
        raise UnsafePathError(path, problem or "is not a string", root)
    return path
