"""Item metadata in SQLite: one row per vector, keyed by the hnswlib label.

A writer works on an in-memory copy and saves it whole beside the old file at commit; readers
open the committed file read-only. The file is replaced by rename and never changed in place,
so a reader's open connection always sees one complete generation.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchsearch.gallery.errors import GalleryCorruptError

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
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

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
        source.connection.backup(copy)
        source.close()
        return cls(copy)

    @classmethod
    def open_readonly(cls, path: Path) -> ItemStore:
        try:
            uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            connection.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        except sqlite3.DatabaseError as err:
            raise GalleryCorruptError(f"{path}: not a readable item database ({err})") from None
        return cls(connection)

    def save_to(self, path: Path) -> None:
        """Write the whole database to ``path`` and flush it to disk."""
        path.unlink(missing_ok=True)
        target = sqlite3.connect(path)
        with target:
            self.connection.backup(target)
        target.close()
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def close(self) -> None:
        self.connection.close()

    def generation(self) -> int:
        row = self.connection.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else -1

    def set_generation(self, generation: int) -> None:
        with self.connection:
            self.connection.execute(
                "INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (str(generation),)
            )

    def counts(self) -> tuple[int, int]:
        """(live, deleted)."""
        row = self.connection.execute(
            "SELECT COALESCE(SUM(deleted = 0), 0), COALESCE(SUM(deleted = 1), 0) FROM items"
        ).fetchone()
        return int(row[0]), int(row[1])

    def next_id(self) -> int:
        """Ids are never reused, not even after compaction purges deleted rows."""
        row = self.connection.execute("SELECT value FROM meta WHERE key = 'next_id'").fetchone()
        return int(row[0]) if row else 0

    def live_by_path(self, paths: Iterable[str]) -> dict[str, tuple[int, str]]:
        """path -> (id, sha256) of the live items among ``paths``."""
        found: dict[str, tuple[int, str]] = {}
        for chunk in _chunks(list(paths)):
            marks = ",".join("?" * len(chunk))
            query = f"SELECT path, id, sha256 FROM items WHERE deleted = 0 AND path IN ({marks})"
            for path, item_id, sha in self.connection.execute(query, chunk):
                found[path] = (int(item_id), str(sha))
        return found

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

    def mark_deleted(self, ids: Sequence[int]) -> None:
        with self.connection:
            self.connection.executemany(
                "UPDATE items SET deleted = 1 WHERE id = ?", [(int(i),) for i in ids]
            )

    def purge_deleted(self) -> None:
        with self.connection:
            self.connection.execute("DELETE FROM items WHERE deleted = 1")

    def rows(self, ids: Iterable[int]) -> dict[int, ItemRow]:
        found: dict[int, ItemRow] = {}
        for chunk in _chunks([int(i) for i in ids]):
            marks = ",".join("?" * len(chunk))
            query = f"SELECT {_COLUMNS} FROM items WHERE id IN ({marks})"
            for row in self.connection.execute(query, chunk):
                found[int(row[0])] = _row(row)
        return found

    def live_ids(self, labels: Sequence[str] | None = None) -> np.ndarray:
        if labels is None:
            query, args = "SELECT id FROM items WHERE deleted = 0 ORDER BY id", []
        else:
            marks = ",".join("?" * len(labels))
            query = f"SELECT id FROM items WHERE deleted = 0 AND label IN ({marks}) ORDER BY id"
            args = list(labels)
        return np.array([r[0] for r in self.connection.execute(query, args)], dtype=np.int64)

    def ids_and_deleted(self) -> tuple[np.ndarray, np.ndarray]:
        """Every id, sorted, and whether it is deleted."""
        rows = self.connection.execute("SELECT id, deleted FROM items ORDER BY id").fetchall()
        table = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return table[:, 0], table[:, 1].astype(bool)

    def paths(self) -> Iterator[object]:
        """Every row's path, live or deleted, as stored (checked by ``check_stored_paths``)."""
        for (path,) in self.connection.execute("SELECT path FROM items"):
            yield path

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
