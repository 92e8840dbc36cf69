"""SQLite backend: one file, WAL, every commit fsync'd (synchronous=FULL).

Tables: ``bundles`` (entry bundles of 256 entries), ``tiles`` (one row per tile, keyed
by ``level << 48 | index``), ``devices`` (DID → small id, last seq), the per-device
index (``pending_keys``, ``device_runs`` and ``device_entries``: :mod:`._sqlite_index`),
and ``meta`` (the committed size).
Readers use their own connection per thread and never block the writer.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from trustmesh._paths import private_dir
from trustmesh.errors import StoreError
from trustmesh.log.store._backend import Batch
from trustmesh.log.store._sqlite_index import SCHEMA as INDEX_SCHEMA
from trustmesh.log.store._sqlite_index import SEQ_OFFSET, DeviceIndex
from trustmesh.log.tiles import TileKey

FORMAT = 2  # 1 had every key in device_entries: a format-2 store with no runs
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tiles (id INTEGER PRIMARY KEY, nodes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY, did TEXT NOT NULL UNIQUE, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS device_entries (
    device INTEGER NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
    PRIMARY KEY (device, seq)) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('size', 0), ('format', 2);
"""


def tile_id(key: TileKey) -> int:
    level, index = key
    return level << 48 | index


class SqliteBackend:
    def __init__(self, path: Path, index_every: int | None = None) -> None:
        """``index_every``: keys that wait in ``pending_keys`` before they move into
        runs together (default :data:`._sqlite_index.INDEX_EVERY`)."""
        self.path = path
        try:
            private_dir(path.parent)
            self._writer = self._connect()
            # Larger pages suit the store's rows: bundles and tiles of 16-50 KB.
            self._writer.execute("PRAGMA page_size = 16384")
            self._writer.execute("PRAGMA journal_mode = WAL")
            self._writer.executescript(_SCHEMA + INDEX_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the log store {path}: {exc}") from None
        fmt = self._writer.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()[0]
        if fmt == 1:  # (the index's other tables were created just now, empty)
            self._writer.execute("UPDATE meta SET value = ? WHERE key = 'format'", (FORMAT,))
        elif fmt != FORMAT:
            raise StoreError(f"{path}: store format {fmt}, this trustmesh reads {FORMAT}")
        self._lock = threading.Lock()
        self._local = threading.local()
        self._index = DeviceIndex(self._writer, index_every)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        # FULL: a committed batch survives power loss too, not only a crash.
        connection.execute("PRAGMA synchronous = FULL")
        return connection

    @property
    def _reader(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    def _one(self, query: str, params: tuple[object, ...] = ()) -> Any:
        """The first column of the first row, or None; errors become StoreError."""
        try:
            row = self._reader.execute(query, params).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"log store {self.path} unavailable: {exc}") from None
        return None if row is None else row[0]

    def size(self) -> int:
        return int(self._one("SELECT value FROM meta WHERE key = 'size'"))

    def commit(self, batch: Batch) -> None:
        with self._lock, self._transaction() as db:
            size = db.execute("SELECT value FROM meta WHERE key = 'size'").fetchone()[0]
            if size != batch.first_index:
                raise StoreError(
                    f"another writer appended to {self.path} (size {size}, "
                    f"expected {batch.first_index})"
                )
            db.executemany(
                "INSERT OR REPLACE INTO bundles (idx, data) VALUES (?, ?)",
                list(batch.bundles.items()),
            )
            indexed = self._index.write(db, batch)
            db.executemany(
                "INSERT OR REPLACE INTO tiles (id, nodes) VALUES (?, ?)",
                [(tile_id(key), nodes) for key, nodes in batch.tiles.items()],
            )
            db.execute("UPDATE meta SET value = ? WHERE key = 'size'", (batch.new_size,))
        indexed()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._writer
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"log store {self.path} unavailable: {exc}") from None
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            # (SQLite may have rolled back already: a full disk, an I/O error)
            if db.in_transaction:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):  # a full disk, an I/O error: say so
                raise StoreError(f"log store {self.path}: append failed: {exc}") from None
            raise

    def tile(self, key: TileKey) -> bytes | None:
        found = self._one("SELECT nodes FROM tiles WHERE id = ?", (tile_id(key),))
        return None if found is None else bytes(found)

    def bundle(self, index: int) -> bytes | None:
        found = self._one("SELECT data FROM bundles WHERE idx = ?", (index,))
        return None if found is None else bytes(found)

    def find(self, did: str, seq: int) -> int | None:
        try:
            return self._index.find(self._reader, did, seq)
        except sqlite3.Error as exc:
            raise StoreError(f"log store {self.path} unavailable: {exc}") from None

    def device_entries(self, did: str, limit: int) -> list[tuple[int, int]]:
        try:
            return self._index.entries(self._reader, did, limit)
        except sqlite3.Error as exc:
            raise StoreError(f"log store {self.path} unavailable: {exc}") from None

    def last_seq(self, did: str) -> int | None:
        found = self._one("SELECT last_seq FROM devices WHERE did = ?", (did,))
        return None if found is None else int(found) + SEQ_OFFSET

    def disk_bytes(self) -> int:
        self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists())

    def close(self) -> None:
        self._writer.close()
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
