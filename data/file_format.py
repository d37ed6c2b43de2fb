"""The check every sketchsearch JSON file passes before it is trusted: format, version, keys.

A split file, a gallery manifest and a model card each start with ``format`` (what the file
is) and ``format_version`` (how it is laid out), and hold exactly the fields of one frozen
dataclass. :class:`FileFormat` is that contract for one kind of file; its owner raises its own
error class, so exit codes and messages stay those of the layer that reads the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

from sketchsearch.data.errors import SketchsearchError

KEYS_MESSAGE = "unexpected keys {unknown}, missing keys {missing}"
JSON_MESSAGE = "not valid JSON ({msg}, line {lineno})"
VERSION_MESSAGE = (
    "{noun} format version {found!r}; this version of sketchsearch reads version {version}"
)


@dataclass(frozen=True)
class FileFormat:
    """One kind of file: ``{"format": tag, "format_version": version, …}``."""

    tag: str  # the value of the file's "format" key
    version: int  # the "format_version" this version of sketchsearch reads
    noun: str  # how messages name the file: "split file", "gallery manifest", …
    error: type[SketchsearchError]  # what every refusal raises
    # Each owner keeps the wording its messages had before this check was shared:
    json_message: str = JSON_MESSAGE  # with {msg} and {lineno} (of the JSON error)
    version_message: str = VERSION_MESSAGE  # with {noun}, {found} and {version}
    keys_message: str = KEYS_MESSAGE  # with {unknown} and {missing}
    # Older layouts this version still reads (files are always written at ``version``): a new
    # key or a new field shape bumps ``version``, so an older sketchsearch says "format version
    # N" about a newer file instead of misreading it.
    also_reads: tuple[int, ...] = ()

    def parse(self, text: str, source: str) -> object:
        """The JSON value of ``text``; a refusal naming ``source`` when it is not JSON."""
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            message = self.json_message.format(msg=err.msg, lineno=err.lineno)
            raise self.error(f"{source}: {message}") from None

    def check(self, raw: object, cls: type, source: str) -> dict[str, Any]:
        """``raw`` as a dict, once its format, version and keys are those of ``cls``."""
        if not isinstance(raw, dict) or raw.get("format") != self.tag:
            raise self.error(f"{source}: not a sketchsearch {self.noun}")
        found = raw.get("format_version")
        readable = (self.version, *self.also_reads)
        if isinstance(found, bool) or found not in readable:
            older = " and ".join(str(v) for v in sorted(self.also_reads))
            version = f"{self.version} (and {older})" if older else str(self.version)
            message = self.version_message.format(noun=self.noun, found=found, version=version)
            raise self.error(f"{source}: {message}")
        self.check_keys(raw, cls, source)
        return raw

    def load(self, text: str, cls: type, source: str) -> dict[str, Any]:
        """:meth:`parse` then :meth:`check`: the checked fields of a whole file."""
        return self.check(self.parse(text, source), cls, source)

    def check_keys(self, raw: Mapping[str, Any], cls: type, source: str) -> None:
        """Every key names a field of the dataclass ``cls``; every field without a default is
        there. Also for the objects nested in a file (``source`` then says which)."""
        names = {f.name for f in fields(cls)}
        required = {
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        }
        unknown, missing = sorted(set(raw) - names), sorted(required - set(raw))
        if unknown or missing:
            message = self.keys_message.format(unknown=unknown, missing=missing)
            raise self.error(f"{source}: {message}")
