"""Item metadata in SQLite: one row per vector, keyed by the hnswlib label.

A writer works on an in-memory copy and saves it whole beside the old file at commit; readers
open the committed file read-only. The file is replaced by rename and never changed in place,
so a reader's open connection always sees one complete generation.

A damaged file can fail any query, not only the first (a dropped table, a page SQLite calls
"malformed", text that is not UTF-8): every query goes through ``_reading``, which turns such
failures into GalleryCorruptError naming the file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np

from sketchsearch.gallery.errors import GalleryCorruptError, GalleryWriteError

_SCHEMA = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    label TEXT,
    instance TEXT,
    sha256 TEXT NOT NULL,
    added_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX items_live_path ON items(path) WHERE deleted = 0;
CREATE INDEX items_label ON items(label) WHERE deleted = 0;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = "id, path, label, instance, sha256, added_at, deleted"

# The rows whose path could fail ``safe_paths.path_problem``: a superset, chosen in SQL so that
# opening a gallery runs the Python check on a handful of rows instead of every one (about
# half the CPU time at 100k items). Every refused spelling matches one condition: not text;
# empty; a first character '/' (absolute) or '.' ('.', '..', './', '../'); a last '/'; '//'
# (an empty name); '/.' (a later '.' or '..' name); a backslash; ':' second (a drive letter);
# a NUL, looked for in the bytes, as SQLite's text functions stop at one.
_MAYBE_UNSAFE_PATHS = """
SELECT path FROM items WHERE typeof(path) != 'text' OR path = ''
    OR path GLOB '[/.]*' OR path GLOB '*/' OR path LIKE '%//%' OR path LIKE '%/.%'
    OR instr(path, '\\') OR path GLOB '?:*' OR instr(CAST(path AS BLOB), x'00')
"""

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _damage_refused(
    damage: tuple[type[Exception], ...], not_damage: tuple[type[Exception], ...] = ()
) -> Callable[[Callable[Concatenate[ItemStore, _P], _R]], Callable[Concatenate[ItemStore, _P], _R]]:
    """A method whose ``damage`` errors become GalleryCorruptError naming the file (one line,
    not a traceback); ``not_damage`` errors pass through unchanged."""

    def wrap(
        method: Callable[Concatenate[ItemStore, _P], _R],
    ) -> Callable[Concatenate[ItemStore, _P], _R]:
        def checked(self: ItemStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return method(self, *args, **kwargs)
            except not_damage:
                raise
            except damage as err:
                raise GalleryCorruptError(
                    f"{self.source}: the item database is damaged ({_one_line(err)}); restore "
                    "it from a copy or rebuild the gallery with `sketchsearch gallery build`"
                ) from None

        checked.__doc__ = method.__doc__
        return checked

    return wrap


# A query on a damaged database: malformed pages, dropped tables, undecodable text, numbers
# out of range.
_reading = _damage_refused((sqlite3.Error, ValueError, OverflowError))
# A change that meets a damaged database; a constraint violation or a bad value is not damage
# (it is a bug in the caller) and stays as it is.
_writing = _damage_refused((sqlite3.DatabaseError,), not_damage=(sqlite3.IntegrityError,))


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 120 else text[:120] + "…"


@dataclass(frozen=True)
class GalleryItem:
    """What the caller knows about an image it adds: its path relative to the gallery root."""

    path: str
    sha256: str
    label: str | None = None
    instance: str | None = None


@dataclass(frozen=True)
class ItemRow:
    id: int
    path: str
    label: str | None
    instance: str | None
    sha256: str
    added_at: str
    deleted: bool


class ItemStore:
    def __init__(self, connection: sqlite3.Connection, source: str = "item database") -> None:
        self.connection = connection
        self.source = source  # the file, for messages

    @classmethod
    def new(cls) -> ItemStore:
        connection = sqlite3.connect(":memory:", check_same_thread=False)
        connection.executescript(_SCHEMA)
        store = cls(connection)
        store.set_generation(0)
        return store

    @classmethod
    def load_copy(cls, path: Path) -> ItemStore:
        """An in-memory copy of a committed file, for a writer."""
        source = cls.open_readonly(path)
        copy = sqlite3.connect(":memory:", check_same_thread=False)
        try:
            source.connection.backup(copy)
        except sqlite3.Error as err:
            copy.close()
            raise GalleryCorruptError(
                f"{path}: the item database is damaged ({_one_line(err)})"
            ) from None
        finally:
            source.close()
        return cls(copy, str(path))

    @classmethod
    def open_readonly(cls, path: Path) -> ItemStore:
        try:
            uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            connection.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        except sqlite3.DatabaseError as err:
            raise GalleryCorruptError(
                f"{path}: not a readable item database ({_one_line(err)})"
            ) from None
        return cls(connection, str(path))

    def save_to(self, path: Path) -> None:
        """Write the whole database to ``path``, flush it to disk and read it back.

        SQLite reports a full disk as its own error; the read-back also catches a short file.
        """
        path.unlink(missing_ok=True)
        try:
            target = sqlite3.connect(path)
            try:
                with target:
                    self.connection.backup(target)
            finally:
                target.close()
        except sqlite3.Error as err:
            raise GalleryWriteError(f"{path.name} could not be written ({err})") from None
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        self._check_copy(path)

    def _check_copy(self, path: Path) -> None:
        """The saved file opens and holds what this store holds (size in pages, counts)."""
        expected = (self.counts(), self.generation(), self._pages())
        try:
            saved = ItemStore.open_readonly(path)
            try:
                found = (saved.counts(), saved.generation(), saved._pages())
            finally:
                saved.close()
        except GalleryCorruptError as err:
            raise GalleryWriteError(
                f"{path.name} was written short ({err}): free some space and run the command again"
            ) from None
        if found != expected or path.stat().st_size != found[2]:
            raise GalleryWriteError(
                f"{path.name} was written short: free some space and run the command again"
            )

    @_reading
    def _pages(self) -> int:
        """The database's size in bytes, as its header states it."""
        pages = self.connection.execute("PRAGMA page_count").fetchone()[0]
        return int(pages) * int(self.connection.execute("PRAGMA page_size").fetchone()[0])

    def close(self) -> None:
        self.connection.close()

    @_reading
    def generation(self) -> int:
        row = self.connection.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else -1

    @_writing
    def set_generation(self, generation: int) -> None:
        with self.connection:
            self.connection.execute(
                "INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (str(generation),)
            )

    @_reading
    def counts(self) -> tuple[int, int]:
        """(live, deleted)."""
        row = self.connection.execute(
            "SELECT COALESCE(SUM(deleted = 0), 0), COALESCE(SUM(deleted = 1), 0) FROM items"
        ).fetchone()
        return int(row[0]), int(row[1])

    @_reading
    def live_labels(self) -> frozenset[str]:
        """The labels of live items (the partial index on label makes this cheap)."""
        rows = self.connection.execute(
            "SELECT DISTINCT label FROM items WHERE deleted = 0 AND label IS NOT NULL"
        )
        return frozenset(str(row[0]) for row in rows)

    @_reading
    def next_id(self) -> int:
        """Ids are never reused, not even after compaction purges deleted rows."""
        row = self.connection.execute("SELECT value FROM meta WHERE key = 'next_id'").fetchone()
        return int(row[0]) if row else 0

    @_reading
    def live_by_path(self, paths: Iterable[str]) -> dict[str, tuple[int, str]]:
        """path -> (id, sha256) of the live items among ``paths``."""
        found: dict[str, tuple[int, str]] = {}
        for chunk in _chunks(list(paths)):
            marks = ",".join("?" * len(chunk))
            query = f"SELECT path, id, sha256 FROM items WHERE deleted = 0 AND path IN ({marks})"
            for path, item_id, sha in self.connection.execute(query, chunk):
                found[path] = (int(item_id), str(sha))
        return found

    @_writing
    def insert(self, ids: Sequence[int], items: Sequence[GalleryItem], added_at: str) -> None:
        rows = [
            (i, item.path, item.label, item.instance, item.sha256, added_at)
            for i, item in zip(ids, items, strict=True)
        ]
        following = max(self.next_id(), max(ids, default=-1) + 1)
        with self.connection:
            self.connection.execute(
                "INSERT OR REPLACE INTO meta VALUES ('next_id', ?)", (str(following),)
            )
            self.connection.executemany(
                "INSERT INTO items (id, path, label, instance, sha256, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    @_writing
    def mark_deleted(self, ids: Sequence[int]) -> None:
        with self.connection:
            self.connection.executemany(
                "UPDATE items SET deleted = 1 WHERE id = ?", [(int(i),) for i in ids]
            )

    @_writing
    def purge_deleted(self) -> None:
        with self.connection:
            self.connection.execute("DELETE FROM items WHERE deleted = 1")

    @_reading
    def rows(self, ids: Iterable[int]) -> dict[int, ItemRow]:
        found: dict[int, ItemRow] = {}
        for chunk in _chunks([int(i) for i in ids]):
            marks = ",".join("?" * len(chunk))
            query = f"SELECT {_COLUMNS} FROM items WHERE id IN ({marks})"
            for row in self.connection.execute(query, chunk):
                found[int(row[0])] = _row(row)
        return found

    @_reading
    def live_ids(self, labels: Sequence[str] | None = None) -> np.ndarray:
        if labels is None:
            query, args = "SELECT id FROM items WHERE deleted = 0 ORDER BY id", []
        else:
            marks = ",".join("?" * len(labels))
            query = f"SELECT id FROM items WHERE deleted = 0 AND label IN ({marks}) ORDER BY id"
            args = list(labels)
        return np.array([r[0] for r in self.connection.execute(query, args)], dtype=np.int64)

    @_reading
    def ids_and_deleted(self) -> tuple[np.ndarray, np.ndarray]:
        """Every id, sorted, and whether it is deleted."""
        rows = self.connection.execute("SELECT id, deleted FROM items ORDER BY id").fetchall()
        table = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return table[:, 0], table[:, 1].astype(bool)

    @_reading
    def maybe_unsafe_paths(self) -> list[object]:
        """The stored paths (live or deleted) that could be unsafe, a superset of those that
        are: ``check_stored_paths`` runs the Python check on these only."""
        return [path for (path,) in self.connection.execute(_MAYBE_UNSAFE_PATHS)]

    @_reading
    def paths(self) -> list[object]:
        """Every row's path, live or deleted, as stored."""
        return [path for (path,) in self.connection.execute("SELECT path FROM items")]

    @_reading
    def live_rows(self) -> list[ItemRow]:
        query = f"SELECT {_COLUMNS} FROM items WHERE deleted = 0 ORDER BY id"
        return [_row(r) for r in self.connection.execute(query)]


def _row(values: tuple[object, ...]) -> ItemRow:
    item_id, path, label, instance, sha256, added_at, deleted = values
    return ItemRow(
        id=int(str(item_id)),
        path=str(path),
        label=None if label is None else str(label),
        instance=None if instance is None else str(instance),
        sha256=str(sha256),
        added_at=str(added_at),
        deleted=bool(deleted),
    )


def _chunks(values: list[object], size: int = 900) -> Iterable[list[object]]:
    """SQLite caps the number of ``?`` parameters in one statement."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
